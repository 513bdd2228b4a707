// Path routing for both transports and named servers.

import Testing

@testable import SwitchyardCore

struct RouteTests {
    @Test(arguments: [
        ("/mcp", Route.endpoint(server: nil, .streamable)),
        ("/mcp/", .endpoint(server: nil, .streamable)),
        ("/sse", .endpoint(server: nil, .sseStream)),
        ("/messages/", .endpoint(server: nil, .sseMessages)),
        ("/servers/time/mcp", .endpoint(server: "time", .streamable)),
        ("/servers/time/sse/", .endpoint(server: "time", .sseStream)),
        ("/servers/time/messages", .endpoint(server: "time", .sseMessages)),
        ("/servers/../mcp", .endpoint(server: "..", .streamable)),  // unknown name: the gateway answers 404
        ("/healthz", .health),
        ("/", .notFound),
        ("//mcp", .notFound),
        ("/servers//mcp", .notFound),
        ("/servers/time/other", .notFound),
        ("/servers/time/mcp/extra", .notFound),
        ("/MCP", .notFound),
    ])
    func parses(path: String, route: Route) { #expect(Route.parse(path) == route) }

    @Test func messagesPathIsRootRelative() {
        #expect(Route.messagesPath(server: nil, sessionID: "ab") == "/messages?sessionId=ab")
        #expect(Route.messagesPath(server: "git", sessionID: "ab") == "/servers/git/messages?sessionId=ab")
    }

    @Test(
        arguments: [
            ("sessionId=abc", "abc"), ("session_id=abc", "abc"), ("x=1&session_id=abc", "abc"), ("sessionId=", nil),
            ("other=abc", nil), ("sessionid=abc", nil),
        ] as [(String, String?)])
    func legacySessionIDFromQuery(query: String, id: String?) { #expect(Route.legacySessionID(query: query) == id) }

    @Test func noQueryNoSession() { #expect(Route.legacySessionID(query: nil) == nil) }
}

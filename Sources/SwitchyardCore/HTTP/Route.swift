// Maps a request path to an endpoint: Streamable HTTP, legacy SSE stream or legacy message POST.

public enum EndpointKind: Equatable, Sendable {
    /// `/mcp`: Streamable HTTP (POST, GET, DELETE, OPTIONS).
    case streamable
    /// `/sse`: the legacy GET stream.
    case sseStream
    /// `/messages`: the legacy POST endpoint.
    case sseMessages
}

public enum Route: Equatable, Sendable {
    /// An MCP endpoint; `server` is nil for the default server's short paths.
    case endpoint(server: String?, EndpointKind)
    case health
    case notFound

    /// Parses the raw (not percent-decoded) path. A trailing slash is accepted everywhere.
    public static func parse(_ path: String) -> Route {
        var p = Substring(path)
        if p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        switch p {
        case "/mcp": return .endpoint(server: nil, .streamable)
        case "/sse": return .endpoint(server: nil, .sseStream)
        case "/messages": return .endpoint(server: nil, .sseMessages)
        case "/healthz": return .health
        default: break
        }
        let parts = p.split(separator: "/", omittingEmptySubsequences: false)
        // ["", "servers", name, kind]
        guard parts.count == 4, parts[0].isEmpty, parts[1] == "servers", !parts[2].isEmpty else { return .notFound }
        let name = String(parts[2])
        switch parts[3] {
        case "mcp": return .endpoint(server: name, .streamable)
        case "sse": return .endpoint(server: name, .sseStream)
        case "messages": return .endpoint(server: name, .sseMessages)
        default: return .notFound
        }
    }

    /// The message URL a legacy client is told to POST to (root-relative, L-02 / P15).
    public static func messagesPath(server: String?, sessionID: String) -> String {
        if let s = server { return "/servers/\(s)/messages?sessionId=\(sessionID)" }
        return "/messages?sessionId=\(sessionID)"
    }

    /// The session id from a legacy POST's query: `sessionId` (TS SDK) or `session_id` (Python SDK).
    public static func legacySessionID(query: String?) -> String? {
        guard let q = query else { return nil }
        for pair in q.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.count == 2 else { continue }
            if kv[0] == "sessionId" || kv[0] == "session_id" { return kv[1].isEmpty ? nil : String(kv[1]) }
        }
        return nil
    }
}

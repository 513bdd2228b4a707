// Accept, Content-Type, Origin and reply-mode rules of Streamable HTTP.

import Testing

@testable import SwitchyardCore

struct MCPHeadersTests {
    @Test(
        arguments: [
            (nil, true, true), ("*/*", true, true), ("application/json", true, false), ("text/event-stream", false, true),
            ("application/json, text/event-stream", true, true), ("text/html", false, false),
            ("Application/JSON;q=0.9", true, false), ("text/*", false, true),
        ] as [(String?, Bool, Bool)])
    func acceptIsLenient(header: String?, json: Bool, sse: Bool) {
        #expect(AcceptSet(header: header) == AcceptSet(json: json, sse: sse))
    }

    @Test(
        arguments: [
            (nil, true), ("application/json", true), ("Application/JSON; charset=UTF-8", true), ("text/plain", false),
            ("application/x-www-form-urlencoded", false), ("application/jsonx", false),
        ] as [(String?, Bool)])
    func contentTypeMustBeJSON(header: String?, ok: Bool) {
        #expect(MediaType.isJSON(contentType: header) == ok)
    }

    @Test func originPolicyAllowsLoopbackAndTheList() {
        let p = OriginPolicy(allowed: ["https://app.example.com"])
        #expect(p.permits(nil))
        #expect(p.permits("http://localhost:3000"))
        #expect(p.permits("http://127.0.0.1"))
        #expect(p.permits("https://[::1]:8443"))
        #expect(p.permits("https://APP.example.com"))
        #expect(!p.permits("https://evil.example"))
        #expect(!p.permits("http://localhost.evil.example"))
        #expect(!p.permits("http://127.0.0.1.nip.io:80"))
        #expect(!p.permits("null"))
    }

    @Test func replyModeFollowsMethodTokenAndAccept() {
        let both = AcceptSet(json: true, sse: true)
        #expect(ReplyPolicy.mode(method: "tools/list", hasProgressToken: false, accept: both) == .json)
        #expect(ReplyPolicy.mode(method: "tools/call", hasProgressToken: false, accept: both) == .sse)
        #expect(ReplyPolicy.mode(method: "tools/list", hasProgressToken: true, accept: both) == .sse)
        #expect(ReplyPolicy.mode(method: "tools/call", hasProgressToken: false, accept: AcceptSet(json: true, sse: false)) == .json)
        #expect(ReplyPolicy.mode(method: "ping", hasProgressToken: false, accept: AcceptSet(json: false, sse: true)) == .sse)
    }

    @Test func protocolVersions() {
        #expect(ProtocolVersion.isSupported("2025-11-25"))
        #expect(ProtocolVersion.isSupported("2024-11-05"))
        #expect(!ProtocolVersion.isSupported("2026-07-28"))
        #expect(!ProtocolVersion.isSupported("1999-01-01"))
    }

    @Test func sseEventFraming() {
        #expect(String(decoding: SSEEncoder.message(Array("{}".utf8)), as: UTF8.self) == "event: message\ndata: {}\n\n")
    }

    @Test func errorResponsesEscapeMessages() {
        let e = JSONText.errorResponse(id: Array("\"x\"".utf8), code: -32000, message: "a \"quoted\"\nline")
        #expect(String(decoding: e, as: UTF8.self) == #"{"jsonrpc":"2.0","id":"x","error":{"code":-32000,"message":"a \"quoted\"\nline"}}"#)
        let n = JSONText.errorResponse(id: nil, code: -32700, message: "m")
        #expect(String(decoding: n, as: UTF8.self).contains(#""id":null"#))
    }
}

struct ReplyModeRawTests {
    @Test(arguments: ["tools/call", "prompts/get", "resources/read", "completion/complete", "tools/list", "ping", "resources/list"])
    func rawAndStringDecisionsAgree(method: String) {
        let both = AcceptSet(json: true, sse: true)
        let quoted = Array("\"\(method)\"".utf8)
        quoted.withUnsafeBytes { b in
            for token in [false, true] {
                #expect(
                    ReplyPolicy.mode(b, method: Span(0, b.count), hasProgressToken: token, accept: both)
                        == ReplyPolicy.mode(method: method, hasProgressToken: token, accept: both))
            }
        }
    }
}

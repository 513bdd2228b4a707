// Envelope scanning: classification, spans, and the -32700 / -32600 verdicts.

import Testing

@testable import SwitchyardCore

func withBytes<R>(_ s: String, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    let a = Array(s.utf8)
    return try a.withUnsafeBytes { try body($0) }
}

func text(_ b: UnsafeRawBufferPointer, _ s: Span?) -> String? {
    guard let s else { return nil }
    return String(decoding: UnsafeRawBufferPointer(rebasing: b[s.start..<s.end]), as: UTF8.self)
}

struct EnvelopeScannerTests {
    @Test(
        arguments: [
            (#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, Envelope.Kind.request, "1", #""tools/list""#),
            (#"{"jsonrpc":"2.0","id":"a\"b","method":"x","params":{}}"#, .request, #""a\"b""#, #""x""#),
            (#" { "method" : "notifications/initialized" , "jsonrpc" : "2.0" } "#, .notification, nil, #""notifications/initialized""#),
            (#"{"jsonrpc":"2.0","id":3,"result":{"ok":true}}"#, .response, "3", nil),
            (#"{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"m"}}"#, .response, "null", nil),
            (#"{"jsonrpc":"2.0","id":-12345678901234,"method":"m"}"#, .request, "-12345678901234", #""m""#),
        ] as [(String, Envelope.Kind, String?, String?)])
    func classifiesValidMessages(input: String, kind: Envelope.Kind, id: String?, method: String?) throws {
        try withBytes(input) { b in
            let e = try EnvelopeScanner.scan(b)
            #expect(e.kind == kind)
            #expect(text(b, e.id) == id)
            #expect(text(b, e.method) == method)
        }
    }

    @Test(arguments: [
        #"{"jsonrpc":"2.0","id":1,"method":"x""#,  // truncated
        #"{"jsonrpc":"2.0","id":1,"method":"x"} x"#,  // trailing bytes
        #"{"jsonrpc":"2.0","id":01,"method":"x"}"#,  // leading zero
        #"{"jsonrpc":"2.0","id":1,"method":"x",}"#,  // trailing comma
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\u{01}\"}",  // control char
        #"{"jsonrpc":"2.0","id":1,"method":"\q"}"#,  // bad escape
        "",
        "   ",
        "nul",
    ])
    func rejectsMalformedJSONAsParseError(input: String) {
        withBytes(input) { b in
            #expect {
                try EnvelopeScanner.scan(b)
            } throws: { e in
                (e as? EnvelopeError).map { $0.code == JSONRPCErrorCode.parseError } ?? false
            }
        }
    }

    @Test func rejectsInvalidUTF8() {
        let bytes: [UInt8] = Array(#"{"jsonrpc":"2.0","id":1,"method":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        bytes.withUnsafeBytes { b in
            #expect(throws: EnvelopeError.self) { try EnvelopeScanner.scan(b) }
        }
        let surrogate: [UInt8] = Array(#"{"a":""#.utf8) + [0xED, 0xA0, 0x80] + Array(#""}"#.utf8)
        surrogate.withUnsafeBytes { b in
            var s = JSONScanner(b)
            #expect(throws: JSONScanError.self) { try s.validateDocument() }
        }
    }

    @Test(arguments: [
        ("42", "expected a JSON-RPC object"),
        (#""str""#, "expected a JSON-RPC object"),
        (#"{"id":1,"method":"x"}"#, "jsonrpc"),
        (#"{"jsonrpc":"1.0","id":1,"method":"x"}"#, "jsonrpc"),
        (#"{"jsonrpc":"2.0","id":null,"method":"x"}"#, "must not be null"),
        (#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#, "string or an integer"),
        (#"{"jsonrpc":"2.0","id":{},"method":"x"}"#, "string or an integer"),
        (#"{"jsonrpc":"2.0","id":1,"method":7}"#, "method"),
        (#"{"jsonrpc":"2.0","id":1}"#, "exactly one of result and error"),
        (#"{"jsonrpc":"2.0","id":1,"result":1,"error":{}}"#, "exactly one"),
    ])
    func rejectsNonJSONRPCAsInvalidRequest(input: String, why: String) {
        withBytes(input) { b in
            do throws(EnvelopeError) {
                _ = try EnvelopeScanner.scan(b)
                Issue.record("accepted \(input)")
            } catch {
                #expect(error.code == JSONRPCErrorCode.invalidRequest)
                #expect(error.message.contains(why))
            }
        }
    }

    @Test func limitsNestingDepth() {
        let deep =
            #"{"jsonrpc":"2.0","method":"x","params":"# + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "}"
        withBytes(deep) { b in
            do throws(EnvelopeError) {
                _ = try EnvelopeScanner.scan(b)
                Issue.record("accepted 100 levels")
            } catch {
                #expect(error == EnvelopeError.parse(JSONScanError(code: .tooDeep, offset: error.parseOffset ?? -1)))
            }
        }
        let ok = #"{"jsonrpc":"2.0","method":"x","params":"# + String(repeating: "[", count: 30) + String(repeating: "]", count: 30) + "}"
        withBytes(ok) { b in #expect((try? EnvelopeScanner.scan(b))?.kind == .notification) }
    }

    @Test func findsProgressTokenAndNestedMembers() throws {
        let s =
            #"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","_meta":{"other":[1,{"progressToken":9}],"progressToken":"tok"}}}"#
        try withBytes(s) { b in
            let e = try EnvelopeScanner.scan(b)
            #expect(text(b, EnvelopeScanner.progressToken(b, params: e.params)) == #""tok""#)
            #expect(text(b, EnvelopeScanner.member(b, of: e.params!, key: "\"name\"")?.0) == #""a""#)
        }
        try withBytes(#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{}}}"#) { b in
            let e = try EnvelopeScanner.scan(b)
            #expect(EnvelopeScanner.progressToken(b, params: e.params) == nil)
        }
    }

    @Test func parsesOnlyIssuedIDs() {
        withBytes("[123,-1,\"5\",1e3,0]") { b in
            #expect(EnvelopeScanner.parseIssuedID(b, Span(1, 4)) == 123)
            #expect(EnvelopeScanner.parseIssuedID(b, Span(5, 7)) == nil)
            #expect(EnvelopeScanner.parseIssuedID(b, Span(8, 11)) == nil)
            #expect(EnvelopeScanner.parseIssuedID(b, Span(12, 15)) == nil)
            #expect(EnvelopeScanner.parseIssuedID(b, Span(16, 17)) == 0)
        }
    }

    @Test func splitsBatches() throws {
        try withBytes(#" [ {"a":1} , {"b":[2]} ] "#) { b in
            let spans = try JSONScanner.arrayElements(b)
            #expect(spans.map { text(b, $0) } == [#"{"a":1}"#, #"{"b":[2]}"#])
        }
        withBytes("[1,]") { b in #expect(throws: JSONScanError.self) { try JSONScanner.arrayElements(b) } }
    }
}

extension EnvelopeError {
    var parseOffset: Int? {
        if case .parse(let e) = self { return e.offset }
        return nil
    }
}

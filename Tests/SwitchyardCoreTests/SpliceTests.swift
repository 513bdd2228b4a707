// Id splicing forwards every byte outside the id unchanged, and restoring is byte-exact.

import Testing

@testable import SwitchyardCore

struct SpliceTests {
    static let messages = [
        #"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"id: 1"}}}"#,
        #"{ "id" : "x\"y\u00e9" , "jsonrpc":"2.0","method":"m","params":{"id":99}}"#,
        #"{"jsonrpc":"2.0","method":"m","id":12345678901234567890123}"#,
        "{\"jsonrpc\":\"2.0\",\"method\":\"ünïcödé\",\"id\":\"🚀\"}",
    ]

    @Test(arguments: messages)
    func rewriteThenRestoreIsByteIdentical(message: String) throws {
        let original = Array(message.utf8)
        let (rewritten, origID) = try original.withUnsafeBytes { b -> ([UInt8], [UInt8]) in
            let e = try EnvelopeScanner.scan(b)
            let id = Array(UnsafeRawBufferPointer(rebasing: b[e.id!.start..<e.id!.end]))
            return (Splice.apply(b, replacing: e.id!, with: Splice.decimal(4711)), id)
        }
        // The child sees the gateway's id and nothing else changed.
        try rewritten.withUnsafeBytes { b in
            let e = try EnvelopeScanner.scan(b)
            #expect(EnvelopeScanner.parseIssuedID(b, e.id!) == 4711)
            #expect(Array(b[0..<e.id!.start]) == Array(original[0..<e.id!.start]))
        }
        let restored = try rewritten.withUnsafeBytes { b in
            let e = try EnvelopeScanner.scan(b)
            return Splice.apply(b, replacing: e.id!, with: origID)
        }
        #expect(restored == original)
    }

    @Test func writesThreePiecesToTheSink() {
        let body = Array(#"{"id":7}"#.utf8)
        var pieces: [[UInt8]] = []
        body.withUnsafeBytes { b in
            Array("42".utf8).withUnsafeBytes { r in Splice.write(b, replacing: Span(6, 7), with: r) { pieces.append(Array($0)) } }
        }
        #expect(pieces.map { String(decoding: $0, as: UTF8.self) } == [#"{"id":"#, "42", "}"])
    }
}

struct DecodeStringTests {
    @Test(arguments: [
        (#""plain""#, "plain"), (#""a\"b\\c\/d""#, "a\"b\\c/d"), (#""\u00e9\n\t""#, "é\n\t"), (#""\ud83d\ude80""#, "🚀"),
        (#""\ud83d""#, "\u{FFFD}"),
    ])
    func decodesEscapes(literal: String, expected: String) {
        let bytes = Array(literal.utf8)
        bytes.withUnsafeBytes { b in #expect(JSONText.decodeString(b, Span(0, b.count)) == expected) }
    }
}

// HTTP/1.1 request framing: head length, request line and header parsing, refusals, chunked bodies.

import Testing

@testable import SwitchyardCore

struct HTTP1Tests {
    // MARK: helpers

    func headLength(_ s: String) -> Int? {
        Array(s.utf8).withUnsafeBytes { HTTP1.headLength($0) }
    }

    func parse(_ s: String, fields: inout [HTTPField], maxBody: Int = 1 << 20, maxFields: Int = 200)
        throws(HTTPRefusal) -> (HTTPRequestHead, [UInt8])
    {
        let bytes = Array(s.utf8)
        let r: Result<HTTPRequestHead, HTTPRefusal> = bytes.withUnsafeBytes { buf in
            Result { () throws(HTTPRefusal) -> HTTPRequestHead in
                try HTTP1.parseHead(buf, fields: &fields, maxBody: maxBody, maxFields: maxFields)
            }
        }
        return (try r.get(), bytes)
    }

    func parse(_ s: String, maxBody: Int = 1 << 20, maxFields: Int = 200) throws(HTTPRefusal)
        -> (HTTPRequestHead, [HTTPField], [UInt8])
    {
        var fields: [HTTPField] = []
        let (head, bytes) = try parse(s, fields: &fields, maxBody: maxBody, maxFields: maxFields)
        return (head, fields, bytes)
    }

    /// The refusal status for `s`, or nil if it parses.
    func status(_ s: String, maxBody: Int = 1 << 20, maxFields: Int = 200) -> Int? {
        do {
            _ = try parse(s, maxBody: maxBody, maxFields: maxFields)
            return nil
        } catch {
            return error.status
        }
    }

    func text(_ bytes: [UInt8], _ r: Range<Int>?) -> String? {
        r.map { String(decoding: bytes[$0], as: UTF8.self) }
    }

    /// Feeds `bytes` to `d` and returns what was consumed and the body bytes emitted.
    func feed(_ d: inout ChunkedDecoder, _ bytes: [UInt8], maxBody: Int = 1 << 20) throws(HTTPRefusal)
        -> (consumed: Int, body: [UInt8])
    {
        var body: [UInt8] = []
        let r: Result<Int, HTTPRefusal> = bytes.withUnsafeBytes { buf in
            Result { () throws(HTTPRefusal) -> Int in
                try d.decode(buf, maxBody: maxBody) { body.append(contentsOf: bytes[$0]) }
            }
        }
        return (try r.get(), body)
    }

    func chunkedStatus(_ s: String, maxBody: Int = 1 << 20) -> Int? {
        var d = ChunkedDecoder()
        do {
            _ = try feed(&d, Array(s.utf8), maxBody: maxBody)
            return nil
        } catch {
            return error.status
        }
    }

    // MARK: headLength

    @Test func headLengthCRLF() {
        let h = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        #expect(headLength(h) == h.utf8.count)
        #expect(headLength("GET / HTTP/1.1\r\n\r\n") == 18)
    }

    @Test func headLengthBareLF() {
        let h = "GET / HTTP/1.1\nHost: x\n\n"
        #expect(headLength(h) == h.utf8.count)
        #expect(headLength("\n\n") == 2)
    }

    @Test func headLengthIncompleteIsNil() {
        #expect(headLength("") == nil)
        #expect(headLength("G") == nil)
        #expect(headLength("GET / HTTP/1.1") == nil)
        #expect(headLength("GET / HTTP/1.1\r\n") == nil)
        #expect(headLength("GET / HTTP/1.1\r\nHost: x\r\n") == nil)
        #expect(headLength("GET / HTTP/1.1\r\nHost: x\r\n\r") == nil)
        #expect(headLength("GET / HTTP/1.1\nHost: x\n") == nil)
        #expect(headLength("GET / HTTP/1.1\r\nHost: x\r\nAccept: */*") == nil)
    }

    @Test func headLengthExcludesBody() {
        let head = "POST /mcp HTTP/1.1\r\nContent-Length: 5\r\n\r\n"
        #expect(headLength(head + "hello") == head.utf8.count)
        // A body that itself contains an empty line does not move the end.
        #expect(headLength(head + "a\r\n\r\nb") == head.utf8.count)
        let lf = "POST /mcp HTTP/1.1\nContent-Length: 3\n\n"
        #expect(headLength(lf + "\n\nx") == lf.utf8.count)
    }

    @Test func headLengthMixedLineEnds() {
        // LF, then CRLF as the empty line.
        let a = "GET / HTTP/1.1\nHost: x\n\r\n"
        #expect(headLength(a) == a.utf8.count)
        #expect(headLength(a + "body") == a.utf8.count)
        // CRLF lines, then a bare LF as the empty line.
        let b = "GET / HTTP/1.1\r\nHost: x\r\n\n"
        #expect(headLength(b) == b.utf8.count)
        // Mixed within the head.
        let c = "GET / HTTP/1.1\r\nA: 1\nB: 2\r\n\r\n"
        #expect(headLength(c) == c.utf8.count)
    }

    @Test func hasRequestLine() {
        #expect(!Array("GET /very/long".utf8).withUnsafeBytes { HTTP1.hasRequestLine($0) })
        #expect(Array("GET / HTTP/1.1\r\nHost: x".utf8).withUnsafeBytes { HTTP1.hasRequestLine($0) })
        #expect(![UInt8]().withUnsafeBytes { HTTP1.hasRequestLine($0) })
    }

    // MARK: parseHead, happy paths

    @Test func parsesGetWithHeaders() throws {
        let (head, fields, b) = try parse("GET /mcp HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n")
        #expect(head.method == .get)
        #expect(text(b, head.path) == "/mcp")
        #expect(head.query == nil)
        #expect(head.minorVersion == 1)
        #expect(head.framing == .none)
        #expect(head.keepAlive)
        #expect(!head.expectsContinue)
        #expect(fields.count == 2)
        #expect(fields.map { text(b, $0.name) } == ["Host", "Accept"])
        #expect(fields.map { text(b, $0.value) } == ["example.com", "*/*"])
    }

    @Test func parsesPostWithBodyLength() throws {
        let (head, fields, b) = try parse(
            "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 42\r\n\r\n")
        #expect(head.method == .post)
        #expect(text(b, head.path) == "/mcp")
        #expect(head.framing == .length(42))
        #expect(fields.count == 3)
        #expect(text(b, fields[2].name) == "Content-Length")
        #expect(text(b, fields[2].value) == "42")
    }

    @Test func parsesBareLFHead() throws {
        let (head, fields, b) = try parse("POST /mcp HTTP/1.1\nHost: x\nContent-Length: 3\n\n")
        #expect(head.method == .post)
        #expect(head.framing == .length(3))
        #expect(fields.map { text(b, $0.value) } == ["x", "3"])
    }

    @Test(arguments: [
        ("GET", HTTPRequestMethod.get), ("POST", .post), ("HEAD", .head), ("PUT", .put), ("DELETE", .delete),
        ("OPTIONS", .options), ("TRACE", .trace), ("CONNECT", .connect), ("PATCH", .patch),
    ])
    func parsesEveryKnownMethod(name: String, method: HTTPRequestMethod) throws {
        let (head, _, _) = try parse("\(name) / HTTP/1.1\r\n\r\n")
        #expect(head.method == method)
        #expect(method.name == name)
    }

    @Test func fieldRangesAndValueTrimming() throws {
        let (_, fields, b) = try parse(
            "GET / HTTP/1.1\r\nX-A:   spaced value \t \r\nX-B:\ttabbed\t\r\nX-C:nospace\r\nX-Empty:\r\nX-Blank:   \t\r\n\r\n")
        #expect(fields.map { text(b, $0.name) } == ["X-A", "X-B", "X-C", "X-Empty", "X-Blank"])
        #expect(fields.map { text(b, $0.value) } == ["spaced value", "tabbed", "nospace", "", ""])
        // The ranges index the input bytes.
        let a = fields[0]
        #expect(Array(b[a.name]) == Array("X-A".utf8))
        #expect(a.name.lowerBound == "GET / HTTP/1.1\r\n".utf8.count)
        #expect(a.value.lowerBound == "GET / HTTP/1.1\r\nX-A:   ".utf8.count)
    }

    @Test func pathQueryAndFragment() throws {
        var (head, _, b) = try parse("GET /mcp?sessionId=abc#frag HTTP/1.1\r\n\r\n")
        #expect(text(b, head.path) == "/mcp")
        #expect(text(b, head.query) == "sessionId=abc")
        (head, _, b) = try parse("GET /mcp#frag?x=1 HTTP/1.1\r\n\r\n")
        #expect(text(b, head.path) == "/mcp")
        #expect(head.query == nil)
        (head, _, b) = try parse("GET /mcp? HTTP/1.1\r\n\r\n")
        #expect(text(b, head.path) == "/mcp")
        #expect(text(b, head.query) == "")
        (head, _, b) = try parse("GET /a/b/c?x=1&y=2 HTTP/1.1\r\n\r\n")
        #expect(text(b, head.path) == "/a/b/c")
        #expect(text(b, head.query) == "x=1&y=2")
    }

    @Test func absoluteFormTarget() throws {
        var (head, _, b) = try parse("GET http://host:8080/servers/x/mcp?q=1 HTTP/1.1\r\n\r\n")
        #expect(text(b, head.path) == "/servers/x/mcp")
        #expect(text(b, head.query) == "q=1")
        (head, _, b) = try parse("GET https://user:pw@host/mcp HTTP/1.1\r\n\r\n")
        #expect(text(b, head.path) == "/mcp")
        #expect(head.query == nil)
        (head, _, b) = try parse("GET http://[::1]:8080/mcp HTTP/1.1\r\n\r\n")
        #expect(text(b, head.path) == "/mcp")
        (head, _, b) = try parse("GET http://host:65535/mcp HTTP/1.1\r\n\r\n")
        #expect(text(b, head.path) == "/mcp")
    }

    @Test func absoluteFormWithoutPathMeansRoot() throws {
        var (head, _, _) = try parse("GET http://host HTTP/1.1\r\n\r\n")
        #expect(head.path.isEmpty && head.pathIsEmptyAbsolute)
        (head, _, _) = try parse("GET http://host?x=1 HTTP/1.1\r\n\r\n")
        #expect(head.pathIsEmptyAbsolute)
        (head, _, _) = try parse("GET /mcp HTTP/1.1\r\n\r\n")
        #expect(!head.pathIsEmptyAbsolute)
    }

    @Test func fieldNamesCompareIgnoringASCIICase() {
        let b = Array("Mcp-Session-ID".utf8)
        func eq(_ name: String) -> Bool {
            b.withUnsafeBufferPointer { p in Array(name.utf8).withUnsafeBytes { HTTP1.equalsIgnoringCase(p.baseAddress!, 0..<b.count, $0) }
            }
        }
        #expect(eq("mcp-session-id") && eq("MCP-SESSION-ID") && eq("Mcp-Session-Id"))
        #expect(!eq("mcp-session-i") && !eq("mcp-session-idx") && !eq("mcp_session-id"))
        // only ASCII letters fold: '-' (0x2D) and '\r' (0x0D) differ by 0x20 but are not the same character
        #expect(!eq("mcp\rsession-id"))
    }

    @Test func leadingEmptyLinesAreCounted() {
        func skip(_ s: String) -> Int { Array(s.utf8).withUnsafeBytes { HTTP1.leadingEmptyLines($0) } }
        #expect(skip("\r\n\nGET / HTTP/1.1\r\n\r\n") == 3)
        #expect(skip("GET / HTTP/1.1\r\n\r\n") == 0)
        #expect(skip("\r") == 0)  // a lone CR may be the start of a CRLF: wait for more
        #expect(skip("\rX") == 0)
    }

    @Test func relativeTargetIsKept() throws {
        let (head, _, b) = try parse("GET mcp HTTP/1.1\r\n\r\n")
        #expect(text(b, head.path) == "mcp")
        #expect(head.query == nil)
    }

    @Test func controlByteInTargetStaysInPath() throws {
        let (head, _, b) = try parse("GET /a\u{01}b HTTP/1.1\r\n\r\n")
        #expect(Array(b[head.path]) == [0x2F, 0x61, 0x01, 0x62])
    }

    @Test func http10KeepAliveIsOptIn() throws {
        var (head, _, _) = try parse("GET / HTTP/1.0\r\n\r\n")
        #expect(head.minorVersion == 0)
        #expect(!head.keepAlive)
        (head, _, _) = try parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        #expect(head.minorVersion == 0)
        #expect(head.keepAlive)
        (head, _, _) = try parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
        #expect(head.keepAlive)
        (head, _, _) = try parse("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n")
        #expect(!head.keepAlive)
        (head, _, _) = try parse("GET / HTTP/1.0\r\nConnection: close\r\n\r\n")
        #expect(!head.keepAlive)
    }

    @Test func http11KeepAliveUnlessClose() throws {
        var (head, _, _) = try parse("GET / HTTP/1.1\r\n\r\n")
        #expect(head.minorVersion == 1)
        #expect(head.keepAlive)
        (head, _, _) = try parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        #expect(!head.keepAlive)
        (head, _, _) = try parse("GET / HTTP/1.1\r\nConnection: CLOSE\r\n\r\n")
        #expect(!head.keepAlive)
        (head, _, _) = try parse("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n")
        #expect(!head.keepAlive)
        (head, _, _) = try parse("GET / HTTP/1.1\r\nConnection: foo,\tclose ,bar\r\n\r\n")
        #expect(!head.keepAlive)
        (head, _, _) = try parse("GET / HTTP/1.1\r\nConnection: closed, xclose\r\n\r\n")
        #expect(head.keepAlive)
        (head, _, _) = try parse("GET / HTTP/1.1\r\nConnection: upgrade\r\nConnection: close\r\n\r\n")
        #expect(!head.keepAlive)
    }

    @Test func contentLengthFraming() throws {
        var (head, _, _) = try parse("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n")
        #expect(head.framing == .length(5))
        (head, _, _) = try parse("POST / HTTP/1.1\r\ncontent-length:   7  \r\n\r\n")
        #expect(head.framing == .length(7))
        (head, _, _) = try parse("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        #expect(head.framing == .none)
        // Exactly maxBody is allowed.
        (head, _, _) = try parse("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n", maxBody: 100)
        #expect(head.framing == .length(100))
        (head, _, _) = try parse("POST / HTTP/1.0\r\nContent-Length: 5\r\n\r\n")
        #expect(head.framing == .length(5))
    }

    @Test func chunkedFraming() throws {
        var (head, _, _) = try parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(head.framing == .chunked)
        (head, _, _) = try parse("POST / HTTP/1.1\r\ntransfer-encoding:  Chunked \r\n\r\n")
        #expect(head.framing == .chunked)
    }

    @Test func expectContinue() throws {
        var (head, _, _) = try parse("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        #expect(head.expectsContinue)
        (head, _, _) = try parse("POST / HTTP/1.1\r\nexpect: 100-Continue\r\nContent-Length: 5\r\n\r\n")
        #expect(head.expectsContinue)
        // HTTP/1.0 clients do not wait for 100 Continue.
        (head, _, _) = try parse("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        #expect(!head.expectsContinue)
    }

    @Test func fieldsCapacityIsReused() throws {
        var fields: [HTTPField] = []
        let (h1, b1) = try parse("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n", fields: &fields)
        #expect(h1.method == .get)
        #expect(fields.count == 5)
        #expect(fields.map { text(b1, $0.name) } == ["A", "B", "C", "D", "E"])
        let capacity = fields.capacity
        let (h2, b2) = try parse("POST /x HTTP/1.1\r\nContent-Length: 1\r\n\r\n", fields: &fields)
        #expect(h2.method == .post)
        #expect(fields.count == 1)
        #expect(fields.capacity >= capacity)
        #expect(text(b2, fields[0].name) == "Content-Length")
        // A refused head leaves no stale fields from an earlier request behind.
        #expect(throws: HTTPRefusal.self) { try parse("garbage\r\n\r\n", fields: &fields) }
        #expect(fields.isEmpty)
    }

    @Test func maxFieldsBoundary() throws {
        let three = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"
        #expect(try parse(three, maxFields: 3).1.count == 3)
        #expect(status(three, maxFields: 2) == 431)
        let many = "GET / HTTP/1.1\r\n" + (0..<201).map { "X-\($0): v\r\n" }.joined() + "\r\n"
        #expect(status(many) == 431)
    }

    // MARK: refusals

    @Test(arguments: [
        ("garbage\r\n\r\n", 400),
        ("{not http}\r\n\r\n", 400),
        ("\r\n\r\n", 400),
        ("GET /mcp\r\n\r\n", 400),
        ("GET\r\n\r\n", 400),
        ("GET\t/mcp\tHTTP/1.1\r\n\r\n", 400),
        ("GET /mcp\tHTTP/1.1\r\n\r\n", 400),
        ("GET /mcp http/1.1\r\n\r\n", 400),
        ("GET /mcp HTTP/1.1 \r\n\r\n", 400),
        ("GET /mcp HTTP/11\r\n\r\n", 400),
        ("GET /mcp HTTP/2.0\r\n\r\n", 505),
        ("GET /mcp HTTP/0.9\r\n\r\n", 505),
        ("GET  HTTP/1.1\r\n\r\n", 400),
        ("GET  /mcp HTTP/1.1\r\n\r\n", 400),
        (" GET /mcp HTTP/1.1\r\n\r\n", 400),
        ("post /mcp HTTP/1.1\r\n\r\n", 501),
        ("PROPFIND /mcp HTTP/1.1\r\n\r\n", 501),
        ("GET http://user:pw@evil.example:99999/mcp HTTP/1.1\r\n\r\n", 400),
        ("GET http://host:80x/mcp HTTP/1.1\r\n\r\n", 400),
        ("GET http:///mcp HTTP/1.1\r\n\r\n", 400),
        ("GET http://[::1/mcp HTTP/1.1\r\n\r\n", 400),
    ])
    func requestLineRefusals(request: String, expected: Int) {
        #expect(status(request) == expected)
    }

    @Test(arguments: [
        ("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\n: value\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length\t: 5\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nX-A: 1\r\n  continued\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nX-A: 1\r\n\tcontinued\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\n X-A: 1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nX-A: a\u{0}b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nX-A: a\u{7F}b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nX-A: ab\u{0}\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nX(A): 1\r\n\r\n", 400),
    ])
    func headerRefusals(request: String, expected: Int) {
        #expect(status(request) == expected)
    }

    @Test(arguments: [
        ("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: 5a\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: 5 5\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: 123456789012345678901234567890\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n", 413),
        ("POST / HTTP/1.1\r\nContent-Length: 999999999999999999\r\n\r\n", 413),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nExpect: something-else\r\nContent-Length: 5\r\n\r\n", 417),
        ("POST / HTTP/1.1\r\nExpect: 100-continue-ish\r\n\r\n", 417),
    ])
    func framingRefusals(request: String, expected: Int) {
        #expect(status(request) == expected)
    }

    @Test func contentLengthOverMaxBodyIs413() {
        #expect(status("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", maxBody: 100) == 413)
        #expect(status("POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\n", maxBody: 0) == 413)
        #expect(status("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", maxBody: 0) == nil)
    }

    @Test func refusalCarriesReason() {
        do {
            _ = try parse("GET / HTTP/2.0\r\n\r\n")
            Issue.record("expected a refusal")
        } catch {
            #expect(error == HTTPRefusal(505, "HTTP Version Not Supported"))
        }
    }

    // MARK: ChunkedDecoder

    static let chunkedBody = "5\r\nhello\r\n1;ext=1\r\n \r\nb\r\nworld, and!\r\n0\r\n\r\n"

    @Test func chunkedWholeBody() throws {
        var d = ChunkedDecoder()
        let input = Array(Self.chunkedBody.utf8)
        let (consumed, body) = try feed(&d, input)
        #expect(consumed == input.count)
        #expect(d.isDone)
        #expect(String(decoding: body, as: UTF8.self) == "hello world, and!")
        #expect(d.total == body.count)
    }

    @Test func chunkedOneBytePiecesMatchWhole() throws {
        var whole = ChunkedDecoder()
        let input = Array(Self.chunkedBody.utf8)
        let expected = try feed(&whole, input).body

        var d = ChunkedDecoder()
        var body: [UInt8] = []
        for (k, byte) in input.enumerated() {
            let (consumed, piece) = try feed(&d, [byte])
            #expect(consumed == 1, "byte \(k)")
            body += piece
            #expect(d.isDone == (k == input.count - 1), "byte \(k)")
        }
        #expect(body == expected)
        #expect(d.total == expected.count)
        // After the end, nothing more is consumed.
        #expect(try feed(&d, Array("5\r\nhello\r\n".utf8)).consumed == 0)
    }

    @Test func chunkedAnySplitMatchesWhole() throws {
        let input = Array(Self.chunkedBody.utf8)
        for cut in 0...input.count {
            var d = ChunkedDecoder()
            let a = try feed(&d, Array(input[..<cut]))
            let b = try feed(&d, Array(input[cut...]))
            #expect(a.consumed + b.consumed == input.count)
            #expect(String(decoding: a.body + b.body, as: UTF8.self) == "hello world, and!", "cut \(cut)")
            #expect(d.isDone)
        }
    }

    @Test func chunkedExtensionsAccepted() throws {
        var d = ChunkedDecoder()
        let input = Array("5;ext=1\r\nhello\r\n3 ; a=\"b c\";d\r\nabc\r\n0;last\r\n\r\n".utf8)
        let (consumed, body) = try feed(&d, input)
        #expect(consumed == input.count)
        #expect(d.isDone)
        #expect(String(decoding: body, as: UTF8.self) == "helloabc")
    }

    @Test func chunkedTrailersDropped() throws {
        var d = ChunkedDecoder()
        let input = Array("5\r\nhello\r\n0\r\nX-Trailer: 1\r\nX-Other: two\r\n\r\n".utf8)
        let (consumed, body) = try feed(&d, input)
        #expect(consumed == input.count)
        #expect(d.isDone)
        #expect(String(decoding: body, as: UTF8.self) == "hello")
        #expect(d.total == 5)
    }

    @Test func chunkedBareLFAndUppercaseHex() throws {
        var d = ChunkedDecoder()
        let input = Array("A\nabcdefghij\n0\n\n".utf8)
        let (consumed, body) = try feed(&d, input)
        #expect(consumed == input.count)
        #expect(d.isDone)
        #expect(String(decoding: body, as: UTF8.self) == "abcdefghij")
    }

    @Test func chunkedStopsAtEndOfBody() throws {
        var d = ChunkedDecoder()
        let body = "5\r\nhello\r\n0\r\n\r\n"
        let input = Array((body + "GET / HTTP/1.1\r\n\r\n").utf8)
        let (consumed, out) = try feed(&d, input)
        #expect(consumed == body.utf8.count)
        #expect(consumed < input.count)
        #expect(d.isDone)
        #expect(String(decoding: out, as: UTF8.self) == "hello")
        // With trailers too.
        var t = ChunkedDecoder()
        let withTrailer = "0\r\nX: y\r\n\r\n"
        #expect(try feed(&t, Array((withTrailer + "next").utf8)).consumed == withTrailer.utf8.count)
        #expect(t.isDone)
        #expect(t.total == 0)
    }

    @Test func chunkedEmptyInputConsumesNothing() throws {
        var d = ChunkedDecoder()
        #expect(try feed(&d, []).consumed == 0)
        #expect(!d.isDone)
    }

    @Test(arguments: [
        ("zz\r\n", 400),
        ("g\r\n", 400),
        ("\r\n", 400),
        (";ext\r\n", 400),
        ("5\rX", 400),
        ("5\r\nhelloX", 400),
        ("5\r\nhello\rX", 400),
        ("5\r\nhelloworld\r\n", 400),
        ("5;a\u{01}\r\n", 400),
        ("0\r\n\rX", 400),
        ("-5\r\n", 400),
        ("0x5\r\n", 400),
        ("ffffffffffffffffff\r\n", 413),
        ("1000000000000000\r\n", 413),
    ])
    func chunkedErrors(input: String, expected: Int) {
        #expect(chunkedStatus(input) == expected)
    }

    @Test func chunkedTotalOverMaxBodyIs413() throws {
        #expect(chunkedStatus("5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", maxBody: 10) == 413)
        #expect(chunkedStatus("b\r\n", maxBody: 10) == 413)
        // Exactly maxBody is fine.
        var d = ChunkedDecoder()
        let (_, body) = try feed(&d, Array("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n".utf8), maxBody: 10)
        #expect(body.count == 10)
        #expect(d.total == 10)
        #expect(d.isDone)
        // The limit holds across calls.
        var e = ChunkedDecoder()
        _ = try feed(&e, Array("8\r\n12345678\r\n".utf8), maxBody: 10)
        #expect(throws: HTTPRefusal(413, "Payload Too Large")) {
            try feed(&e, Array("3\r\nabc\r\n".utf8), maxBody: 10)
        }
    }
}

// One HTTP request and its reply: a plain response, or a chunked stream (SSE) that ends later.
//
// The request's head and body belong to its HTTPConnection and stay valid until the exchange ends. If the
// client goes away first, the connection calls `connectionClosed`: the exchange is finished and `onClose`
// runs once. After that every write is a no-op, so the gateway never has to ask whether a client is still
// there before answering.

internal import CLibEvent
internal import SwitchyardCore
#if canImport(Glibc)
    internal import Glibc
#endif

package enum HTTPMethod: Equatable, Sendable {
    case get, post, delete, options, head, other(String)
}

package final class HTTPExchange {
    private var conn: HTTPConnection?
    /// The connection's request serial when we were created: its head bytes are ours while it matches.
    private let serial: Int
    private var chunked = false
    /// Called once if the client connection closes before we finish.
    package var onClose: (() -> Void)?
    /// The status line and headers of a stream were written.
    package private(set) var isStreaming = false
    package private(set) var isFinished = false
    /// Arrived over TLS.
    package let isSecure: Bool
    private let peerAddr: PeerAddress
    private let isHead: Bool
    private let minorVersion: Int

    init(connection: HTTPConnection) {
        conn = connection
        serial = connection.serial
        isSecure = connection.isSecure
        peerAddr = connection.peer
        isHead = connection.request.method == .head
        minorVersion = connection.request.minorVersion
    }

    /// The connection, while its head bytes still describe this request.
    private var current: HTTPConnection? {
        guard let c = conn, c.serial == serial else { return nil }
        return c
    }

    /// The TCP peer's address, without the port.
    package var peerAddress: String { peerAddr.host }

    package var peer: String {
        let h = peerAddr.host
        return h.isEmpty ? "-" : "\(h):\(peerAddr.port)"
    }

    package var method: HTTPMethod {
        guard let c = current else { return .other("") }
        switch c.request.method {
        case .get: return .get
        case .post: return .post
        case .delete: return .delete
        case .options: return .options
        case .head: return .head
        default: return .other(c.request.method.name)
        }
    }

    /// The raw (not percent-decoded) path, without the query.
    package var path: String {
        guard let c = current else { return "" }
        return c.request.pathIsEmptyAbsolute ? "/" : text(c, c.request.path)
    }

    package var query: String? {
        guard let c = current, let q = c.request.query else { return nil }
        return text(c, q)
    }

    private func text(_ c: HTTPConnection, _ r: Range<Int>) -> String {
        c.head.withUnsafeBytes { String(decoding: UnsafeRawBufferPointer(rebasing: $0[r]), as: UTF8.self) }
    }

    /// Calls `body` with each field of this request whose name matches (case-insensitive); stops when it
    /// returns false.
    private func eachField(_ name: UnsafeRawBufferPointer, _ body: (UnsafePointer<UInt8>, HTTPField) -> Bool) {
        guard let c = current else { return }
        c.head.withUnsafeBytes { raw in
            guard let p = raw.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
            for f in c.fields where HTTP1.equalsIgnoringCase(p, f.name, name) {
                if !body(p, f) { return }
            }
        }
    }

    @inline(__always) private func bytes(_ s: StaticString) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount)
    }

    /// The first value of a request header (case-insensitive name).
    package func header(_ name: StaticString) -> String? {
        var out: String?
        eachField(bytes(name)) { p, f in
            out = String(decoding: UnsafeBufferPointer(start: p + f.value.lowerBound, count: f.value.count), as: UTF8.self)
            return false
        }
        return out
    }

    /// Every value of a header, in order (case-insensitive name).
    package func headerValues(_ name: String) -> [String] {
        var out: [String] = []
        var name = name
        name.withUTF8 { n in
            eachField(UnsafeRawBufferPointer(n)) { p, f in
                out.append(String(decoding: UnsafeBufferPointer(start: p + f.value.lowerBound, count: f.value.count), as: UTF8.self))
                return true
            }
        }
        return out
    }

    /// True when the header's first value is exactly `value` (no String is built: the hot-path check).
    package func header(_ name: StaticString, is value: StaticString) -> Bool {
        var result = false
        eachField(bytes(name)) { p, f in
            result = f.value.count == value.utf8CodeUnitCount && memcmp(p + f.value.lowerBound, value.utf8Start, f.value.count) == 0
            return false
        }
        return result
    }

    /// How many times a header appears (duplicates of security-relevant headers are rejected).
    package func headerCount(_ name: StaticString) -> Int {
        var n = 0
        eachField(bytes(name)) { _, _ in
            n += 1
            return true
        }
        return n
    }

    /// Borrows the request body as contiguous bytes for the duration of `body`.
    package func withBody<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        guard let c = current, !isFinished else { return body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return c.withBody(body)
    }

    // MARK: replies

    static let sseHeaders: [(StaticString, StaticString)] = [
        ("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache, no-transform"), ("X-Accel-Buffering", "no"),
    ]

    /// A 200 JSON answer on the hot path: literal Content-Type, optional session header.
    package func respondJSON(sessionID: String?, body: OutBuffer) {
        guard let c = conn, !isFinished else { return }
        let h = HeadBuilder(c, status: 200, reason: "OK", minorVersion: minorVersion)
        h.add("Content-Type", "application/json")
        if let sid = sessionID { h.add("Mcp-Session-Id", sid) }
        h.finish(contentLength: body.count, keepAlive: c.request.keepAlive)
        c.emit(head: c.server.scratch, body: isHead ? nil : body.buf)
        body.clear()
        finish()
    }

    /// Sends a complete response and finishes the exchange.
    package func respond(status: Int, reason: String, headers: [(String, String)], body: OutBuffer?) {
        guard let c = conn, !isFinished else { return }
        let h = HeadBuilder(c, status: status, reason: reason, minorVersion: minorVersion)
        for (k, v) in headers {
            // The caller asks to close after this answer: the connection does it (one Connection header).
            if k.lowercased() == "connection", v.lowercased() == "close" {
                c.closeWhenDone()
                continue
            }
            h.add(k, v)
        }
        let n = body?.count ?? 0
        // 1xx, 204 and 304 carry no body and no Content-Length (RFC 9110 §8.6).
        let bodyless = status < 200 || status == 204 || status == 304
        h.finish(contentLength: bodyless ? nil : n, keepAlive: c.request.keepAlive)
        c.emit(head: c.server.scratch, body: isHead || bodyless ? nil : body?.buf)
        body?.clear()
        finish()
    }

    /// Starts an SSE stream with the standard headers (Content-Type, Cache-Control, X-Accel-Buffering).
    package func startSSE(sessionID: String?, inputWatermark: Int) {
        startStream(status: 200, static: HTTPExchange.sseHeaders, headers: [], sessionID: sessionID, inputWatermark: inputWatermark)
    }

    /// Starts a streaming reply: chunked on HTTP/1.1; on HTTP/1.0 the body ends when we close (H9).
    package func startStream(status: Int, headers: [(String, String)], sessionID: String? = nil, inputWatermark: Int) {
        startStream(status: status, static: [], headers: headers, sessionID: sessionID, inputWatermark: inputWatermark)
    }

    private func startStream(
        status: Int, static fixed: [(StaticString, StaticString)], headers: [(String, String)], sessionID: String?,
        inputWatermark: Int
    ) {
        guard let c = conn, !isFinished, !isStreaming else { return }
        let h = HeadBuilder(c, status: status, reason: "OK", minorVersion: minorVersion)
        for (k, v) in fixed { h.add(k, v) }
        for (k, v) in headers { h.add(k, v) }
        if let sid = sessionID { h.add("Mcp-Session-Id", sid) }
        chunked = minorVersion >= 1
        if !chunked { c.closeWhenDone() }
        h.finishStream(chunked: chunked, keepAlive: c.request.keepAlive)
        c.emit(head: c.server.scratch, body: nil)
        isStreaming = true
        c.inputLimit = inputWatermark
    }

    /// Unsent bytes on the connection: a slow reader shows up here (H15).
    package var backlogBytes: Int { conn?.backlogBytes ?? 0 }

    /// Writes one event (moved out of `data`), framed as one chunk.
    package func write(_ data: OutBuffer) {
        guard let c = conn, isStreaming, !isFinished else {
            data.clear()
            return
        }
        if chunked { c.emitChunk(data.buf) } else { c.emit(head: [], body: data.buf) }
        data.clear()
    }

    /// Ends a stream normally.
    package func endStream() {
        guard let c = conn, isStreaming, !isFinished else { return }
        if chunked { c.emitLiteral("0\r\n\r\n") }
        finish()
    }

    private func finish() {
        isFinished = true
        onClose = nil
        let c = conn
        conn = nil
        c?.exchangeFinished()
    }

    /// The client went away before we finished.
    func connectionClosed() {
        guard !isFinished else { return }
        isFinished = true
        conn = nil
        let cb = onClose
        onClose = nil
        cb?()
    }
}

/// Builds a response head in the server's scratch buffer (no allocation once it has grown).
struct HeadBuilder {
    let server: HTTPServer
    let minorVersion: Int
    init(_ c: HTTPConnection, status: Int, reason: String, minorVersion: Int) {
        server = c.server
        self.minorVersion = minorVersion
        server.scratch.removeAll(keepingCapacity: true)
        lit(minorVersion >= 1 ? "HTTP/1.1 " : "HTTP/1.0 ")
        decimal(status)
        lit(" ")
        str(reason)
        lit("\r\n")
    }

    func lit(_ s: StaticString) {
        server.scratch.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    func str(_ s: String) {
        var s = s
        s.withUTF8 { server.scratch.append(contentsOf: $0) }
    }

    func decimal(_ n: Int) {
        if n >= 10 { decimal(n / 10) }
        server.scratch.append(UInt8(0x30 + n % 10))
    }

    func add(_ k: StaticString, _ v: StaticString) {
        lit(k)
        lit(": ")
        lit(v)
        lit("\r\n")
    }

    func add(_ k: StaticString, _ v: String) {
        lit(k)
        lit(": ")
        str(v)
        lit("\r\n")
    }

    func add(_ k: String, _ v: String) {
        str(k)
        lit(": ")
        str(v)
        lit("\r\n")
    }

    private func common(keepAlive: Bool) {
        server.scratch.append(contentsOf: server.currentDateLine())
        if !keepAlive {
            lit("Connection: close\r\n")
        } else if minorVersion == 0 {
            lit("Connection: keep-alive\r\n")
        }
    }

    func finish(contentLength: Int?, keepAlive: Bool) {
        common(keepAlive: keepAlive)
        if let n = contentLength {
            lit("Content-Length: ")
            decimal(n)
            lit("\r\n")
        }
        lit("\r\n")
    }

    func finishStream(chunked: Bool, keepAlive: Bool) {
        common(keepAlive: chunked && keepAlive)
        if chunked { lit("Transfer-Encoding: chunked\r\n") }
        lit("\r\n")
    }
}

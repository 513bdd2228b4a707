// One HTTP request and its reply: a plain response, or a chunked stream (SSE) that ends later.
//
// Lifetime (libevent-notes H11–H13): evhttp owns the request. While we hold a deferred or streaming
// reply we register the connection's close callback, so a connection that goes away marks the
// exchange closed; the callback is cleared when we finish normally (H12). A stream whose peer left is
// freed with evhttp_send_reply_end; a detached deferred request with evhttp_request_free.

internal import CLibEvent
#if canImport(Glibc)
    internal import Glibc
#endif

package enum HTTPMethod: Equatable, Sendable {
    case get, post, delete, options, head, other(String)
}

package final class HTTPExchange {
    private var req: OpaquePointer?
    private var watchingClose = false
    private var streaming = false
    /// Called once if the client connection closes before we finish.
    package var onClose: (() -> Void)?
    /// The first bytes of a stream were written (status line and headers).
    package private(set) var isStreaming = false
    package private(set) var isFinished = false

    /// Arrived over TLS.
    package let isSecure: Bool

    init(request: OpaquePointer, secure: Bool) {
        req = request
        isSecure = secure
    }

    /// The TCP peer's address, without the port.
    package var peerAddress: String {
        guard let r = req, let c = evhttp_request_get_connection(r) else { return "" }
        var addr: UnsafeMutablePointer<CChar>?
        var port: UInt16 = 0
        evhttp_connection_get_peer(c, &addr, &port)
        return addr.map { String(cString: $0) } ?? ""
    }

    package var method: HTTPMethod {
        guard let r = req else { return .other("") }
        let m = evhttp_request_get_command(r)
        switch m {
        case EVHTTP_REQ_GET: return .get
        case EVHTTP_REQ_POST: return .post
        case EVHTTP_REQ_DELETE: return .delete
        case EVHTTP_REQ_OPTIONS: return .options
        case EVHTTP_REQ_HEAD: return .head
        case EVHTTP_REQ_PUT: return .other("PUT")
        case EVHTTP_REQ_PATCH: return .other("PATCH")
        case EVHTTP_REQ_TRACE: return .other("TRACE")
        case EVHTTP_REQ_CONNECT: return .other("CONNECT")
        default: return .other("?")
        }
    }

    /// The raw (not percent-decoded) path, without the query.
    package var path: String {
        guard let r = req, let uri = evhttp_request_get_evhttp_uri(r), let p = evhttp_uri_get_path(uri) else { return "" }
        return String(cString: p)
    }

    package var query: String? {
        guard let r = req, let uri = evhttp_request_get_evhttp_uri(r), let q = evhttp_uri_get_query(uri) else { return nil }
        return String(cString: q)
    }

    /// The first value of a request header (case-insensitive name). The name is a literal: passing it
    /// to C needs no bridging (a Swift String argument allocated a C copy on every call).
    package func header(_ name: StaticString) -> String? {
        guard let r = req, let h = evhttp_request_get_input_headers(r), let v = evhttp_find_header(h, cString(name)) else { return nil }
        return String(cString: v)
    }

    @inline(__always) func cString(_ s: StaticString) -> UnsafePointer<CChar> {
        UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
    }

    /// Every value of a header, in order (case-insensitive name).
    package func headerValues(_ name: String) -> [String] {
        guard let r = req, let h = evhttp_request_get_input_headers(r) else { return [] }
        var out: [String] = []
        name.withCString { cname in  // bridged once, not per header (that allocated on every call)
            var kv = h.pointee.tqh_first
            while let e = kv {
                if strcasecmp(e.pointee.key, cname) == 0 { out.append(String(cString: e.pointee.value)) }
                kv = e.pointee.next.tqe_next
            }
        }
        return out
    }

    /// True when the header is present with exactly `value` (no String is built: the hot-path check).
    package func header(_ name: StaticString, is value: StaticString) -> Bool {
        guard let r = req, let h = evhttp_request_get_input_headers(r) else { return false }
        guard let v = evhttp_find_header(h, cString(name)) else { return false }
        return strcmp(v, cString(value)) == 0
    }

    /// How many times a header appears (duplicates of security-relevant headers are rejected).
    package func headerCount(_ name: StaticString) -> Int {
        guard let r = req, let h = evhttp_request_get_input_headers(r) else { return 0 }
        let cname = cString(name)
        var n = 0
        var kv = h.pointee.tqh_first
        while let e = kv {
            if strcasecmp(e.pointee.key, cname) == 0 { n += 1 }
            kv = e.pointee.next.tqe_next
        }
        return n
    }

    package var peer: String {
        guard let r = req, let c = evhttp_request_get_connection(r) else { return "-" }
        var addr: UnsafeMutablePointer<CChar>?
        var port: UInt16 = 0
        evhttp_connection_get_peer(c, &addr, &port)
        guard let a = addr else { return "-" }
        return "\(String(cString: a)):\(port)"
    }

    /// Borrows the request body as contiguous bytes for the duration of `body`.
    package func withBody<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        guard let r = req, let b = evhttp_request_get_input_buffer(r) else { return body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        let n = evbuffer_get_length(b)
        guard n > 0, let p = evbuffer_pullup(b, -1) else { return body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return body(UnsafeRawBufferPointer(start: p, count: n))
    }

    private func addHeaders(_ headers: [(String, String)]) {
        guard let r = req, let out = evhttp_request_get_output_headers(r) else { return }
        for (k, v) in headers { evhttp_add_header(out, k, v) }
    }

    /// Literal headers go to C without bridging (a String argument is copied for C on every call).
    private func addHeaders(_ headers: [(StaticString, StaticString)]) {
        guard let r = req, let out = evhttp_request_get_output_headers(r) else { return }
        for (k, v) in headers { evhttp_add_header(out, cString(k), cString(v)) }
    }

    static let sseHeaders: [(StaticString, StaticString)] = [
        ("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache, no-transform"), ("X-Accel-Buffering", "no"),
    ]

    /// A 200 JSON answer on the hot path: literal Content-Type, optional session header.
    package func respondJSON(sessionID: String?, body: OutBuffer) {
        guard let r = req, !isFinished else { return }
        stopWatchingClose()
        addHeaders([("Content-Type", "application/json")] as [(StaticString, StaticString)])
        if let sid = sessionID, let out = evhttp_request_get_output_headers(r) { evhttp_add_header(out, "Mcp-Session-Id", sid) }
        evhttp_send_reply(r, 200, "OK", body.buf)
        finish()
    }

    /// Starts an SSE stream with the standard headers (Content-Type, Cache-Control, X-Accel-Buffering).
    package func startSSE(sessionID: String?, inputWatermark: Int) {
        guard req != nil, !isFinished else { return }
        addHeaders(HTTPExchange.sseHeaders)
        startStream(status: 200, headers: [] as [(String, String)], sessionID: sessionID, inputWatermark: inputWatermark)
    }

    /// Sends a complete response and finishes the exchange. The body is moved, not copied.
    package func respond(status: Int, reason: String, headers: [(String, String)], body: OutBuffer?) {
        guard let r = req, !isFinished else { return }
        stopWatchingClose()
        addHeaders(headers)
        evhttp_send_reply(r, Int32(status), reason, body?.buf)
        finish()
    }

    /// Keeps the exchange open for a later `respond` and learns when the connection is freed.
    package func deferReply() { watchClose() }

    /// Starts a chunked streaming reply (SSE). Later writes go through `write(_:)`.
    package func startStream(status: Int, headers: [(String, String)], sessionID: String? = nil, inputWatermark: Int) {
        guard let r = req, !isFinished else { return }
        // HTTP/1.0 + keep-alive would get Content-Length: 0 and then a stream (H9): force close-delimited.
        if let h = evhttp_request_get_input_headers(r) { evhttp_remove_header(h, "Connection") }
        addHeaders(headers)
        if let sid = sessionID, let out = evhttp_request_get_output_headers(r) { evhttp_add_header(out, "Mcp-Session-Id", sid) }
        watchClose()
        streaming = true
        isStreaming = true
        evhttp_send_reply_start(r, Int32(status), "OK")
        // Bytes the client sends while we stream would pile up without limit (H14).
        if let c = evhttp_request_get_connection(r), let bev = evhttp_connection_get_bufferevent(c) {
            bufferevent_setwatermark(bev, Int16(EV_READ), 0, inputWatermark)
        }
    }

    /// Unsent bytes on the connection: a slow reader shows up here (H15).
    package var backlogBytes: Int {
        guard let r = req, let c = evhttp_request_get_connection(r), let bev = evhttp_connection_get_bufferevent(c),
            let out = bufferevent_get_output(bev)
        else { return 0 }
        return evbuffer_get_length(out)
    }

    /// Writes one chunk (moved from `data`).
    package func write(_ data: OutBuffer) {
        guard let r = req, streaming, !isFinished else { return }
        evhttp_send_reply_chunk(r, data.buf)
    }

    /// Ends a stream normally.
    package func endStream() {
        guard let r = req, streaming, !isFinished else { return }
        stopWatchingClose()
        evhttp_send_reply_end(r)
        finish()
    }

    private func finish() {
        isFinished = true
        req = nil
        onClose = nil
    }

    private func watchClose() {
        guard !watchingClose, let r = req, let c = evhttp_request_get_connection(r) else { return }
        watchingClose = true
        // +1 while libevent can call us back; released in connectionClosed or stopWatchingClose.
        evhttp_connection_set_closecb(
            c, { _, arg in Unmanaged<HTTPExchange>.fromOpaque(arg!).takeRetainedValue().connectionClosed() },
            Unmanaged.passRetained(self).toOpaque())
    }

    private func stopWatchingClose() {
        guard watchingClose, let r = req else { return }
        watchingClose = false
        if let c = evhttp_request_get_connection(r) { evhttp_connection_set_closecb(c, nil, nil) }
        Unmanaged.passUnretained(self).release()
    }

    private func connectionClosed() {
        guard watchingClose, let r = req else { return }
        watchingClose = false
        let cb = onClose
        if streaming {
            evhttp_send_reply_end(r)  // frees a detached request; harmless for an attached one (H11)
        } else if evhttp_request_get_connection(r) == nil {
            evhttp_request_free(r)  // detached deferred request: ours to free
        }
        finish()
        cb?()
    }
}

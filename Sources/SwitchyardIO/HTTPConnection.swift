// One client connection: reads requests (SwitchyardCore.HTTP1 does the parsing), hands each to the
// server's handler as an HTTPExchange, writes the answers.
//
// Plain sockets are driven directly: EPOLLIN stays armed for the connection's whole life (so a client
// that leaves while its request is pending is noticed at once), reads go into a reserved evbuffer chain
// (no FIONREAD), and writes go out in one writev per loop turn, with EPOLLOUT armed only while the kernel
// buffer is full. TLS connections use a bufferevent_openssl for the record layer and the same HTTP code.
//
// One request at a time: pipelined requests wait in the input buffer until the current exchange ends.
// Every way out goes through `close(_:)`, which tells a pending exchange its client is gone.

internal import CLibEvent
internal import SwitchyardCore
#if canImport(Glibc)
    internal import Glibc
#endif

final class HTTPConnection {
    enum State {
        case head  // waiting for (the rest of) a request head
        case body(Int)  // Content-Length body of this many bytes
        case chunked  // chunked body being decoded into `chunkBody`
        case handling  // an exchange is in progress
        case lingering  // answered and shut down for writing; discarding input until EOF or timeout
        case closed
    }

    /// unowned(unsafe): the server outlives its connections (free() closes them first), and a checked
    /// unowned reference cost a refcount round trip on every access in the request path.
    unowned(unsafe) let server: HTTPServer
    let fd: Int32
    /// The TLS bufferevent, or nil for a plain socket.
    private(set) var bev: OpaquePointer?
    let peer: PeerAddress
    private var readEvent: OpaquePointer?
    private var writeEvent: OpaquePointer?
    private var writeArmed = false
    private var readPaused = false
    private var timer: OpaquePointer?
    let input: OpaquePointer
    /// Bytes waiting to be written (plain), or staged for the bufferevent until the end of the turn (TLS).
    let output: OpaquePointer
    private(set) var state = State.head
    /// The current request's head bytes (copied out of `input`) and its fields (ranges into `head`).
    private(set) var head: [UInt8] = []
    private(set) var fields: [HTTPField] = []
    private(set) var request = HTTPRequestHead()
    /// Content-Length body: its bytes stay at the front of `input` until the exchange ends.
    private var bodyInInput = 0
    private var chunkDecoder = ChunkedDecoder()
    private var chunkBody: OpaquePointer?
    private(set) var exchange: HTTPExchange?
    private var inHandler = false
    private var closeAfterWrite = false
    private var resumePending = false
    /// Bytes we accept from the client while an exchange is in progress before we stop reading.
    var inputLimit = 64 << 10
    var queuedForFlush = false
    /// Counts requests: an exchange reads the head only while the serial is still its own.
    private(set) var serial = 0

    init(server: HTTPServer, fd: Int32, tls: OpaquePointer?, peer: PeerAddress) {
        self.server = server
        self.fd = fd
        self.bev = tls
        self.peer = peer
        input = evbuffer_new()
        output = evbuffer_new()
    }

    deinit {
        evbuffer_free(input)
        evbuffer_free(output)
        if let c = chunkBody { evbuffer_free(c) }
    }

    var isSecure: Bool { bev != nil }
    var isClosed: Bool {
        if case .closed = state { return true }
        return false
    }

    private var me: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    func start() {
        let base = server.loop.base
        timer = event_new(
            base, -1, 0, { _, _, arg in Unmanaged<HTTPConnection>.fromOpaque(arg!).takeUnretainedValue().timedOut() }, me)
        if let bev {
            bufferevent_setcb(
                bev,
                { _, arg in Unmanaged<HTTPConnection>.fromOpaque(arg!).takeUnretainedValue().tlsReadable() },
                { _, arg in Unmanaged<HTTPConnection>.fromOpaque(arg!).takeUnretainedValue().tlsDrained() },
                { _, what, arg in Unmanaged<HTTPConnection>.fromOpaque(arg!).takeUnretainedValue().tlsEvent(what) }, me)
            bufferevent_enable(bev, Int16(EV_READ | EV_WRITE))
        } else {
            readEvent = event_new(
                base, fd, Int16(EV_READ | EV_PERSIST),
                { _, _, arg in Unmanaged<HTTPConnection>.fromOpaque(arg!).takeUnretainedValue().readable() }, me)
            event_add(readEvent, nil)
        }
        armTimer()
    }

    // MARK: reading

    private func readable() {
        // Read what the kernel has, in chunks sized for what we expect next (at most 8 per wake-up).
        reading: for _ in 0..<8 {
            var want = 16 << 10
            if case .body(let len) = state { want = max(want, min(len - evbuffer_get_length(input), 1 << 20)) }
            switch readAppending(fd: fd, into: input, max: want) {
            case .data(let n): if n < want { break reading }
            case .wouldBlock: break reading
            case .eof: return peerClosed()
            case .failed: return close(.error)
            }
        }
        afterInput()
    }

    private func tlsReadable() {
        guard let bev else { return }
        evbuffer_add_buffer(input, bufferevent_get_input(bev))
        afterInput()
    }

    private func afterInput() {
        switch state {
        case .lingering:
            evbuffer_drain(input, evbuffer_get_length(input))
        case .handling:
            // A pipelined request or stray bytes during a stream wait; past the limit we stop reading
            // (libevent-notes H14).
            if evbuffer_get_length(input) - bodyInInput > inputLimit { pauseReading() }
        default:
            process()
        }
    }

    private func peerClosed() {
        // Bytes that came with the EOF first: a complete request still gets its answer.
        if case .handling = state {
        } else if case .lingering = state {
        } else {
            process()
        }
        switch state {
        case .handling where exchange?.isStreaming == true:
            // The client left while we stream to it (H13): tell the exchange.
            close(.peerClosed)
        case .handling:
            // EOF with an answer pending: a client that half-closed after sending (or one that left; then
            // the write fails). Answer, then close; reading again would only repeat the EOF.
            closeAfterWrite = true
            pauseReading()
        case .closed:
            break
        default:
            if evbuffer_get_length(output) > 0 || (bev.map { evbuffer_get_length(bufferevent_get_output($0)) > 0 } ?? false) {
                // Finish writing first; reading again would only repeat the EOF.
                closeAfterWrite = true
                state = .lingering
                pauseReading()
                server.markDirty(self)
            } else {
                close(.peerClosed)
            }
        }
    }

    /// Parses and dispatches as many requests as the buffered input holds (one at a time).
    private func process() {
        while true {
            switch state {
            case .head:
                let have = evbuffer_get_length(input)
                if have == 0 { return }
                let window = min(have, server.limits.maxHeaderBytes)
                guard let p = evbuffer_pullup(input, window) else { return close(.error) }
                let bytes = UnsafeRawBufferPointer(start: p, count: window)
                let skip = HTTP1.leadingEmptyLines(bytes)
                if skip > 0 {
                    evbuffer_drain(input, skip)
                    continue
                }
                guard let len = HTTP1.headLength(bytes) else {
                    if have >= server.limits.maxHeaderBytes {
                        return HTTP1.hasRequestLine(bytes)
                            ? refuse(HTTPRefusal(431, "Request Header Fields Too Large"))
                            : refuse(HTTPRefusal(414, "URI Too Long"))
                    }
                    return
                }
                head.removeAll(keepingCapacity: true)
                head.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<len]))
                evbuffer_drain(input, len)
                let parsed = head.withUnsafeBytes { h in
                    Result { () throws(HTTPRefusal) in
                        try HTTP1.parseHead(h, fields: &fields, maxBody: server.limits.maxBodyBytes)
                    }
                }
                switch parsed {
                case .success(let r): request = r
                case .failure(let e): return refuse(e)
                }
                switch request.framing {
                case .none:
                    dispatch()
                case .length(let n):
                    state = .body(n)
                    sendContinueIfNeeded(have: evbuffer_get_length(input) >= n)
                case .chunked:
                    chunkDecoder = ChunkedDecoder()
                    if chunkBody == nil { chunkBody = evbuffer_new() }
                    state = .chunked
                    sendContinueIfNeeded(have: false)
                }
            case .body(let n):
                guard evbuffer_get_length(input) >= n else { return }
                bodyInInput = n
                dispatch()
            case .chunked:
                let have = evbuffer_get_length(input)
                if have == 0 { return }
                guard let p = evbuffer_pullup(input, have), let body = chunkBody else { return close(.error) }
                let consumed: Int
                do throws(HTTPRefusal) {
                    consumed = try chunkDecoder.decode(
                        UnsafeRawBufferPointer(start: p, count: have), maxBody: server.limits.maxBodyBytes
                    ) { r in evbuffer_add(body, p + r.lowerBound, r.count) }
                } catch {
                    return refuse(error)
                }
                evbuffer_drain(input, consumed)
                guard chunkDecoder.isDone else { return }
                dispatch()
            case .handling, .lingering, .closed:
                return
            }
        }
    }

    private func sendContinueIfNeeded(have: Bool) {
        guard request.expectsContinue, !have else { return }
        emitLiteral("HTTP/1.1 100 Continue\r\n\r\n")
    }

    private func dispatch() {
        state = .handling
        serial &+= 1
        if let t = timer { event_del(t) }
        let ex = HTTPExchange(connection: self)
        exchange = ex
        inHandler = true
        server.handler(ex)
        inHandler = false
        if exchange == nil { requestDone() }
    }

    /// The exchange ended (answered, stream ended). Called by HTTPExchange.
    func exchangeFinished() {
        exchange = nil
        if !request.keepAlive { closeAfterWrite = true }
        server.markDirty(self)
        // Inside the handler the body is still borrowed; dispatch() finishes up when it returns.
        if !inHandler {
            resumePending = true
        }
    }

    /// Drops the finished request's body and gets ready for the next one.
    private func requestDone() {
        if bodyInInput > 0 {
            evbuffer_drain(input, bodyInInput)
            bodyInInput = 0
        }
        if let c = chunkBody { evbuffer_drain(c, evbuffer_get_length(c)) }
        inputLimit = 64 << 10
        guard !closeAfterWrite else {
            state = .lingering
            return
        }
        state = .head
        resumeReading()
        armTimer()
    }

    /// Borrowed body bytes of the current request.
    func withBody<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        let buf: OpaquePointer?
        let n: Int
        if case .chunked = request.framing {
            buf = chunkBody
            n = chunkBody.map { evbuffer_get_length($0) } ?? 0
        } else {
            buf = input
            n = bodyInInput
        }
        guard n > 0, let b = buf, let p = evbuffer_pullup(b, n) else { return body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return body(UnsafeRawBufferPointer(start: p, count: n))
    }

    // MARK: writing

    /// A streamed reply without framing (HTTP/1.0) ends by closing the connection.
    func closeWhenDone() { request.keepAlive = false }

    /// Queues a response head and an optional body (moved out of `body`).
    func emit(head: [UInt8], body: OpaquePointer?) {
        head.withUnsafeBytes { appendFramed(prefix: $0, body: body, crlf: false) }
    }

    /// Queues one chunk of a chunked stream: hex size line, data, CRLF.
    func emitChunk(_ body: OpaquePointer) {
        let n = evbuffer_get_length(body)
        guard n > 0 else { return }  // a zero-size chunk would end the stream
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { line in
            var digits = 1
            while n >> (digits * 4) != 0 { digits += 1 }
            for i in 0..<digits {
                let d = UInt8((n >> ((digits - 1 - i) * 4)) & 0xF)
                line[i] = d < 10 ? 0x30 + d : 0x61 + d - 10
            }
            line[digits] = 0x0D
            line[digits + 1] = 0x0A
            appendFramed(prefix: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(line)[0..<(digits + 2)]), body: body, crlf: true)
        }
    }

    /// prefix + body (moved out) + optional CRLF into `output`, then a flush at the end of the turn. Small
    /// messages are copied into one contiguous chain: one iovec for writev, one record for TLS (libevent-notes
    /// T4); large bodies move their chains instead of being copied.
    private func appendFramed(prefix: UnsafeRawBufferPointer, body: OpaquePointer?, crlf: Bool) {
        if case .closed = state { return }
        let n = body.map { evbuffer_get_length($0) } ?? 0
        let tail = crlf ? 2 : 0
        if n <= 16 << 10 {
            let total = prefix.count + n + tail
            guard total > 0 else { return }
            var vec = iovec()
            guard evbuffer_reserve_space(output, total, &vec, 1) >= 1, let dst = vec.iov_base else { return close(.error) }
            if let p = prefix.baseAddress { memcpy(dst, p, prefix.count) }
            if let body, n > 0 {
                evbuffer_copyout(body, dst + prefix.count, n)
                evbuffer_drain(body, n)
            }
            if crlf { (dst + prefix.count + n).storeBytes(of: 0x0A0D, as: UInt16.self) }  // "\r\n", little-endian
            vec.iov_len = total
            evbuffer_commit_space(output, &vec, 1)
        } else {
            if let p = prefix.baseAddress { evbuffer_add(output, p, prefix.count) }
            if let body { evbuffer_add_buffer(output, body) }
            if crlf { evbuffer_add(output, "\r\n", 2) }
        }
        server.markDirty(self)
    }

    func emitLiteral(_ s: StaticString) {
        appendFramed(prefix: UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount), body: nil, crlf: false)
    }

    /// Runs once per loop turn for a connection that was marked dirty: resume a pipelined request, then write.
    func turnEnded() {
        if case .closed = state { return }
        if resumePending {
            resumePending = false
            if case .handling = state, exchange == nil {
                requestDone()
                if case .head = state, evbuffer_get_length(input) > 0 { process() }
            }
        }
        flush()
    }

    func flush() {
        if case .closed = state { return }
        if let bev {
            if evbuffer_get_length(output) > 0 { bufferevent_write_buffer(bev, output) }
            if closeAfterWrite, exchange == nil, evbuffer_get_length(bufferevent_get_output(bev)) == 0 { close(.done) }
            return
        }
        while evbuffer_get_length(output) > 0 {
            let n = evbuffer_write(output, fd)
            if n < 0 {
                let e = sy_errno()
                if e == EINTR { continue }
                if e == EAGAIN || e == EWOULDBLOCK { break }
                return close(.error)
            }
            if n == 0 { break }
        }
        if evbuffer_get_length(output) > 0 {
            armWrite()
        } else {
            disarmWrite()
            if closeAfterWrite, exchange == nil { linger() }
        }
    }

    private func armWrite() {
        guard !writeArmed else { return }
        if writeEvent == nil {
            writeEvent = event_new(
                server.loop.base, fd, Int16(EV_WRITE | EV_PERSIST),
                { _, _, arg in Unmanaged<HTTPConnection>.fromOpaque(arg!).takeUnretainedValue().flush() }, me)
        }
        event_add(writeEvent, nil)
        writeArmed = true
    }

    private func disarmWrite() {
        guard writeArmed, let w = writeEvent else { return }
        event_del(w)
        writeArmed = false
    }

    /// Unsent bytes: a slow reader shows up here (H15).
    var backlogBytes: Int {
        var n = evbuffer_get_length(output)
        if let bev { n += evbuffer_get_length(bufferevent_get_output(bev)) }
        return n
    }

    /// After the last answer: stop writing, read until the client's EOF (so our answer is not reset by
    /// unread bytes), give up after two seconds.
    private func linger() {
        guard !isClosed, !shutDownForWriting else { return }
        shutDownForWriting = true
        state = .lingering
        shutdown(fd, Int32(SHUT_WR))
        evbuffer_drain(input, evbuffer_get_length(input))
        resumeReading()
        if let t = timer {
            var tv = timeval(tv_sec: 2, tv_usec: 0)
            event_add(t, &tv)
        }
    }
    private var shutDownForWriting = false

    private func tlsDrained() {
        if closeAfterWrite, exchange == nil, evbuffer_get_length(output) == 0 { close(.done) }
    }

    private func tlsEvent(_ what: Int16) {
        if what & Int16(BEV_EVENT_EOF) != 0 {
            peerClosed()
        } else if what & Int16(BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT) != 0 {
            close(.error)
        }
    }

    // MARK: refusals, pausing, timers, closing

    /// Answers a request we cannot read and closes: nothing after it on this connection is read.
    private func refuse(_ r: HTTPRefusal) {
        let h = HeadBuilder(self, status: r.status, reason: r.reason, minorVersion: 1)
        h.add("Content-Type", "application/json")
        let body = "{\"error\":\"\(r.reason.lowercased())\"}"
        h.finish(contentLength: body.utf8.count, keepAlive: false)
        h.str(body)
        emit(head: server.scratch, body: nil)
        evbuffer_drain(input, evbuffer_get_length(input))
        closeAfterWrite = true
        state = .lingering
    }

    private func pauseReading() {
        guard !readPaused else { return }
        readPaused = true
        if let bev { bufferevent_disable(bev, Int16(EV_READ)) } else if let r = readEvent { event_del(r) }
    }

    private func resumeReading() {
        guard readPaused else { return }
        readPaused = false
        if let bev { bufferevent_enable(bev, Int16(EV_READ)) } else if let r = readEvent { event_add(r, nil) }
    }

    private func armTimer() {
        guard let t = timer else { return }
        event_add(t, server.timeout)
    }

    private func timedOut() {
        // Idle keep-alive, a slow request, or a lingering close: all end the same way.
        close(.timeout)
    }

    /// Why a connection ended (counted per server: `HTTPServer.closedBy`).
    enum CloseReason: Int, CaseIterable {
        case done, peerClosed, timeout, error, shutdown
        var label: String {
            switch self {
            case .done: "done"
            case .peerClosed: "client_closed"
            case .timeout: "timeout"
            case .error: "error"
            case .shutdown: "shutdown"
            }
        }
    }

    /// Closes a connection from outside (server shutdown).
    func abort() { close(.shutdown) }

    /// The one way out: frees the events and the socket, tells a pending exchange its client is gone.
    func close(_ reason: CloseReason) {
        if case .closed = state { return }
        state = .closed
        if let r = readEvent { event_del(r) }
        if let w = writeEvent { event_del(w) }
        if let t = timer { event_del(t) }
        if let b = bev {
            bufferevent_setcb(b, nil, nil, nil, nil)
            bufferevent_disable(b, Int16(EV_READ | EV_WRITE))
        } else {
            Glibc.close(fd)
        }
        server.forget(self, reason)
        let ex = exchange
        exchange = nil
        // libevent objects are freed after the current callback (one of them may be running now).
        let r = readEvent, w = writeEvent, t = timer, b = bev
        readEvent = nil
        writeEvent = nil
        timer = nil
        bev = nil
        server.loop.runSoon {
            if let r { event_free(r) }
            if let w { event_free(w) }
            if let t { event_free(t) }
            if let b { bufferevent_free(b) }
            _ = self  // keeps the connection (and its buffers) alive until then
        }
        ex?.connectionClosed()
    }
}

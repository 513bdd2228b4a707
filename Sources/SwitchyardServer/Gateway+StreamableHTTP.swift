// The Streamable HTTP front end (2025-03-26 … 2025-11-25): POST, GET, DELETE and OPTIONS on /mcp.

internal import SwitchyardCore
internal import SwitchyardIO

extension Gateway {
    static let corsAllowHeaders =
        "Content-Type, Accept, Authorization, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID"

    func handle(_ ex: HTTPExchange) {
        // Conflicting framing (two Content-Lengths, Content-Length with Transfer-Encoding) never gets here:
        // the HTTP layer refuses it with 400 and closes (SwitchyardCore.HTTP1).
        if ex.method == .other("CONNECT") {
            // CONNECT's target is an authority, not a path, and whatever follows it is not HTTP: 405 and close.
            respondError(
                ex, 405, "Method Not Allowed", JSONRPCErrorCode.serverError, "Method Not Allowed",
                extra: [("Allow", "GET, POST, DELETE, OPTIONS"), ("Connection", "close")])
            return
        }
        if shuttingDown {
            respondError(
                ex, 503, "Service Unavailable", JSONRPCErrorCode.serverError, "gateway is shutting down", extra: [("Retry-After", "1")])
            return
        }
        let path = ex.path
        switch Route.parse(path) {
        case .health:
            respondJSON(ex, 200, "OK", Array(#"{"status":"ok"}"#.utf8))
        case .notFound:
            var body: [UInt8] = Array(#"{"error":"not found","path":"#.utf8)
            JSONText.appendString(path, to: &body)
            body.append(contentsOf: #","hint":"MCP endpoints: /mcp, /sse, /messages, /servers/<name>/{mcp,sse,messages}"}"#.utf8)
            respondJSON(ex, 404, "Not Found", body)
        case .endpoint(let server, let kind):
            guard let pool = pools[server ?? config.defaultServer] else {
                var body: [UInt8] = Array(#"{"error":"unknown server","server":"#.utf8)
                JSONText.appendString(server ?? "", to: &body)
                body.append(contentsOf: "}".utf8)
                respondJSON(ex, 404, "Not Found", body)
                return
            }
            // Origin before anything else (H-30, A-09): loopback, the allowed list, or this gateway's own
            // origin as the client reached it through a trusted proxy. Non-browser clients send no Origin.
            if let origin = ex.header("Origin"), ex.headerCount("Origin") > 1 || !originAllowed(ex, origin) {
                respondError(ex, 403, "Forbidden", JSONRPCErrorCode.serverError, "Forbidden: Origin not allowed")
                return
            }
            // CORS preflights carry no credentials; everything else needs a key when keys are configured.
            if !(kind == .streamable && ex.method == .options) {
                guard authorize(ex, server: pool.spec.name) else { return }
            }
            switch kind {
            case .streamable: streamableHTTP(ex, pool)
            case .sseStream: legacyStream(ex, pool)
            case .sseMessages: legacyPost(ex, pool)
            }
        }
    }

    func originAllowed(_ ex: HTTPExchange, _ origin: String) -> Bool {
        if origins.permits(origin) { return true }
        let view = ClientView.resolve(
            peer: ex.peerAddress, secure: ex.isSecure, host: ex.header("Host"), forwardedFor: ex.header("X-Forwarded-For"),
            forwardedHost: ex.header("X-Forwarded-Host"), forwardedProto: ex.header("X-Forwarded-Proto"), trusted: config.trustedProxies)
        return view.viaTrustedProxy && origin.lowercased() == view.origin
    }

    func streamableHTTP(_ ex: HTTPExchange, _ pool: ServerPool) {
        switch ex.method {
        case .post: post(ex, pool)
        case .get: get(ex, pool)
        case .delete: delete(ex, pool)
        case .options: preflight(ex)
        default:
            respondError(
                ex, 405, "Method Not Allowed", JSONRPCErrorCode.serverError, "Method Not Allowed",
                extra: [("Allow", "GET, POST, DELETE, OPTIONS")])
        }
    }

    func preflight(_ ex: HTTPExchange) {
        ex.respond(
            status: 204, reason: "No Content",
            headers: [
                ("Access-Control-Allow-Origin", ex.header("Origin") ?? "*"),
                ("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS"),
                ("Access-Control-Allow-Headers", Gateway.corsAllowHeaders),
                ("Access-Control-Expose-Headers", "Mcp-Session-Id, WWW-Authenticate"),
                ("Access-Control-Max-Age", "86400"),
            ], body: nil)
    }

    // MARK: - POST

    func post(_ ex: HTTPExchange, _ pool: ServerPool) {
        guard ex.header("Content-Type", is: "application/json") || MediaType.isJSON(contentType: ex.header("Content-Type")) else {
            respondError(
                ex, 415, "Unsupported Media Type", JSONRPCErrorCode.serverError,
                "Unsupported Media Type: Content-Type must be application/json")
            return
        }
        let accept =
            ex.header("Accept", is: "application/json, text/event-stream")
            ? AcceptSet(json: true, sse: true) : AcceptSet(header: ex.header("Accept"))
        guard accept.allowsAny else {
            respondError(
                ex, 406, "Not Acceptable", JSONRPCErrorCode.serverError,
                "Not Acceptable: Accept must allow application/json or text/event-stream")
            return
        }
        if ex.headerCount("Mcp-Session-Id") > 1 {
            respondError(ex, 400, "Bad Request", JSONRPCErrorCode.serverError, "Bad Request: more than one Mcp-Session-Id header")
            return
        }
        ex.withBody { body in postBody(ex, pool, body, accept) }
    }

    func postBody(_ ex: HTTPExchange, _ pool: ServerPool, _ body: UnsafeRawBufferPointer, _ accept: AcceptSet) {
        var first = 0
        while first < body.count, body[first] == 0x20 || body[first] == 0x0A || body[first] == 0x0D || body[first] == 0x09 { first += 1 }
        let sessionHeader = ex.header("Mcp-Session-Id")
        if first < body.count && body[first] == UInt8(ascii: "[") {
            postBatch(ex, pool, body, accept, sessionHeader)
            return
        }
        let env: Envelope
        do {
            env = try EnvelopeScanner.scan(body)
        } catch {
            respondError(ex, 400, "Bad Request", error.code, error.message)
            return
        }
        if env.kind == .request, let m = env.method, EnvelopeScanner.equals(body, m, "\"initialize\"") {
            if let sid = sessionHeader {
                if let live = sessions[sid], live.serverName == pool.spec.name, live.transport == .streamable {
                    respondError(
                        ex, 400, "Bad Request", JSONRPCErrorCode.invalidRequest, "Invalid Request: session already initialized",
                        session: sid)
                } else {
                    sessionNotFound(ex, sid)
                }
                return
            }
            initialize(ex, pool, body, env, accept)
            return
        }
        guard let session = lookupSession(ex, sessionHeader, pool) else { return }
        let expected = env.kind == .request ? 1 : 0
        let mode = env.kind == .request ? replyMode(body, env, accept) : .json
        let reply = Reply(exchange: ex, mode: mode, isBatch: false, expected: expected, sessionID: session.id)
        forward(session, body, env, reply)
        finishPost(reply, session)
    }

    func postBatch(_ ex: HTTPExchange, _ pool: ServerPool, _ body: UnsafeRawBufferPointer, _ accept: AcceptSet, _ sessionHeader: String?) {
        let spans: [Span]
        do {
            spans = try JSONScanner.arrayElements(body)
        } catch {
            respondError(ex, 400, "Bad Request", JSONRPCErrorCode.parseError, "Parse error: invalid JSON at byte \(error.offset)")
            return
        }
        // Classify every element first: an initialize inside a batch is refused even without a session.
        var envelopes: [Envelope] = []
        for s in spans {
            do throws(EnvelopeError) {
                let e = try EnvelopeScanner.scanElement(body, span: s)
                if e.kind == .request, let m = e.method, EnvelopeScanner.equals(body, m, "\"initialize\"") {
                    respondError(
                        ex, 400, "Bad Request", JSONRPCErrorCode.invalidRequest, "Invalid Request: initialize must not be batched",
                        session: sessionHeader.flatMap { sessions[$0] != nil ? $0 : nil })
                    return
                }
                envelopes.append(e)
            } catch {
                respondError(ex, 400, "Bad Request", error.code, "\(error.message) (batch element)")
                return
            }
        }
        guard let session = lookupSession(ex, sessionHeader, pool) else { return }
        guard session.lifecycle.allowsBatches else {
            respondError(
                ex, 400, "Bad Request", JSONRPCErrorCode.invalidRequest,
                "Invalid Request: batches are only allowed in protocol version 2025-03-26 (this session: \(session.lifecycle.protocolVersion))",
                session: session.id)
            return
        }
        if spans.isEmpty {
            respondError(ex, 400, "Bad Request", JSONRPCErrorCode.invalidRequest, "Invalid Request: empty batch", session: session.id)
            return
        }
        let requests = envelopes.filter { $0.kind == .request }.count
        let mode: ReplyMode = accept.sse ? .sse : .json
        let reply = Reply(exchange: ex, mode: mode, isBatch: true, expected: requests, sessionID: session.id)
        for (s, e) in zip(spans, envelopes) {
            let element = UnsafeRawBufferPointer(rebasing: body[s.start..<s.end])
            var shifted = e
            shifted.id = e.id.map { Span($0.start - s.start, $0.end - s.start) }
            shifted.method = e.method.map { Span($0.start - s.start, $0.end - s.start) }
            shifted.params = e.params.map { Span($0.start - s.start, $0.end - s.start) }
            forward(session, element, shifted, reply)
        }
        finishPost(reply, session)
    }

    /// After forwarding: 202 when nothing awaits an answer; otherwise open the stream or defer the JSON.
    func finishPost(_ reply: Reply, _ session: Session) {
        let ex = reply.exchange
        if ex.isFinished { return }
        if reply.expected == 0 {
            ex.respond(status: 202, reason: "Accepted", headers: [("Mcp-Session-Id", session.id)], body: nil)
            return
        }
        if reply.delivered >= reply.expected && reply.mode == .json && !reply.isBatch { return }
        switch reply.mode {
        case .sse:
            guard reply.stream == nil else { return }
            reply.session = session
            reply.lazyStart = true
            let delay = config.limits.sseStartDelayMs
            if delay == 0 || reply.delivered >= reply.expected {
                if let stream = ensureStream(reply), reply.delivered >= reply.expected { endStream(stream) }
                return
            }
            // Fast tools answer within the delay: headers, event and end then leave in one write.
            reply.startDeadlineMs = loop.nowMillis + delay
            lazyReplies.append(reply)
            if !lazyTimer.isPending { lazyTimer.schedule(afterMillis: delay) }
        case .json:
            if reply.delivered >= reply.expected { sendJSON(reply) }  // else: answered when the child replies
        }
    }

    /// The SSE stream of a POST reply, opened now if it was waiting (lazy start); nil when the client left.
    func ensureStream(_ reply: Reply) -> SSEStream? {
        if let s = reply.stream { return s }
        guard reply.lazyStart, reply.isOpen else { return nil }
        let stream = openStream(reply.exchange, session: reply.session, isGet: false, sessionHeader: true)
        reply.stream = stream
        // Messages already collected (answered before the stream opened) go out now.
        let early = reply.collected
        reply.collected.removeAll()
        for m in early { m.withUnsafeBytes { writeEvent(stream, $0) } }
        return stream
    }

    /// Opens the streams of lazy replies whose delay ran out.
    func startDueStreams() {
        let now = loop.nowMillis
        var next = Int.max
        lazyReplies.removeAll { r in
            if r.stream != nil || !r.isOpen { return true }
            if r.startDeadlineMs <= now {
                _ = ensureStream(r)
                return true
            }
            next = min(next, r.startDeadlineMs)
            return false
        }
        if next != Int.max { lazyTimer.schedule(afterMillis: max(1, next - now)) }
    }

    func replyMode(_ body: UnsafeRawBufferPointer, _ env: Envelope, _ accept: AcceptSet) -> ReplyMode {
        guard let m = env.method else { return accept.json ? .json : .sse }
        let token = EnvelopeScanner.progressToken(body, params: env.params) != nil
        return ReplyPolicy.mode(body, method: m, hasProgressToken: token, accept: accept)
    }

    /// Resolves the session of a non-initialize request, or answers 400/404 and returns nil.
    func lookupSession(_ ex: HTTPExchange, _ header: String?, _ pool: ServerPool, _ transport: Session.Transport = .streamable) -> Session?
    {
        if let v = ex.header("MCP-Protocol-Version"), !ProtocolVersion.isSupported(v) {
            respondError(
                ex, 400, "Bad Request", JSONRPCErrorCode.serverError,
                "Bad Request: unsupported MCP-Protocol-Version \"\(v)\" (supported: \(ProtocolVersion.supported.joined(separator: ", ")))")
            return nil
        }
        guard let sid = header else {
            respondError(
                ex, 400, "Bad Request", JSONRPCErrorCode.serverError,
                "Bad Request: Mcp-Session-Id header is required (send initialize first)")
            return nil
        }
        // A session belongs to the server, transport and key that created it (A-07: no cross-key reuse).
        guard let session = sessions[sid], session.serverName == pool.spec.name, session.transport == transport,
            session.keyLabel == requestKey?.label
        else {
            sessionNotFound(ex, sid)
            return nil
        }
        session.lifecycle.touch(nowMs: loop.nowMillis)
        return session
    }

    func sessionNotFound(_ ex: HTTPExchange, _ sid: String) {
        var message = "Session not found"
        if let why = ended.reason(sid) {
            switch why {
            case .childExited, .childLineTooLong:
                message += ": it ended because its MCP server process exited; start a new session (initialize)"
            default: message += ": it ended (\(why.rawValue)); start a new session (initialize)"
            }
        }
        respondError(ex, 404, "Not Found", JSONRPCErrorCode.sessionNotFound, message)
    }

    // MARK: - initialize

    func initialize(_ ex: HTTPExchange, _ pool: ServerPool, _ body: UnsafeRawBufferPointer, _ env: Envelope, _ accept: AcceptSet) {
        guard admitSession(ex) else { return }
        let session = Session(id: SecureRandom.hex(bytes: 16), serverName: pool.spec.name, transport: .streamable, nowMs: loop.nowMillis)
        sessions[session.id] = session
        session.keyLabel = requestKey?.label
        session.initializeStarted = true
        let mode: ReplyMode = accept.json ? .json : .sse
        let reply = Reply(exchange: ex, mode: mode, isBatch: false, expected: 1, sessionID: session.id)
        let message = Array(body)
        session.requestedVersion = requestedVersion(body, env)
        log.info(
            "session_opened",
            [
                ("session", session.id), ("server", pool.spec.name), ("transport", "streamable"), ("key", requestKey?.label ?? "-"),
                ("peer", ex.peer),
            ])
        attach(session, pool) { [weak self] result in
            guard let self else { return }
            message.withUnsafeBytes { b in self.initializeOnChild(session, result, b, reply) }
        }
        finishPost(reply, session)
    }

    /// Completes a client's `initialize` once the session has a child (or failed to get one). Shared
    /// children answer from their cached InitializeResult; dedicated ones get the client's own request.
    func initializeOnChild(_ session: Session, _ result: Result<Child, SpawnFailure>, _ body: UnsafeRawBufferPointer, _ reply: Reply) {
        guard let env = try? EnvelopeScanner.scan(body), let id = env.id else { return }
        let idBytes = Array(UnsafeRawBufferPointer(rebasing: body[id.start..<id.end]))
        switch result {
        case .failure(let f):
            endSession(session, .spawnFailed)  // first, so the error carries no session id
            let e = JSONText.errorResponse(id: idBytes, code: JSONRPCErrorCode.serverError, message: f.message)
            e.withUnsafeBytes { deliver(reply, $0) }
        case .success(let child):
            if let shared = child.shared {
                let version = shared.negotiate(client: session.requestedVersion)
                _ = session.lifecycle.initializeSucceeded(version: version)
                log.info(
                    "session_ready",
                    [("session", session.id), ("server", session.serverName), ("protocol", version), ("pid", String(child.pid))])
                shared.response(id: idBytes, version: version).withUnsafeBytes { deliver(reply, $0) }
            } else {
                forward(session, body, env, reply, isInitialize: true)
            }
        }
    }

    func requestedVersion(_ body: UnsafeRawBufferPointer, _ env: Envelope) -> String? {
        guard let p = env.params, let (v, k) = EnvelopeScanner.member(body, of: p, key: "\"protocolVersion\""), k == .string else {
            return nil
        }
        return JSONText.decodeString(body, v)
    }

    /// False (and a 503 sent) when the session limit is reached.
    func admitSession(_ ex: HTTPExchange) -> Bool {
        if keySessionLimitReached(ex) { return false }
        guard sessions.count < config.limits.maxSessions else {
            log.warn("session_limit", [("max_sessions", String(config.limits.maxSessions))])
            respondError(
                ex, 503, "Service Unavailable", JSONRPCErrorCode.serverError,
                "too many sessions (limit \(config.limits.maxSessions)); retry later", extra: [("Retry-After", "1")])
            return false
        }
        return true
    }

    // MARK: - Delivering answers

    /// Delivers one response (bytes with the client's id) to the POST that asked for it.
    func deliver(_ reply: Reply, _ bytes: UnsafeRawBufferPointer) {
        reply.delivered += 1
        switch reply.mode {
        case .sse:
            if let stream = reply.stream ?? ensureStream(reply) {
                writeEvent(stream, bytes)
                if reply.endsStream && reply.delivered >= reply.expected { endStream(stream) }
            } else if !reply.lazyStart {
                reply.collected.append(Array(bytes))  // answered before finishPost decided on the stream
            }
        case .json:
            reply.collected.append(Array(bytes))
            if reply.delivered >= reply.expected { sendJSON(reply) }
        }
    }

    func sendJSON(_ reply: Reply) {
        guard reply.isOpen else { return }
        let out = OutBuffer()
        if reply.isBatch {
            out.append("[")
            for (k, m) in reply.collected.enumerated() {
                if k > 0 { out.append(",") }
                out.append(m)
            }
            out.append("]")
        } else if let m = reply.collected.first {
            out.append(m)
        }
        reply.collected.removeAll()
        reply.exchange.respondJSON(sessionID: sessions[reply.sessionID] != nil ? reply.sessionID : nil, body: out)
    }

    // MARK: - GET and DELETE

    func get(_ ex: HTTPExchange, _ pool: ServerPool) {
        let accept = AcceptSet(header: ex.header("Accept"))
        guard accept.sse else {
            respondError(ex, 406, "Not Acceptable", JSONRPCErrorCode.serverError, "Not Acceptable: GET needs Accept: text/event-stream")
            return
        }
        guard let session = lookupSession(ex, ex.header("Mcp-Session-Id"), pool) else { return }
        if session.getStream == nil && keyStreamLimitReached(ex) { return }
        // A new GET replaces the old stream instead of 409 (H-12, P9).
        if let old = session.getStream {
            log.debug("get_stream_replaced", [("session", session.id)])
            endStream(old)
        }
        let stream = openStream(ex, session: session, isGet: true, sessionHeader: true)
        session.getStream = stream
        let queued = session.queued
        session.queued.removeAll()
        for m in queued { m.withUnsafeBytes { writeEvent(stream, $0) } }
    }

    func delete(_ ex: HTTPExchange, _ pool: ServerPool) {
        guard let session = lookupSession(ex, ex.header("Mcp-Session-Id"), pool) else { return }
        endSession(session, .clientDeleted)
        ex.respond(status: 200, reason: "OK", headers: [], body: nil)
    }

    // MARK: - Error answers

    func respondJSON(_ ex: HTTPExchange, _ status: Int, _ reason: String, _ body: [UInt8], extra: [(String, String)] = []) {
        let out = OutBuffer()
        out.append(body)
        ex.respond(status: status, reason: reason, headers: [("Content-Type", "application/json")] + extra, body: out)
    }

    func respondError(
        _ ex: HTTPExchange, _ status: Int, _ reason: String, _ code: Int, _ message: String, session: String? = nil,
        extra: [(String, String)] = []
    ) {
        log.debug("request_rejected", [("status", String(status)), ("message", message), ("peer", ex.peer)])
        var headers = extra
        if let s = session { headers.append(("Mcp-Session-Id", s)) }
        respondJSON(ex, status, reason, JSONText.errorResponse(id: nil, code: code, message: message), extra: headers)
    }

    // MARK: - Shutdown

    func beginShutdown(signal: Int32) {
        if shuttingDown {
            log.warn("second_signal", [("signal", String(signal)), ("action", "killing children now")])
            for c in children.values { c.process.signalGroup(9) }
            loop.stop()
            return
        }
        shuttingDown = true
        log.info("shutting_down", [("signal", String(signal)), ("sessions", String(sessions.count)), ("children", String(children.count))])
        http.stopAccepting()
        admin?.stopAccepting()
        janitor?.cancel()
        for session in Array(sessions.values) { endSession(session, .shutdown) }
        for stream in Array(streams.values) { endStream(stream) }
        for pool in pools.values {
            pool.refillTimer?.cancel()
            let waiters = pool.waiters
            pool.waiters.removeAll()
            for w in waiters { w.completion(.failure(SpawnFailure(message: "gateway is shutting down"))) }
        }
        for c in Array(children.values) { terminate(c, reason: .shutdown) }
        if children.isEmpty { loop.stop() }
    }
}

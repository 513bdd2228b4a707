// Routing between sessions and children: client→child forwarding with id and progress-token rewriting,
// and child→client routing by child-side id, token, subscription and broadcast (mcp-transports §6.2).

internal import SwitchyardCore
internal import SwitchyardIO

extension Gateway {
    // MARK: - Client → child

    /// Sends one client message towards the session's child. Shared children get ids and progress tokens
    /// rewritten, and the gateway answers what it owns (`ping`, `logging/setLevel`, repeated subscribes).
    func forward(_ session: Session, _ body: UnsafeRawBufferPointer, _ env: Envelope, _ reply: Reply, isInitialize: Bool = false) {
        guard let child = session.child, child.state != .exiting else {
            // A shared session between children (after a crash) is placed again first.
            if let pool = pools[session.serverName], pool.config.mode == .shared, !session.lifecycle.isEnded {
                let message = Array(body)
                attach(session, pool) { [weak self] result in
                    guard let self else { return }
                    message.withUnsafeBytes { b in
                        guard let env = try? EnvelopeScanner.scan(b) else { return }
                        switch result {
                        case .success: self.forward(session, b, env, reply)
                        case .failure(let f): self.replyError(reply, b, env, JSONRPCErrorCode.serverError, f.message)
                        }
                    }
                }
                return
            }
            if env.kind == .request {
                replyError(reply, body, env, JSONRPCErrorCode.serverError, "MCP server process for this session is gone")
            }
            return
        }
        let method = env.method.map { UnsafeRawBufferPointer(rebasing: body[$0.start..<$0.end]) }
        func isMethod(_ m: StaticString) -> Bool { method.map { EnvelopeScanner.equals($0, Span(0, $0.count), m) } ?? false }
        switch env.kind {
        case .request:
            if child.isShared {
                if isMethod("\"ping\"") { return replyResult(reply, body, env, "{}") }
                if isMethod("\"logging/setLevel\"") {
                    session.logLevel = logLevelParam(body, env)
                    return replyResult(reply, body, env, "{}")
                }
                if isMethod("\"resources/subscribe\"") || isMethod("\"resources/unsubscribe\"") {
                    guard let uri = uriParam(body, env) else {
                        return replyError(reply, body, env, JSONRPCErrorCode.invalidParams, "Invalid params: \"uri\" must be a string")
                    }
                    let subscribe = isMethod("\"resources/subscribe\"")
                    let needsChild = subscribe ? subscribeSession(session, child, uri) : unsubscribeSession(session, child, uri)
                    if !needsChild { return replyResult(reply, body, env, "{}") }
                }
            }
            sendRequest(child, session, body, env, reply, kind: isInitialize ? .clientInitialize : .client)
        case .notification:
            if child.isShared && (isMethod("\"notifications/initialized\"") || isMethod("\"notifications/roots/list_changed\"")) {
                return  // the gateway initialized the child itself; roots were not declared (P-02)
            }
            let out = OutBuffer()
            if isMethod("\"notifications/cancelled\""), let params = env.params,
                let (rid, _) = EnvelopeScanner.member(body, of: params, key: "\"requestId\"")
            {
                let target = UnsafeRawBufferPointer(rebasing: body[rid.start..<rid.end])
                // The newest in-flight request of this session with that client id (ids may be reused, P-09).
                guard
                    let cid = child.pending.filter({ $0.value.session === session && $0.value.originalID.elementsEqual(target) }).keys.max()
                else {
                    child.waiting.removeAll { q in q.session === session && queuedID(q).map { $0.elementsEqual(target) } == true }
                    return
                }
                child.pending[cid] = nil  // a late answer is swallowed (unmatched)
                Splice.decimal(cid).withUnsafeBytes { r in Splice.write(body, replacing: rid, with: r) { out.append($0) } }
                drainQueue(child)
            } else {
                out.append(body)
            }
            out.append("\n")
            child.process.write(out)
        case .response:
            // Answers to a dedicated child's own requests (sampling, roots, elicitation) go back unchanged.
            guard !child.isShared else { return }
            let out = OutBuffer()
            out.append(body)
            out.append("\n")
            child.process.write(out)
        }
    }

    /// Writes a request with the child-side id (and token), or queues it when the child is at capacity.
    func sendRequest(
        _ child: Child, _ session: Session, _ body: UnsafeRawBufferPointer, _ env: Envelope, _ reply: Reply, kind: Pending.Kind
    ) {
        let pool = child.pool
        let now = loop.nowMillis
        if child.pending.count >= pool.config.maxInflightPerChild || child.process.stdinBacklog > config.limits.childStdinMaxBytes {
            child.waiting.append(
                QueuedRequest(bytes: Array(body), reply: reply, session: session, deadlineMs: now + pool.config.queueTimeoutMs))
            return
        }
        let idSpan = env.id!
        let cid = child.issueID()
        // The child sees the child-side id as request id and as progress token: unique on this child, and
        // a progress notification finds its request back by it.
        let tokenSpan = EnvelopeScanner.progressToken(body, params: env.params)
        let token = tokenSpan.map { Array(UnsafeRawBufferPointer(rebasing: body[$0.start..<$0.end])) }
        let timeout = kind == .clientInitialize ? pool.config.spawnTimeoutMs : pool.config.requestTimeoutMs
        child.pending[cid] = Pending(
            originalID: Array(UnsafeRawBufferPointer(rebasing: body[idSpan.start..<idSpan.end])), reply: reply, session: session,
            progressToken: token, kind: kind, deadlineMs: timeout > 0 ? now + timeout : 0)
        child.requestsServed += 1
        pool.stats.requests += 1
        // max_requests is a cap: the child takes no new work once it is reached.
        if pool.config.maxRequests > 0 && child.requestsServed >= pool.config.maxRequests && child.state == .ready {
            loop.runSoon { [weak self] in self?.startDraining(child) }
        }
        let out = scratch
        var pos = 0
        for span in [idSpan, tokenSpan].compactMap({ $0 }).sorted(by: { $0.start < $1.start }) {
            out.append(UnsafeRawBufferPointer(rebasing: body[pos..<span.start]))
            out.append(decimal: cid)
            pos = span.end
        }
        out.append(UnsafeRawBufferPointer(rebasing: body[pos..<body.count]))
        out.append("\n")
        child.process.write(out)
    }

    /// Sends queued requests while the child has room.
    func drainQueue(_ child: Child) {
        while !child.waiting.isEmpty && child.pending.count < child.pool.config.maxInflightPerChild && child.state != .exiting {
            let q = child.waiting.removeFirst()
            guard let session = q.session, session.child === child else {
                failQueued(q, message: "session moved; retry")
                continue
            }
            q.bytes.withUnsafeBytes { b in
                guard let env = try? EnvelopeScanner.scan(b) else { return }
                sendRequest(child, session, b, env, q.reply, kind: .client)
            }
        }
    }

    func queuedID(_ q: QueuedRequest) -> [UInt8]? {
        q.bytes.withUnsafeBytes { b in
            guard let env = try? EnvelopeScanner.scan(b), let id = env.id else { return nil }
            return Array(b[id.start..<id.end])
        }
    }

    func replyResult(_ reply: Reply, _ body: UnsafeRawBufferPointer, _ env: Envelope, _ result: String) {
        guard let id = env.id else { return }
        var out: [UInt8] = Array(#"{"jsonrpc":"2.0","id":"#.utf8)
        out.append(contentsOf: body[id.start..<id.end])
        out.append(contentsOf: #","result":"#.utf8)
        out.append(contentsOf: result.utf8)
        out.append(UInt8(ascii: "}"))
        out.withUnsafeBytes { deliver(reply, $0) }
    }

    func replyError(_ reply: Reply, _ body: UnsafeRawBufferPointer, _ env: Envelope, _ code: Int, _ message: String) {
        guard let id = env.id else { return }
        let out = JSONText.errorResponse(id: Array(body[id.start..<id.end]), code: code, message: message)
        out.withUnsafeBytes { deliver(reply, $0) }
    }

    // MARK: - Subscriptions (shared children)

    func uriParam(_ body: UnsafeRawBufferPointer, _ env: Envelope) -> String? {
        guard let p = env.params, let (u, k) = EnvelopeScanner.member(body, of: p, key: "\"uri\""), k == .string else { return nil }
        return JSONText.decodeString(body, u)
    }

    /// True when the child must see this subscribe (the first for the URI on that child).
    func subscribeSession(_ session: Session, _ child: Child, _ uri: String) -> Bool {
        guard session.subscriptions.insert(uri).inserted else { return false }
        return acquireSubscription(child, uri, replay: false)
    }

    func unsubscribeSession(_ session: Session, _ child: Child, _ uri: String) -> Bool {
        guard session.subscriptions.remove(uri) != nil else { return false }
        let n = (child.subscriptions[uri] ?? 1) - 1
        child.subscriptions[uri] = n > 0 ? n : nil
        return n <= 0
    }

    /// Counts one more subscriber; on a replay the gateway itself sends the first subscribe.
    @discardableResult
    func acquireSubscription(_ child: Child, _ uri: String, replay: Bool) -> Bool {
        let n = (child.subscriptions[uri] ?? 0) + 1
        child.subscriptions[uri] = n
        guard n == 1 else { return false }
        if replay { sendInternal(child, method: "resources/subscribe", uri: uri) }
        return true
    }

    /// Drops one subscriber (a session ended); the last one unsubscribes at the child.
    func releaseSubscription(_ child: Child, _ uri: String) {
        let n = (child.subscriptions[uri] ?? 1) - 1
        child.subscriptions[uri] = n > 0 ? n : nil
        if n <= 0 && child.state != .exiting { sendInternal(child, method: "resources/unsubscribe", uri: uri) }
    }

    func sendInternal(_ child: Child, method: String, uri: String) {
        let cid = child.issueID()
        child.pending[cid] = Pending(
            originalID: [], reply: nil, session: nil, progressToken: nil, kind: .gatewayInternal, deadlineMs: loop.nowMillis + 30_000)
        let out = OutBuffer()
        out.append(#"{"jsonrpc":"2.0","id":"#)
        out.append(decimal: cid)
        out.append(#","method":"#)
        out.append(JSONText.quoted(method))
        out.append(#","params":{"uri":"#)
        out.append(JSONText.quoted(uri))
        out.append("}}\n")
        child.process.write(out)
    }

    func logLevelParam(_ body: UnsafeRawBufferPointer, _ env: Envelope) -> Int? {
        guard let p = env.params, let (l, k) = EnvelopeScanner.member(body, of: p, key: "\"level\""), k == .string,
            let name = JSONText.decodeString(body, l)
        else { return nil }
        return Gateway.logLevels.firstIndex(of: name)
    }

    /// RFC 5424 levels as MCP names them (M-10), least severe first.
    static let logLevels = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]

    // MARK: - Child → client

    /// One line from a child's stdout: a response, a notification or a server→client request.
    func childLine(_ child: Child, _ line: UnsafeRawBufferPointer) {
        child.lastOutputMs = loop.nowMillis
        var first = 0
        while first < line.count, line[first] == 0x20 || line[first] == 0x09 { first += 1 }
        if first < line.count, line[first] == UInt8(ascii: "[") {
            // A 2025-03-26 child may batch (S-04): route each element.
            do {
                for s in try JSONScanner.arrayElements(line) {
                    routeChildMessage(child, UnsafeRawBufferPointer(rebasing: line[s.start..<s.end]))
                }
            } catch {
                if childLogAllowed(child) { log.warn("child_stdout_not_jsonrpc", [("pid", String(child.pid)), ("line", preview(line))]) }
            }
            return
        }
        routeChildMessage(child, line)
    }

    func routeChildMessage(_ child: Child, _ bytes: UnsafeRawBufferPointer) {
        let env: Envelope
        do {
            env = try EnvelopeScanner.scan(bytes)
        } catch {
            if childLogAllowed(child) {
                log.warn("child_stdout_not_jsonrpc", [("pid", String(child.pid)), ("error", error.message), ("line", preview(bytes))])
            }
            return
        }
        switch env.kind {
        case .response: routeResponse(child, env, bytes)
        case .notification: routeNotification(child, env, bytes)
        case .request: routeServerRequest(child, env, bytes)
        }
    }

    func routeResponse(_ child: Child, _ env: Envelope, _ bytes: UnsafeRawBufferPointer) {
        guard let idSpan = env.id, let cid = EnvelopeScanner.parseIssuedID(bytes, idSpan),
            let p = child.pending.removeValue(forKey: cid)
        else {
            log.debug("child_response_unmatched", [("pid", String(child.pid)), ("line", preview(bytes))])
            return
        }
        defer { drainQueue(child) }
        switch p.kind {
        case .gatewayInitialize: return sharedInitialized(child, bytes)
        case .gatewayInternal: return
        case .clientInitialize: initializeAnswered(child, p.session, bytes)
        case .client: break
        }
        guard let reply = p.reply else { return }
        p.originalID.withUnsafeBytes { orig in
            if reply.mode == .json {
                var spliced: [UInt8] = []
                spliced.reserveCapacity(bytes.count + orig.count)
                Splice.write(bytes, replacing: idSpan, with: orig) { spliced.append(contentsOf: $0) }
                spliced.withUnsafeBytes { deliver(reply, $0) }
            } else {
                deliverSpliced(reply, bytes, idSpan, orig)
            }
        }
    }

    /// Streams a response with its id restored, without an intermediate copy.
    func deliverSpliced(_ reply: Reply, _ bytes: UnsafeRawBufferPointer, _ idSpan: Span, _ orig: UnsafeRawBufferPointer) {
        reply.delivered += 1
        guard let stream = reply.stream ?? ensureStream(reply), stream.isOpen else { return }
        let out = scratch
        out.append("event: message\ndata: ")
        Splice.write(bytes, replacing: idSpan, with: orig) { out.append($0) }
        out.append("\n\n")
        stream.exchange.write(out)
        stream.lastWriteMs = loop.nowMillis
        if reply.endsStream && reply.delivered >= reply.expected { endStream(stream) }
    }

    /// A dedicated child answered the client's `initialize`.
    func initializeAnswered(_ child: Child, _ session: Session?, _ bytes: UnsafeRawBufferPointer) {
        guard let session else { return }
        let top = Span(0, bytes.count)
        if let (result, kind) = EnvelopeScanner.member(bytes, of: top, key: "\"result\""), kind == .object {
            child.initialized = true
            let latency = loop.nowMillis - child.spawnedAtMs
            child.pool.stats.spawnLatencyTotalMs += latency
            child.pool.stats.spawnLatencyCount += 1
            child.pool.stats.lastSpawnLatencyMs = latency
            var version: String?
            if let (v, vk) = EnvelopeScanner.member(bytes, of: result, key: "\"protocolVersion\""), vk == .string {
                version = JSONText.decodeString(bytes, v)
            }
            _ = session.lifecycle.initializeSucceeded(version: version)
            log.info(
                "session_ready",
                [
                    ("session", session.id), ("server", session.serverName), ("protocol", session.lifecycle.protocolVersion),
                    ("pid", String(child.pid)),
                ])
        } else {
            // The child refused initialize: the client gets its error; the session cannot continue.
            loop.runSoon { [weak self, weak session] in
                if let self, let session { self.endSession(session, .initializeFailed) }
            }
        }
    }

    func routeNotification(_ child: Child, _ env: Envelope, _ bytes: UnsafeRawBufferPointer) {
        guard let m = env.method else { return }
        if EnvelopeScanner.equals(bytes, m, "\"notifications/progress\"") {
            // The token is the child-side id of the request that asked for progress.
            guard let params = env.params, let (tok, _) = EnvelopeScanner.member(bytes, of: params, key: "\"progressToken\""),
                let cid = EnvelopeScanner.parseIssuedID(bytes, tok), let p = child.pending[cid], let original = p.progressToken,
                let reply = p.reply, let stream = reply.stream ?? ensureStream(reply), stream.isOpen
            else { return }
            let out = scratch
            out.append("event: message\ndata: ")
            original.withUnsafeBytes { r in Splice.write(bytes, replacing: tok, with: r) { out.append($0) } }
            out.append("\n\n")
            stream.exchange.write(out)
            stream.lastWriteMs = loop.nowMillis
            return
        }
        guard child.isShared else {
            for session in child.sessions.values { toSessionStream(session, bytes) }
            return
        }
        if EnvelopeScanner.equals(bytes, m, "\"notifications/resources/updated\"") {
            guard let params = env.params, let (u, k) = EnvelopeScanner.member(bytes, of: params, key: "\"uri\""), k == .string,
                let uri = JSONText.decodeString(bytes, u)
            else { return }
            for session in child.sessions.values where session.subscriptions.contains(uri) { toSessionStream(session, bytes) }
            return
        }
        if EnvelopeScanner.equals(bytes, m, "\"notifications/message\"") {
            var level = 0
            if let params = env.params, let (l, k) = EnvelopeScanner.member(bytes, of: params, key: "\"level\""), k == .string,
                let name = JSONText.decodeString(bytes, l)
            {
                level = Gateway.logLevels.firstIndex(of: name) ?? 0
            }
            for session in child.sessions.values where level >= (session.logLevel ?? 0) { toSessionStream(session, bytes) }
            return
        }
        if EnvelopeScanner.equals(bytes, m, "\"notifications/cancelled\"") { return }  // its requests were never routed
        // list_changed and anything else unrelated: every session on this child.
        for session in child.sessions.values { toSessionStream(session, bytes) }
    }

    func routeServerRequest(_ child: Child, _ env: Envelope, _ bytes: UnsafeRawBufferPointer) {
        guard let id = env.id else { return }
        let idBytes = UnsafeRawBufferPointer(rebasing: bytes[id.start..<id.end])
        if let m = env.method, EnvelopeScanner.equals(bytes, m, "\"ping\"") {
            // A child's ping is answered by the gateway (M-07).
            let out = OutBuffer()
            out.append(#"{"jsonrpc":"2.0","id":"#)
            out.append(idBytes)
            out.append(#","result":{}}"#)
            out.append("\n")
            child.process.write(out)
            return
        }
        guard !child.isShared else {
            // A shared child was given no sampling/elicitation/roots capability (P-02).
            let out = OutBuffer()
            out.append(
                JSONText.errorResponse(
                    id: Array(idBytes), code: JSONRPCErrorCode.methodNotFound,
                    message: "Method not found: not available through a shared gateway pool"))
            out.append("\n")
            child.process.write(out)
            return
        }
        // Dedicated child: its requests (sampling, roots/list, elicitation) belong to its one session.
        for session in child.sessions.values { toSessionStream(session, bytes) }
    }

    /// Unrelated server traffic for one session: its GET (or legacy) stream, else an open POST stream of
    /// that session, else a bounded queue until a GET stream opens.
    func toSessionStream(_ session: Session, _ bytes: UnsafeRawBufferPointer) {
        if let g = session.getStream, g.isOpen {
            writeEvent(g, bytes)
            return
        }
        if let child = session.child {
            for (_, p) in child.pending.sorted(by: { $0.key > $1.key }) where p.session === session {
                if let s = p.reply?.stream, s.isOpen {
                    writeEvent(s, bytes)
                    return
                }
            }
        }
        if session.queued.count < config.limits.pendingNotifications {
            session.queued.append(Array(bytes))
        } else {
            log.warn("session_queue_full", [("session", session.id), ("limit", String(config.limits.pendingNotifications))])
        }
    }
}

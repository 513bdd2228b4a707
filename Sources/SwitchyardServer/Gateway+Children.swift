// Child lifecycle: warm spares, spawn back-off, termination ladder, exit handling, stdout routing.

internal import SwitchyardCore
internal import SwitchyardIO
#if canImport(Glibc)
    internal import Glibc
#endif

extension Gateway {
    /// Spawns one child of `pool`, or returns the reason it cannot (back-off or spawn error).
    func spawn(_ pool: ServerPool) -> Result<Child, SpawnFailure> {
        let now = loop.nowMillis
        if pool.inBackoff(nowMs: now) {
            let wait = (pool.nextAttemptMs - now + 999) / 1000
            return .failure(SpawnFailure(message: "\(pool.lastError); retrying in \(wait)s"))
        }
        let spec = pool.spec
        let process: ChildProcess
        do {
            process = try ChildProcess(
                loop: loop, command: spec.command, args: spec.args, env: ChildEnvironment.build(extra: spec.env), cwd: spec.cwd,
                maxLine: config.limits.maxLineBytes)
        } catch {
            let message = "cannot start MCP server \"\(spec.name)\": \(error.description)"
            pool.recordFailure(message, nowMs: now)
            log.error(
                "spawn_failed", [("server", spec.name), ("error", error.description), ("failures", String(pool.consecutiveFailures))])
            return .failure(SpawnFailure(message: message))
        }
        let child = Child(process: process, pool: pool, nowMs: now)
        children[process.pid] = child
        process.onLine = { [unowned self, unowned child] line in self.childLine(child, line) }
        process.onStderrLine = { [unowned self, unowned child] line in
            self.log.info(
                "child_stderr", [("server", spec.name), ("pid", String(child.pid)), ("line", String(decoding: line, as: UTF8.self))])
        }
        process.onStdoutClosed = { [unowned self, unowned child] tooLong in self.childStdoutClosed(child, lineTooLong: tooLong) }
        log.debug("child_spawned", [("server", spec.name), ("pid", String(process.pid))])
        return .success(child)
    }

    /// Logs a child's stderr line (rate-limited, see `childLogAllowed`).
    func childStderr(_ child: Child, _ line: UnsafeRawBufferPointer) {
        guard childLogAllowed(child) else { return }
        log.info(
            "child_stderr",
            [("server", child.pool.spec.name), ("pid", String(child.pid)), ("line", String(decoding: line, as: UTF8.self))])
    }

    /// At most `stderrLinesPerSecond` log lines a second per child: the log must never become the
    /// bottleneck (our stderr write blocks), so a flood is counted and summarized instead.
    func childLogAllowed(_ child: Child) -> Bool {
        let now = loop.nowMillis
        if now - child.stderrWindowStartMs >= 1000 {
            if child.stderrSuppressed > 0 {
                log.warn("child_log_suppressed", [("pid", String(child.pid)), ("lines", String(child.stderrSuppressed))])
            }
            child.stderrWindowStartMs = now
            child.stderrLinesInWindow = 0
            child.stderrSuppressed = 0
        }
        child.stderrLinesInWindow += 1
        if child.stderrLinesInWindow > Gateway.stderrLinesPerSecond {
            child.stderrSuppressed += 1
            return false
        }
        return true
    }

    static let stderrLinesPerSecond = 200

    /// Tops the pool's warm spares up to `spares`, unless backing off (then retries when it ends).
    func refill(_ pool: ServerPool) {
        guard !shuttingDown else { return }
        while pool.spares.count < pool.spec.spares {
            switch spawn(pool) {
            case .success(let child): pool.spares.append(child)
            case .failure:
                guard pool.refillTimer == nil else { return }
                let delay = max(10, pool.nextAttemptMs - loop.nowMillis)
                pool.refillTimer = Timer(loop: loop, afterMillis: delay) { [unowned self, unowned pool] in
                    pool.refillTimer?.cancel()
                    pool.refillTimer = nil
                    self.refill(pool)
                }
                return
            }
        }
    }

    /// A child for a new session: a warm spare when there is one, otherwise a fresh spawn.
    func acquireChild(_ pool: ServerPool) -> Result<Child, SpawnFailure> {
        defer { loop.runSoon { [weak self, unowned pool] in self?.refill(pool) } }
        while let c = pool.spares.first {
            pool.spares.removeFirst()
            if c.state == .spare && c.process.stdoutOpen { return .success(c) }
        }
        return spawn(pool)
    }

    /// Ends a child: close stdin, SIGTERM its group after a grace, SIGKILL after another (S-05).
    /// At shutdown the ladder starts at SIGTERM.
    func terminate(_ child: Child, reason: CloseReason) {
        guard child.state != .exiting else { return }
        child.state = .exiting
        child.pool.spares.removeAll { $0 === child }
        log.debug("child_terminating", [("pid", String(child.pid)), ("reason", reason.rawValue)])
        let grace = shuttingDown ? 0 : 2000
        child.process.closeStdin()
        let pid = child.pid
        let term = { [unowned self] in
            guard self.children[pid] != nil else { return }
            child.process.signalGroup(SIGTERM)
        }
        if grace == 0 { term() } else { child.killTimers.append(Timer(loop: loop, afterMillis: grace, term)) }
        let killAfter = shuttingDown ? config.limits.shutdownGraceMs : grace + 2000
        child.killTimers.append(
            Timer(loop: loop, afterMillis: killAfter) { [unowned self] in
                guard self.children[pid] != nil else { return }
                self.log.warn("child_killed", [("pid", String(pid)), ("reason", "did not exit after SIGTERM")])
                child.process.signalGroup(SIGKILL)
            })
    }

    /// Tells the child to stop working on every in-flight request (P-09), with the child-side ids.
    func cancelPending(_ child: Child, reason: CloseReason) {
        guard !child.pending.isEmpty, child.process.stdoutOpen else { return }
        let out = OutBuffer()
        for cid in child.pending.keys.sorted() {
            out.append(#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"#)
            out.append(decimal: cid)
            out.append(#","reason":"session ended ("#)
            out.append(reason.rawValue)
            out.append(")\"}}\n")
        }
        child.process.write(out)
    }

    /// Answers every in-flight request of `child` with a JSON-RPC error, at once.
    func failPending(_ child: Child, message: String) {
        let pending = child.pending
        child.pending.removeAll()
        for (_, p) in pending.sorted(by: { $0.key < $1.key }) {
            let body = JSONText.errorResponse(id: p.originalID, code: JSONRPCErrorCode.serverError, message: message)
            body.withUnsafeBytes { deliver(p.reply, $0) }
        }
    }

    func childStdoutClosed(_ child: Child, lineTooLong: Bool) {
        if lineTooLong {
            log.error("child_line_too_long", [("pid", String(child.pid)), ("max_line_bytes", String(config.limits.maxLineBytes))])
            child.exitDescription = "stdout line longer than \(config.limits.maxLineBytes) bytes"
            loseChild(child, reason: .childLineTooLong)
        } else {
            child.exitDescription = child.exitDescription ?? "closed its stdout"
            loseChild(child, reason: .childExited)
        }
    }

    /// SIGCHLD: the process is gone. Read what it wrote last, then settle everything that depended on it.
    func childExited(pid: Int32, description: String) {
        guard let child = children.removeValue(forKey: pid) else { return }
        for t in child.killTimers { t.cancel() }
        child.killTimers.removeAll()
        if child.exitDescription == nil { child.exitDescription = description }
        child.process.drainAndRelease()
        log.info("child_exited", [("server", child.pool.spec.name), ("pid", String(pid)), ("status", description)])
        loseChild(child, reason: .childExited)
        if shuttingDown && children.isEmpty { loop.stop() }
    }

    /// A child can no longer serve: its session ends (dedicated mode), spares are replaced.
    func loseChild(_ child: Child, reason: CloseReason) {
        let wasSpare = child.state == .spare
        let pool = child.pool
        if !child.initialized && child.state != .exiting && !shuttingDown {
            pool.recordFailure(
                "MCP server \"\(pool.spec.name)\" exited during startup (\(child.exitDescription ?? "?"))", nowMs: loop.nowMillis)
        }
        if let session = child.session {
            child.session = nil
            if session.child === child { endSession(session, reason) }
        }
        if !child.pending.isEmpty {
            failPending(child, message: "MCP server process exited (\(child.exitDescription ?? reason.rawValue))")
        }
        if child.state != .exiting { terminate(child, reason: reason) }
        if wasSpare { refill(pool) }
    }

    // MARK: - stdout routing

    /// One line from a child's stdout: a response, a notification or a server→client request.
    func childLine(_ child: Child, _ line: UnsafeRawBufferPointer) {
        var first = 0
        while first < line.count, line[first] == 0x20 || line[first] == 0x09 { first += 1 }
        if first < line.count, line[first] == UInt8(ascii: "[") {
            // A 2025-03-26 child may batch (S-04): route each element.
            do {
                for s in try JSONScanner.arrayElements(line) {
                    routeChildMessage(child, UnsafeRawBufferPointer(rebasing: line[s.start..<s.end]))
                }
            } catch {
                if childLogAllowed(child) {
                    log.warn("child_stdout_not_jsonrpc", [("pid", String(child.pid)), ("line", preview(line))])
                }
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
            log.warn("child_response_unmatched", [("pid", String(child.pid)), ("line", preview(bytes))])
            return
        }
        if p.isInitialize { initializeAnswered(child, bytes) }
        let reply = p.reply
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
        guard let stream = reply.stream, stream.isOpen else { return }
        let out = OutBuffer()
        out.append("event: message\ndata: ")
        Splice.write(bytes, replacing: idSpan, with: orig) { out.append($0) }
        out.append("\n\n")
        stream.exchange.write(out)
        stream.lastWriteMs = loop.nowMillis
        if reply.endsStream && reply.delivered >= reply.expected { endStream(stream) }
    }

    func initializeAnswered(_ child: Child, _ bytes: UnsafeRawBufferPointer) {
        guard let session = child.session else { return }
        let top = Span(0, bytes.count)
        if let (result, kind) = EnvelopeScanner.member(bytes, of: top, key: "\"result\""), kind == .object {
            child.initialized = true
            child.pool.consecutiveFailures = 0
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
        if let m = env.method, EnvelopeScanner.equals(bytes, m, "\"notifications/progress\""),
            let params = env.params,
            let (tok, _) = EnvelopeScanner.member(bytes, of: params, key: "\"progressToken\"")
        {
            let token = UnsafeRawBufferPointer(rebasing: bytes[tok.start..<tok.end])
            // Progress goes on the stream of the request that asked for it (newest first on collisions).
            for (_, p) in child.pending.sorted(by: { $0.key > $1.key }) {
                if let t = p.progressToken, t.elementsEqual(token) {
                    if let stream = p.reply.stream { writeEvent(stream, bytes) }
                    return
                }
            }
        }
        toSession(child, bytes)
    }

    func routeServerRequest(_ child: Child, _ env: Envelope, _ bytes: UnsafeRawBufferPointer) {
        if let m = env.method, EnvelopeScanner.equals(bytes, m, "\"ping\""), let id = env.id {
            // A child's ping is answered by the gateway (M-07).
            let out = OutBuffer()
            out.append(#"{"jsonrpc":"2.0","id":"#)
            out.append(UnsafeRawBufferPointer(rebasing: bytes[id.start..<id.end]))
            out.append(#","result":{}}"#)
            out.append("\n")
            child.process.write(out)
            return
        }
        // Dedicated child: its requests (sampling, roots/list, elicitation) belong to its one session.
        toSession(child, bytes)
    }

    /// Unrelated server traffic: the session's GET stream, else an open POST stream, else a bounded queue.
    func toSession(_ child: Child, _ bytes: UnsafeRawBufferPointer) {
        guard let session = child.session else {
            log.debug("child_message_dropped", [("pid", String(child.pid)), ("reason", "no session")])
            return
        }
        if let g = session.getStream, g.isOpen {
            writeEvent(g, bytes)
            return
        }
        for (_, p) in child.pending.sorted(by: { $0.key > $1.key }) {
            if let s = p.reply.stream, s.isOpen {
                writeEvent(s, bytes)
                return
            }
        }
        if session.queued.count < config.limits.pendingNotifications {
            session.queued.append(Array(bytes))
        } else {
            log.warn("session_queue_full", [("session", session.id), ("limit", String(config.limits.pendingNotifications))])
        }
    }

    func preview(_ b: UnsafeRawBufferPointer) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: b[0..<min(b.count, 200)]), as: UTF8.self)
    }
}

struct SpawnFailure: Error {
    var message: String
}

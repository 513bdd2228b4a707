// Child pools: spawning, warm spares, placement of sessions, waiters, back-off, recycling and exits.

internal import SwitchyardCore
internal import SwitchyardIO
#if canImport(Glibc)
    internal import Glibc
#endif

struct SpawnFailure: Error {
    var message: String
}

extension Gateway {
    // MARK: - Spawning

    /// Spawns one child of `pool`, or returns why it cannot (crash-loop back-off, cap, spawn error).
    func spawn(_ pool: ServerPool) -> Result<Child, SpawnFailure> {
        let now = loop.nowMillis
        if pool.backoff.isWaiting(nowMs: now) {
            let wait = (pool.backoff.nextAttemptMs - now + 999) / 1000
            return .failure(SpawnFailure(message: "\(pool.backoff.lastError); retrying in \(wait)s"))
        }
        guard pool.children.count < pool.config.maxChildren else {
            return .failure(
                SpawnFailure(message: "server busy: \"\(pool.spec.name)\" has max_children (\(pool.config.maxChildren)) children"))
        }
        let spec = pool.spec
        let process: ChildProcess
        do {
            process = try ChildProcess(
                loop: loop, command: spec.command, args: spec.args,
                env: ChildEnvironment.build(extra: spec.env, passthrough: spec.envPassthrough, clear: spec.clearEnv), cwd: spec.cwd,
                maxLine: config.limits.maxLineBytes, launcher: launcher, batchScheduling: pool.config.batchScheduling)
        } catch {
            let message = "cannot start MCP server \"\(spec.name)\": \(error.description)"
            pool.backoff.recordFailure(message, nowMs: now, initialMs: pool.config.restartBackoffMs, maxMs: pool.config.restartBackoffMaxMs)
            pool.stats.spawnFailures += 1
            log.error(
                "spawn_failed", [("server", spec.name), ("error", error.description), ("failures", String(pool.backoff.failures))])
            return .failure(SpawnFailure(message: message))
        }
        let child = Child(process: process, pool: pool, nowMs: now, state: pool.config.mode == .shared ? .starting : .spare)
        children[process.pid] = child
        pool.children.append(child)
        pool.stats.spawns += 1
        // unowned(unsafe): the closure dies with the process object, which the child owns; the gateway
        // outlives both (per answer, checked unowned retains went through the gateway's side table).
        process.onLine = { [unowned(unsafe) self, unowned(unsafe) child] line in self.childLine(child, line) }
        process.onStderrLine = { [unowned self, unowned child] line in self.childStderr(child, line) }
        process.onStdoutClosed = { [unowned self, unowned child] tooLong in self.childStdoutClosed(child, lineTooLong: tooLong) }
        log.debug("child_spawned", [("server", spec.name), ("pid", String(process.pid))])
        if child.isShared { startShared(child) }
        return .success(child)
    }

    /// A shared child is initialized once by the gateway (P-01); it takes sessions when the result is back.
    func startShared(_ child: Child) {
        let cid = child.issueID()
        child.pending[cid] = Pending(
            originalID: [], reply: nil, session: nil, progressToken: nil, kind: .gatewayInitialize,
            deadlineMs: loop.nowMillis + child.pool.config.spawnTimeoutMs)
        let out = OutBuffer()
        out.append(#"{"jsonrpc":"2.0","id":"#)
        out.append(decimal: cid)
        out.append(
            #","method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"switchyard","version":"0.1.0"}}}"#
        )
        out.append("\n")
        child.process.write(out)
    }

    /// The shared child answered the gateway's `initialize`.
    func sharedInitialized(_ child: Child, _ bytes: UnsafeRawBufferPointer) {
        let pool = child.pool
        let top = Span(0, bytes.count)
        guard let (result, kind) = EnvelopeScanner.member(bytes, of: top, key: "\"result\""), kind == .object,
            let shared = SharedInitialize(bytes, result: result)
        else {
            child.exitDescription = "refused initialize: \(preview(bytes))"
            startupFailed(child)
            return
        }
        child.shared = shared
        child.initialized = true
        child.state = .ready
        child.idleSinceMs = loop.nowMillis
        let latency = loop.nowMillis - child.spawnedAtMs
        pool.stats.spawnLatencyTotalMs += latency
        pool.stats.spawnLatencyCount += 1
        pool.stats.lastSpawnLatencyMs = latency
        let out = OutBuffer()
        out.append(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        out.append("\n")
        child.process.write(out)
        log.info(
            "child_ready",
            [("server", pool.spec.name), ("pid", String(child.pid)), ("protocol", shared.childVersion), ("startup_ms", String(latency))])
        serveWaiters(pool)
    }

    /// Spawn or initialize failed: back off, tell the waiters at once, end the child.
    func startupFailed(_ child: Child) {
        let pool = child.pool
        let message = "MCP server \"\(pool.spec.name)\" failed to start (\(child.exitDescription ?? "?"))"
        pool.backoff.recordFailure(
            message, nowMs: loop.nowMillis, initialMs: pool.config.restartBackoffMs, maxMs: pool.config.restartBackoffMaxMs)
        pool.stats.spawnFailures += 1
        log.error("child_start_failed", [("server", pool.spec.name), ("pid", String(child.pid)), ("error", message)])
        terminate(child, reason: .initializeFailed)
        // Only fail waiters when nothing else can serve them.
        if !pool.children.contains(where: { $0.state == .starting || $0.state == .ready }) {
            let waiters = pool.waiters
            pool.waiters.removeAll()
            for w in waiters { w.completion(.failure(SpawnFailure(message: message))) }
        }
        scheduleRefill(pool)
    }

    // MARK: - Spares and idle children

    /// Keeps `min_idle` children ready: dedicated spares, or initialized shared children.
    func refill(_ pool: ServerPool) {
        guard !shuttingDown else { return }
        while idleCount(pool) < pool.config.minIdle {
            switch spawn(pool) {
            case .success(let child):
                if child.state == .spare { pool.spares.append(child) }
            case .failure:
                scheduleRefill(pool)
                return
            }
        }
    }

    func idleCount(_ pool: ServerPool) -> Int {
        switch pool.config.mode {
        case .dedicated: return pool.spares.count
        case .shared: return pool.children.filter { ($0.state == .ready && $0.sessions.isEmpty) || $0.state == .starting }.count
        }
    }

    func scheduleRefill(_ pool: ServerPool) {
        guard pool.refillTimer == nil, !shuttingDown else { return }
        let delay = max(10, pool.backoff.nextAttemptMs - loop.nowMillis)
        pool.refillTimer = Timer(loop: loop, afterMillis: delay) { [unowned self, unowned pool] in
            pool.refillTimer?.cancel()
            pool.refillTimer = nil
            self.refill(pool)
            self.serveWaiters(pool)
        }
    }

    // MARK: - Placement

    /// Finds a child for `session`: at once when one is free, else when one frees up or starts, within
    /// `queue_timeout`. `completion` runs exactly once.
    func attach(_ session: Session, _ pool: ServerPool, _ completion: @escaping (Result<Child, SpawnFailure>) -> Void) {
        if let child = placeNow(pool) {
            bind(session, child)
            completion(.success(child))
            return
        }
        if pool.backoff.isWaiting(nowMs: loop.nowMillis), !pool.children.contains(where: { $0.state == .starting || $0.state == .ready }) {
            // Crash-loop guard: fail fast with the reason instead of queueing behind a broken command.
            let wait = (pool.backoff.nextAttemptMs - loop.nowMillis + 999) / 1000
            completion(.failure(SpawnFailure(message: "\(pool.backoff.lastError); retrying in \(wait)s")))
            return
        }
        if pool.config.mode == .dedicated, pool.children.count < pool.config.maxChildren {
            switch spawn(pool) {
            case .success(let child):
                pool.spares.removeAll { $0 === child }
                bind(session, child)
                completion(.success(child))
            case .failure(let f): completion(.failure(f))
            }
            loop.runSoon { [weak self, unowned pool] in self?.refill(pool) }
            return
        }
        if pool.config.mode == .shared, !pool.children.contains(where: { $0.state == .starting }),
            pool.children.count < pool.config.maxChildren
        {
            if case .failure(let f) = spawn(pool) {
                completion(.failure(f))
                return
            }
        }
        let deadline = loop.nowMillis + pool.config.queueTimeoutMs
        pool.waiters.append(Waiter(session: session, deadlineMs: deadline, completion: completion))
        log.debug("session_queued", [("session", session.id), ("server", pool.spec.name), ("waiters", String(pool.waiters.count))])
    }

    /// A child that can take a session right now, without spawning.
    func placeNow(_ pool: ServerPool) -> Child? {
        switch pool.config.mode {
        case .dedicated:
            while let c = pool.spares.first {
                pool.spares.removeFirst()
                if c.state == .spare && c.process.stdoutOpen {
                    loop.runSoon { [weak self, unowned pool] in self?.refill(pool) }
                    return c
                }
            }
            return nil
        case .shared:
            let candidates = pool.children
            guard
                let k = Placement.pick(
                    sessions: candidates.map(\.sessions.count), inflight: candidates.map(\.pending.count),
                    ready: candidates.map { $0.state == .ready }, maxSessionsPerChild: pool.config.maxSessionsPerChild)
            else { return nil }
            return candidates[k]
        }
    }

    func bind(_ session: Session, _ child: Child) {
        if child.state == .spare { child.state = .active }
        child.sessions[ObjectIdentifier(session)] = session
        session.child = child
    }

    func unbind(_ session: Session) {
        guard let child = session.child else { return }
        child.sessions[ObjectIdentifier(session)] = nil
        session.child = nil
        if child.sessions.isEmpty { child.idleSinceMs = loop.nowMillis }
        // Shared: release this session's subscriptions (last reference → unsubscribe at the child).
        if child.isShared {
            for uri in session.subscriptions { releaseSubscription(child, uri) }
        }
    }

    /// Hands free capacity to queued sessions, oldest first; drops those past their deadline.
    func serveWaiters(_ pool: ServerPool) {
        let now = loop.nowMillis
        while let w = pool.waiters.first {
            if case .ended = w.session.lifecycle.state {
                pool.waiters.removeFirst()
                continue
            }
            if w.deadlineMs <= now {
                pool.waiters.removeFirst()
                pool.stats.busyRejections += 1
                w.completion(
                    .failure(
                        SpawnFailure(
                            message: "server busy: no \"\(pool.spec.name)\" server process free within the queue timeout; retry later")))
                continue
            }
            var child = placeNow(pool)
            if child == nil, pool.config.mode == .dedicated, pool.children.count < pool.config.maxChildren,
                case .success(let c) = spawn(pool)
            {
                pool.spares.removeAll { $0 === c }
                child = c
            }
            guard let c = child else {
                if pool.config.mode == .shared, !pool.children.contains(where: { $0.state == .starting }),
                    pool.children.count < pool.config.maxChildren
                {
                    _ = spawn(pool)
                }
                return
            }
            pool.waiters.removeFirst()
            bind(w.session, c)
            w.completion(.success(c))
        }
    }

    // MARK: - Ending children

    /// Ends a child: close stdin, SIGTERM its group after a grace, SIGKILL after another (S-05).
    /// At shutdown the ladder starts at SIGTERM.
    func terminate(_ child: Child, reason: CloseReason) {
        guard child.state != .exiting else { return }
        child.state = .exiting
        child.startTimer?.cancel()
        let pool = child.pool
        pool.spares.removeAll { $0 === child }
        pool.children.removeAll { $0 === child }
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
        // Capacity freed: queued sessions may now get a child.
        loop.runSoon { [weak self, unowned pool] in
            self?.refill(pool)
            self?.serveWaiters(pool)
        }
    }

    /// Answers every in-flight and queued request of `child` with a JSON-RPC error, at once.
    func failPending(_ child: Child, message: String) {
        let pending = child.pending
        child.pending.removeAll()
        for (_, p) in pending.sorted(by: { $0.key < $1.key }) {
            guard let reply = p.reply else { continue }
            let body = JSONText.errorResponse(id: p.originalID, code: JSONRPCErrorCode.serverError, message: message)
            body.withUnsafeBytes { deliver(reply, $0) }
        }
        let waiting = child.waiting
        child.waiting.removeAll()
        for q in waiting { failQueued(q, message: message) }
    }

    func failQueued(_ q: QueuedRequest, message: String) {
        q.bytes.withUnsafeBytes { b in
            guard let env = try? EnvelopeScanner.scan(b), let id = env.id else { return }
            let body = JSONText.errorResponse(id: Array(b[id.start..<id.end]), code: JSONRPCErrorCode.serverError, message: message)
            body.withUnsafeBytes { deliver(q.reply, $0) }
        }
    }

    /// Tells the child to stop working on `session`'s in-flight requests (child-side ids, P-09) and answers
    /// each of them with `message`; its queued requests fail too.
    func cancelPending(_ child: Child, session: Session, reason: String, message: String) {
        let cids = child.pending.filter { $0.value.session === session }.keys.sorted()
        let out = OutBuffer()
        for cid in cids {
            guard let p = child.pending.removeValue(forKey: cid) else { continue }
            out.append(#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"#)
            out.append(decimal: cid)
            out.append(#","reason":"#)
            out.append(JSONText.quoted(reason))
            out.append("}}\n")
            if let reply = p.reply, reply.isOpen || reply.stream?.isOpen == true {
                let body = JSONText.errorResponse(id: p.originalID, code: JSONRPCErrorCode.serverError, message: message)
                body.withUnsafeBytes { deliver(reply, $0) }
            }
        }
        if out.count > 0 && child.process.stdoutOpen && child.state != .exiting { child.process.write(out) }
        let queued = child.waiting.filter { $0.session === session }
        child.waiting.removeAll { $0.session === session }
        for q in queued { failQueued(q, message: message) }
        drainQueue(child)
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

    /// A child can no longer serve. In-flight requests fail at once; a dedicated session ends with its
    /// child; shared sessions keep their ids and move to another child (P-08).
    func loseChild(_ child: Child, reason: CloseReason) {
        let pool = child.pool
        let wasExpected = child.state == .exiting
        if !wasExpected && !shuttingDown {
            pool.stats.crashes += 1
            // Crash-loop guard: dying before initialize is a start-up failure; so is the third crash of
            // initialized children within `crashWindowMs` (a server that starts, then dies at once).
            let now = loop.nowMillis
            pool.recentCrashes.removeAll { $0 < now - Gateway.crashWindowMs }
            if child.initialized { pool.recentCrashes.append(now) }
            if !child.initialized || pool.recentCrashes.count >= Gateway.crashesForBackoff {
                if child.exitDescription == nil { child.exitDescription = reason.rawValue }
                startupFailed(child)
            }
        }
        let message = "MCP server process exited (\(child.exitDescription ?? reason.rawValue))"
        failPending(child, message: message)
        let sessions = Array(child.sessions.values)
        child.sessions.removeAll()
        if child.state != .exiting { terminate(child, reason: reason) }
        for session in sessions {
            session.child = nil
            if child.isShared && !shuttingDown && !session.lifecycle.isEnded {
                relocate(session, from: child)
            } else {
                endSession(session, reason)
            }
        }
    }

    /// Moves a shared session to another child: subscriptions are replayed there and `list_changed` is
    /// broadcast for what the old child declared, so clients refresh their lists.
    func relocate(_ session: Session, from old: Child, announce: Bool = true) {
        let pool = old.pool
        let kinds = announce ? (old.shared?.listChanged ?? []) : []
        attach(session, pool) { [weak self, weak session] result in
            guard let self, let session else { return }
            guard case .success(let child) = result else { return }  // the next request retries placement
            for uri in session.subscriptions { self.acquireSubscription(child, uri, replay: true) }
            for kind in kinds {
                let note = Array(#"{"jsonrpc":"2.0","method":"notifications/\#(kind)/list_changed"}"#.utf8)
                note.withUnsafeBytes { self.toSessionStream(session, $0) }
            }
            self.log.info("session_relocated", [("session", session.id), ("pid", String(child.pid))])
        }
    }

    // MARK: - Timeouts, recycling, idle children (janitor)

    func poolTick(_ pool: ServerPool, now: Int) {
        let cfg = pool.config
        for child in pool.children {
            // Request deadlines (request_timeout, spawn_timeout for initialize).
            var expired: [Int] = []
            for (cid, p) in child.pending where p.deadlineMs > 0 && p.deadlineMs <= now { expired.append(cid) }
            for cid in expired.sorted() { expire(child, cid, now: now) }
            // Queued requests past queue_timeout.
            if !child.waiting.isEmpty {
                let late = child.waiting.filter { $0.deadlineMs <= now }
                child.waiting.removeAll { $0.deadlineMs <= now }
                for q in late {
                    pool.stats.busyRejections += 1
                    failQueued(q, message: "server busy: the MCP server has \(cfg.maxInflightPerChild) requests in flight; retry later")
                }
            }
            // A child that said nothing since a timeout is hung: recycle it.
            if child.settleDeadlineMs > 0 && now >= child.settleDeadlineMs {
                child.settleDeadlineMs = 0
                if child.lastOutputMs < now - cfg.cancelGraceMs {
                    log.warn("child_hung", [("pid", String(child.pid)), ("server", pool.spec.name)])
                    child.exitDescription = "stopped answering after a request timeout"
                    pool.stats.recycles += 1
                    loseChild(child, reason: .childExited)
                    continue
                }
            }
            // Recycling by age or use: drain, then replace.
            if child.state == .ready || child.state == .spare, cfg.maxLifetimeMs > 0 && now - child.spawnedAtMs >= cfg.maxLifetimeMs {
                startDraining(child)
            }
            if child.state == .draining && child.pending.isEmpty && child.waiting.isEmpty {
                pool.stats.recycles += 1
                terminate(child, reason: .finished)
                continue
            }
            // A child that stayed up clears the crash-loop counter (set by start failures and early crashes).
            if pool.backoff.failures > 0, child.initialized, now - child.spawnedAtMs >= Gateway.stableUptimeMs {
                pool.backoff.recordSuccess()
            }
            // Shared children above min_idle with no sessions for idle_timeout.
            if child.isShared, child.state == .ready, child.sessions.isEmpty, now - child.idleSinceMs >= cfg.idleTimeoutMs,
                pool.children.filter({ $0.state == .ready }).count > cfg.minIdle
            {
                terminate(child, reason: .idleTimeout)
            }
        }
        serveWaiters(pool)
    }

    /// A child up this long clears the crash-loop counter.
    static let stableUptimeMs = 10_000
    /// This many crashes of initialized children within the window count as a crash loop.
    static let crashesForBackoff = 3
    static let crashWindowMs = 30_000

    /// Stops placing work on a child and moves its sessions elsewhere; it is ended once its in-flight
    /// requests settle. Dedicated children are only recycled while they are spares (a session's state
    /// cannot be moved).
    func startDraining(_ child: Child) {
        switch child.state {
        case .spare:
            child.pool.stats.recycles += 1
            terminate(child, reason: .finished)
        case .ready:
            child.state = .draining
            log.info("child_draining", [("pid", String(child.pid)), ("served", String(child.requestsServed))])
            let sessions = Array(child.sessions.values)
            for s in sessions {
                unbind(s)
                if !s.lifecycle.isEnded { relocate(s, from: child, announce: false) }
            }
        default:
            break
        }
    }

    /// One request ran out of time: the child is told to cancel it (child-side id) and the client gets -32001.
    func expire(_ child: Child, _ cid: Int, now: Int) {
        guard let p = child.pending.removeValue(forKey: cid) else { return }
        let pool = child.pool
        switch p.kind {
        case .gatewayInitialize:
            child.exitDescription = "no answer to initialize within \(pool.config.spawnTimeoutMs)ms"
            startupFailed(child)
        case .gatewayInternal:
            break
        case .client, .clientInitialize:
            pool.stats.timeouts += 1
            let out = OutBuffer()
            out.append(#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"#)
            out.append(decimal: cid)
            out.append(#","reason":"request timed out"}}"#)
            out.append("\n")
            child.process.write(out)
            if child.settleDeadlineMs == 0 { child.settleDeadlineMs = now + pool.config.cancelGraceMs }
            log.warn("request_timeout", [("pid", String(child.pid)), ("session", p.session?.id ?? "-")])
            if let reply = p.reply {
                let body = JSONText.errorResponse(id: p.originalID, code: JSONRPCErrorCode.sessionNotFound, message: "Request timed out")
                body.withUnsafeBytes { deliver(reply, $0) }
            }
            if p.kind == .clientInitialize, let s = p.session {
                child.exitDescription = "no answer to initialize"
                endSession(s, .initializeFailed)
            }
            drainQueue(child)
        }
    }

    // MARK: - Logs from children

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

    func preview(_ b: UnsafeRawBufferPointer) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: b[0..<min(b.count, 200)]), as: UTF8.self)
    }
}

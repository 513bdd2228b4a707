// The gateway: owns the loop, the HTTP server, sessions and children; one teardown path each.

package import SwitchyardCore
internal import SwitchyardIO
#if canImport(Glibc)
    internal import Glibc
#endif

package final class Gateway {
    let config: GatewayConfig
    let loop = EventLoop()
    let log: Logger
    let http: HTTPServer
    /// One HTTPServer per TLS listener: each holds its own TLS context (reloaded on SIGHUP).
    var tlsServers: [HTTPServer] = []
    var admin: HTTPServer?
    /// Accepted keys (nil = no auth configured).
    let keys: KeyRing?
    /// The key of the request being handled. Set by `authorize` and read synchronously during the same
    /// callback (session creation and lookup); never across callbacks.
    var requestKey: Key?
    var keyBuckets: [String: TokenBucket] = [:]
    private let scratchBuffer = OutBuffer()
    /// SSE replies waiting for their first event or their start deadline (`sse_start_delay`).
    var lazyReplies: [Reply] = []
    lazy var lazyTimer = Timer(loop: loop, afterMillis: 1, armed: false) { [unowned self] in self.startDueStreams() }
    let origins: OriginPolicy
    var pools: [String: ServerPool] = [:]
    var sessions: [String: Session] = [:]
    var ended = EndedSessions(capacity: 10_000)
    var children: [Int32: Child] = [:]
    var streams: [ObjectIdentifier: SSEStream] = [:]
    var reaper: ChildReaper!
    var signals: [SignalWatcher] = []
    var janitor: Timer?
    /// Connections closed when the janitor last returned freed memory to the kernel.
    var closedAtLastTrim = 0
    /// One cap for all client listeners (`limits.max_connections`).
    lazy var connectionBudget = ConnectionBudget(limit: config.limits.maxConnections)
    var lastConnectionLimitLogMs = -10_000
    var closedAtLastTick = 0
    var shuttingDown = false
    var shutdownTimer: Timer?
    /// This binary: children are spawned through it to arm a parent-death signal (no orphans).
    let launcher = ChildLauncher.selfPath()

    package init(config: GatewayConfig, keys: KeyRing? = nil) {
        self.config = config
        self.keys = keys
        self.log = Logger(level: config.logLevel)
        self.origins = OriginPolicy(allowed: config.allowedOrigins)
        let l = config.limits
        http = HTTPServer(
            loop: loop,
            limits: HTTPServerLimits(maxBodyBytes: l.maxBodyBytes, maxHeaderBytes: l.maxHeaderBytes, timeoutMillis: l.httpTimeoutMs))
        for spec in config.servers { pools[spec.name] = ServerPool(spec: spec) }
    }

    /// Binds, runs the loop until shutdown completes, and returns the process exit code.
    package func run() -> Int32 {
        let nofile = EventLoop.prepareProcess()
        // Signals first: a SIGTERM or SIGHUP right after the "listening" line must reach the handlers.
        for sig in [SIGTERM, SIGINT] {
            signals.append(SignalWatcher(loop: loop, signal: sig) { [unowned self] s in self.beginShutdown(signal: s) })
        }
        signals.append(SignalWatcher(loop: loop, signal: SIGHUP) { [unowned self] _ in self.reloadTLS() })
        reaper = ChildReaper(loop: loop)
        reaper.onExit = { [unowned self] pid, desc, _ in self.childExited(pid: pid, description: desc) }
        // unowned(unsafe) on the per-request paths: the gateway lives until the process exits, and Gateway
        // has weak references elsewhere, which makes every checked unowned retain go through its side table.
        http.handler = { [unowned(unsafe) self] ex in self.handle(ex) }
        http.budget = connectionBudget
        connectionBudget.onFull = { [unowned self] in
            // Once per 10 s at most: at the edge of the cap this would fire on every accept.
            let now = self.loop.nowMillis
            guard now - self.lastConnectionLimitLogMs >= 10_000 else { return }
            self.lastConnectionLimitLogMs = now
            self.log.warn(
                "connection_limit",
                [("max_connections", String(self.config.limits.maxConnections)), ("action", "accepting paused until a connection closes")])
        }
        for spec in config.listen {
            var server = http
            if let t = spec.tls {
                let context: TLSContext
                do {
                    context = try TLSContext(Gateway.tlsSettings(t))
                } catch {
                    log.error("tls_config_failed", [("address", "\(spec.host):\(spec.port)"), ("error", error.description)])
                    return 78
                }
                let l = config.limits
                server = HTTPServer(
                    loop: loop,
                    limits: HTTPServerLimits(maxBodyBytes: l.maxBodyBytes, maxHeaderBytes: l.maxHeaderBytes, timeoutMillis: l.httpTimeoutMs)
                )
                server.handler = { [unowned(unsafe) self] ex in self.handle(ex) }
                server.budget = connectionBudget
                server.tls = context
                tlsServers.append(server)
            }
            do {
                let addr = try server.bind(host: spec.host, port: spec.port)
                let scheme = spec.tls == nil ? "http" : "https"
                log.info("listening", [("address", addr), ("endpoint", "\(scheme)://\(addr)/mcp")])
            } catch {
                log.error("bind_failed", [("error", error.description)])
                return 71  // EX_OSERR
            }
        }
        if let a = config.admin {
            let server = HTTPServer(
                loop: loop, limits: HTTPServerLimits(maxBodyBytes: 4096, maxHeaderBytes: 16 << 10, timeoutMillis: 10_000))
            server.handler = { [unowned self] ex in self.handleAdmin(ex) }
            do {
                let addr = try server.bind(host: a.host, port: a.port)
                log.info("admin_listening", [("address", addr), ("endpoint", "http://\(addr)/pools")])
            } catch {
                log.error("bind_failed", [("error", error.description)])
                return 71
            }
            admin = server
        }
        log.info(
            "started",
            [
                ("servers", config.servers.map(\.name).joined(separator: ",")), ("default_server", config.defaultServer),
                ("nofile", String(nofile.soft)),
            ])
        let tick = min(1000, max(100, config.limits.sseKeepAliveMs / 2))
        janitor = Timer(loop: loop, afterMillis: tick, repeating: true) { [unowned self] in self.janitorTick() }
        for pool in pools.values { refill(pool) }
        loop.run()
        http.free()
        for s in tlsServers { s.free() }
        admin?.free()
        for s in signals { s.cancel() }
        reaper.cancel()
        log.info("stopped")
        return 0
    }

    static func tlsSettings(_ t: TLSSpec) -> TLSSettings {
        TLSSettings(cert: t.cert, key: t.key, minVersion13: t.minVersion == "1.3", ciphers: t.ciphers, clientCA: t.clientCA)
    }

    /// SIGHUP: re-reads certificates and keys. Live connections keep their TLS state; a failed reload keeps
    /// the old context and says why in one line.
    func reloadTLS() {
        guard !tlsServers.isEmpty else {
            log.info("sighup", [("action", "nothing to reload (no TLS listeners)")])
            return
        }
        for server in tlsServers {
            guard let current = server.tls else { continue }
            do {
                server.tls = try TLSContext(current.settings)
                log.info("tls_reloaded", [("cert", current.settings.cert)])
            } catch {
                log.error(
                    "tls_reload_failed",
                    [("cert", current.settings.cert), ("error", error.description), ("action", "keeping the previous certificate")])
            }
        }
    }

    /// The one reusable outgoing buffer of the hot path. Handing it to a reply, stream or pipe moves its
    /// chains out (evbuffer_add_buffer), so it is empty again afterwards; never hold it across calls.
    var scratch: OutBuffer {
        scratchBuffer.clear()
        return scratchBuffer
    }

    // MARK: - Janitor: keep-alives, idle sessions

    func janitorTick() {
        let now = loop.nowMillis
        // After a burst of at least 1,000 closed connections has ended (none closed since the last tick),
        // hand the freed heap back to the kernel.
        let closed = connectionBudget.closed
        if closed == closedAtLastTick, closed &- closedAtLastTrim >= 1000 {
            closedAtLastTrim = closed
            EventLoop.releaseFreedMemory()
        }
        closedAtLastTick = closed
        let keepAlive = config.limits.sseKeepAliveMs
        for stream in Array(streams.values) where now - stream.lastWriteMs >= keepAlive {
            writeRaw(stream, SSEEncoder.keepAlive)
        }
        for pool in pools.values { poolTick(pool, now: now) }
        let idle = config.limits.sessionIdleTimeoutMs
        for session in Array(sessions.values) {
            let busy = session.getStream?.isOpen == true || session.child?.pending.isEmpty == false
            if busy { session.lifecycle.touch(nowMs: now) }
            if session.lifecycle.isIdle(nowMs: now, timeoutMs: idle, busy: busy) { endSession(session, .idleTimeout) }
        }
    }

    // MARK: - Streams

    func openStream(_ ex: HTTPExchange, session: Session?, isGet: Bool, sessionHeader: Bool) -> SSEStream {
        let stream = SSEStream(exchange: ex, nowMs: loop.nowMillis, session: session, isGet: isGet)
        ex.startSSE(sessionID: sessionHeader ? session?.id : nil, inputWatermark: 64 << 10)
        streams[ObjectIdentifier(stream)] = stream
        ex.onClose = { [unowned self, unowned stream] in self.streamGone(stream) }
        return stream
    }

    func streamGone(_ stream: SSEStream) {
        streams[ObjectIdentifier(stream)] = nil
        guard let s = stream.session, s.getStream === stream else { return }
        s.getStream = nil
        // A legacy session lives exactly as long as its stream.
        if s.transport == .legacy { endSession(s, .clientGone) }
    }

    func endStream(_ stream: SSEStream) {
        stream.exchange.endStream()
        streamGone(stream)
    }

    /// Writes bytes as they are (already framed). Drops a stream whose reader fell too far behind.
    func writeRaw(_ stream: SSEStream, _ bytes: [UInt8]) {
        guard stream.isOpen else { return }
        if stream.exchange.backlogBytes > config.limits.sseMaxBacklogBytes {
            log.warn("stream_dropped", [("reason", CloseReason.slowReader.rawValue), ("session", stream.session?.id ?? "-")])
            endStream(stream)
            return
        }
        let out = OutBuffer()
        out.append(bytes)
        stream.exchange.write(out)
        stream.lastWriteMs = loop.nowMillis
    }

    /// Sends one JSON-RPC message as an SSE `message` event.
    func writeEvent(_ stream: SSEStream, _ json: UnsafeRawBufferPointer) {
        guard stream.isOpen else { return }
        if stream.exchange.backlogBytes > config.limits.sseMaxBacklogBytes {
            log.warn("stream_dropped", [("reason", CloseReason.slowReader.rawValue), ("session", stream.session?.id ?? "-")])
            endStream(stream)
            return
        }
        let out = scratch
        out.append("event: message\ndata: ")
        out.append(json)
        out.append("\n\n")
        stream.exchange.write(out)
        stream.lastWriteMs = loop.nowMillis
    }

    // MARK: - Sessions

    /// The one teardown path of a session: ends its streams, fails its requests, releases its child.
    func endSession(_ session: Session, _ reason: CloseReason) {
        guard session.lifecycle.end(reason) else { return }
        sessions[session.id] = nil
        ended.record(session.id, reason)
        log.info("session_closed", [("session", session.id), ("reason", reason.rawValue)])
        if let g = session.getStream { endStream(g) }
        session.getStream = nil
        session.queued.removeAll()
        guard let child = session.child else { return }
        let message: String
        switch reason {
        case .childExited, .childLineTooLong: message = "MCP server process exited (\(child.exitDescription ?? reason.rawValue))"
        case .shutdown: message = "gateway is shutting down"
        default: message = "session ended (\(reason.rawValue))"
        }
        // Its in-flight requests: cancelled at the child (P-09), answered with an error here.
        cancelPending(child, session: session, reason: "session ended (\(reason.rawValue))", message: message)
        unbind(session)
        // A dedicated child is never handed to a second session: it is recycled.
        if !child.isShared { terminate(child, reason: reason) }
    }
}

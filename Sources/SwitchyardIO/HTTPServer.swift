// The HTTP/1.1 server: our own listeners (backlog, TCP_NODELAY, accept back-off), our own connections
// (HTTPConnection: sans-IO parsing from SwitchyardCore.HTTP1), limits, one handler.
//
// Why not evhttp: per request it cost four epoll_ctl calls (it stops reading while a request is pending
// and re-arms read and write separately), a FIONREAD ioctl per read, a dozen mallocs for headers and the
// URI, printf/scanf, and it cannot tell us when the client of a pending request goes away (libevent-notes
// §5.4, H13). Here a connection keeps EPOLLIN armed for its whole life, writes straight to the socket
// (EPOLLOUT only while the kernel buffer is full), and batches every reply of a loop turn into one writev
// per connection.

internal import CLibEvent
#if canImport(Glibc)
    internal import Glibc
#endif

/// Limits applied to every client connection.
package struct HTTPServerLimits {
    package var maxBodyBytes: Int
    package var maxHeaderBytes: Int
    package var timeoutMillis: Int
    package init(maxBodyBytes: Int, maxHeaderBytes: Int, timeoutMillis: Int) {
        self.maxBodyBytes = maxBodyBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.timeoutMillis = timeoutMillis
    }
}

package struct BindError: Error, CustomStringConvertible {
    package var address: String
    package var reason: String
    package var description: String { "cannot listen on \(address): \(reason)" }
}

/// A cap on open connections shared by several servers (all client listeners of a gateway). At the cap
/// every member stops accepting: new clients wait in the kernel's listen backlog, not in our memory.
/// It is also where client connections are counted: accepted, closed, closed by reason.
package final class ConnectionBudget {
    package let limit: Int
    package private(set) var open = 0
    package private(set) var accepted = 0
    package private(set) var closed = 0
    /// Closed connections by reason, indexed by HTTPConnection.CloseReason.
    private var closedBy = [Int](repeating: 0, count: HTTPConnection.CloseReason.allCases.count)

    /// Closed connections per reason ("done", "client_closed", "timeout", "error", "shutdown"), in that order.
    package var closeCounts: [(String, Int)] {
        HTTPConnection.CloseReason.allCases.map { ($0.label, closedBy[$0.rawValue]) }
    }
    /// Times the cap was reached (accepting paused).
    package private(set) var timesFull = 0
    private(set) var paused = false
    private var members: [Unmanaged<HTTPServer>] = []
    /// Called each time the cap is reached.
    package var onFull: () -> Void = {}

    package init(limit: Int) { self.limit = max(1, limit) }

    func join(_ s: HTTPServer) { members.append(.passUnretained(s)) }

    /// A connection was accepted; false if it is over the cap (close it at once).
    func opened() -> Bool {
        guard open < limit else { return false }
        open += 1
        accepted &+= 1
        if open >= limit, !paused {
            paused = true
            timesFull += 1
            for m in members { m.takeUnretainedValue().pauseAccepting() }
            onFull()
        }
        return true
    }

    /// A connection that `opened()` admitted has ended (`reason` nil: it never started).
    func ended(_ reason: HTTPConnection.CloseReason?) {
        open -= 1
        if let reason {
            closed &+= 1
            closedBy[reason.rawValue] &+= 1
        }
        if paused, open < limit {
            paused = false
            for m in members { m.takeUnretainedValue().resumeAccepting() }
        }
    }
}

/// Listeners and the live connections they accepted. Every request goes to `handler` as an `HTTPExchange`.
package final class HTTPServer {
    let loop: EventLoop
    let limits: HTTPServerLimits
    private var listeners: [Listener] = []
    package var handler: (HTTPExchange) -> Void = { _ in }
    /// Set for a TLS listener: every new connection gets an SSL from this context. Replacing it (SIGHUP
    /// reload) affects new connections only; live ones keep their SSL (which holds a reference to its ctx).
    package var tls: TLSContext?
    /// Shared connection cap (the gateway's client listeners); nil = no cap (the admin listener has its own).
    package var budget: ConnectionBudget? {
        didSet { budget?.join(self) }
    }
    /// False once `stopAccepting` ran: the budget must not re-enable a listener during shutdown.
    private var accepting = true

    /// Live connections, by identity (insert on accept, remove on close).
    private var connections: [ObjectIdentifier: HTTPConnection] = [:]
    package var connectionCount: Int { connections.count }
    /// The idle/read timeout as a libevent common timeout: re-arming it per request is O(1).
    private(set) var timeout: UnsafePointer<timeval>?
    /// Connections with bytes to write or a pipelined request to resume, flushed once per loop turn.
    private var dirty: [HTTPConnection] = []
    private var flushing: [HTTPConnection] = []
    private var flushEvent: OpaquePointer?
    /// Scratch for building response heads (reused; never escapes a call).
    var scratch: [UInt8] = []
    private var dateSecond = 0
    private(set) var dateLine: [UInt8] = []

    package init(loop: EventLoop, limits: HTTPServerLimits) {
        self.loop = loop
        self.limits = limits
        var tv = timeval(tv_sec: limits.timeoutMillis / 1000, tv_usec: (limits.timeoutMillis % 1000) * 1000)
        timeout = event_base_init_common_timeout(loop.base, &tv)
        scratch.reserveCapacity(512)
        flushEvent = event_new(
            loop.base, -1, 0,
            { _, _, arg in Unmanaged<HTTPServer>.fromOpaque(arg!).takeUnretainedValue().flushDirty() },
            Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        if let e = flushEvent { event_free(e) }
    }

    /// Binds `host:port` (port 0 = ephemeral) and returns the bound address as "host:port".
    package func bind(host: String, port: Int) throws(BindError) -> String {
        let listener = try Listener(loop: loop, host: host, port: port)
        evconnlistener_set_cb(
            listener.raw,
            { _, fd, addr, len, arg in
                Unmanaged<HTTPServer>.fromOpaque(arg!).takeUnretainedValue().accept(fd, addr, Int(len))
            }, Unmanaged.passUnretained(self).toOpaque())
        evconnlistener_enable(listener.raw)
        listeners.append(listener)
        return listener.boundAddress
    }

    private func accept(_ fd: Int32, _ addr: UnsafeMutablePointer<sockaddr>?, _ len: Int) {
        // Over the cap (a listener re-enabled by the EMFILE back-off while paused): refuse at once.
        if let b = budget, !b.opened() {
            close(fd)
            pauseAccepting()
            return
        }
        let peer = PeerAddress(addr, len)
        let conn: HTTPConnection
        if let tls {
            guard let bev = tls.makeBufferevent(base: loop.base, fd: fd) else {
                close(fd)
                budget?.ended(nil)
                return
            }
            conn = HTTPConnection(server: self, fd: fd, tls: bev, peer: peer)
        } else {
            conn = HTTPConnection(server: self, fd: fd, tls: nil, peer: peer)
        }
        connections[ObjectIdentifier(conn)] = conn
        conn.start()
    }

    func forget(_ conn: HTTPConnection, _ reason: HTTPConnection.CloseReason) {
        connections.removeValue(forKey: ObjectIdentifier(conn))
        budget?.ended(reason)
    }

    /// Queues `conn` for the end-of-turn flush (one write per connection per loop turn).
    func markDirty(_ conn: HTTPConnection) {
        guard !conn.queuedForFlush else { return }
        conn.queuedForFlush = true
        dirty.append(conn)
        if dirty.count == 1, let e = flushEvent { event_active(e, 0, 0) }
    }

    private func flushDirty() {
        while !dirty.isEmpty {
            swap(&dirty, &flushing)
            for c in flushing {
                c.queuedForFlush = false
                c.turnEnded()
            }
            flushing.removeAll(keepingCapacity: true)
        }
    }

    /// "Date: <IMF-fixdate>\r\n", formatted once per second.
    func currentDateLine() -> [UInt8] {
        let now = loop.nowMillis / 1000
        if now != dateSecond || dateLine.isEmpty {
            dateSecond = now
            var t = time_t(time(nil))
            var tmv = tm()
            gmtime_r(&t, &tmv)
            var buf = [CChar](repeating: 0, count: 64)
            let n = strftime(&buf, 64, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tmv)
            dateLine = buf.prefix(n).map { UInt8(bitPattern: $0) }
        }
        return dateLine
    }

    /// Stops accepting new connections; live connections keep going.
    package func stopAccepting() {
        accepting = false
        for l in listeners { l.disable() }
    }

    func pauseAccepting() {
        for l in listeners { l.disable() }
    }

    func resumeAccepting() {
        guard accepting else { return }
        for l in listeners { l.enable() }
    }

    /// Closes every connection (their exchanges' close callbacks run) and the listeners.
    package func free() {
        for l in listeners { l.free() }
        listeners.removeAll()
        for c in Array(connections.values) { c.abort() }
        connections.removeAll()
    }
}

/// The peer of a connection, kept compact (formatted only when asked for).
struct PeerAddress {
    var family: sa_family_t = 0
    var port: UInt16 = 0
    var bytes: (UInt64, UInt64) = (0, 0)

    init(_ addr: UnsafeMutablePointer<sockaddr>?, _ len: Int) {
        guard let addr else { return }
        family = addr.pointee.sa_family
        if family == sa_family_t(AF_INET), len >= MemoryLayout<sockaddr_in>.size {
            addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                port = UInt16(bigEndian: $0.pointee.sin_port)
                var a = $0.pointee.sin_addr
                withUnsafeMutableBytes(of: &bytes) { dst in withUnsafeBytes(of: &a) { dst.copyMemory(from: $0) } }
            }
        } else if family == sa_family_t(AF_INET6), len >= MemoryLayout<sockaddr_in6>.size {
            addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                port = UInt16(bigEndian: $0.pointee.sin6_port)
                var a = $0.pointee.sin6_addr
                withUnsafeMutableBytes(of: &bytes) { dst in withUnsafeBytes(of: &a) { dst.copyMemory(from: $0) } }
            }
        } else {
            family = 0
        }
    }

    var host: String {
        guard family != 0 else { return "" }
        var buf = [CChar](repeating: 0, count: 64)
        var b = bytes
        let ok = withUnsafePointer(to: &b) { inet_ntop(Int32(family), UnsafeRawPointer($0), &buf, 64) }
        guard ok != nil else { return "" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A listening socket built by us (libevent-notes H3/H4): backlog 4096, CLOEXEC, TCP_NODELAY,
/// and an accept-error callback that pauses accepting for 100 ms instead of spinning on EMFILE.
final class Listener {
    let loop: EventLoop
    var raw: OpaquePointer!
    var boundAddress = ""

    init(loop: EventLoop, host: String, port: Int) throws(BindError) {
        self.loop = loop
        let addrText = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        var storage = sockaddr_storage()
        var len = Int32(MemoryLayout<sockaddr_storage>.size)
        // evutil_parse_sockaddr_port refuses port 0, so parse the host alone and set the port here.
        let hostText = host.contains(":") ? "[\(host)]" : host
        let parsed = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { evutil_parse_sockaddr_port(hostText, $0, &len) }
        }
        guard parsed == 0, (0...65535).contains(port) else {
            throw BindError(address: addrText, reason: "not a numeric IP address and port")
        }
        if storage.ss_family == sa_family_t(AF_INET6) {
            withUnsafeMutablePointer(to: &storage) { p in
                p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_port = UInt16(port).bigEndian }
            }
        } else {
            withUnsafeMutablePointer(to: &storage) { p in
                p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_port = UInt16(port).bigEndian }
            }
        }
        // No callback yet, so nothing is accepted until HTTPServer.bind sets one and enables it.
        let flags = UInt32(LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC)
        let l = withUnsafePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                evconnlistener_new_bind(loop.base, nil, nil, flags, 4096, $0, len)
            }
        }
        guard let l else {
            throw BindError(address: addrText, reason: String(cString: strerror(sy_errno())))
        }
        raw = l
        let fd = evconnlistener_get_fd(l)
        var one: Int32 = 1
        // Accepted sockets inherit TCP_NODELAY on Linux (T3).
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var bound = sockaddr_storage()
        var blen = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &blen) }
        }
        let boundPort: Int
        if bound.ss_family == sa_family_t(AF_INET6) {
            boundPort = withUnsafePointer(to: &bound) { p in
                p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
        } else {
            boundPort = withUnsafePointer(to: &bound) { p in
                p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
            }
        }
        boundAddress = host.contains(":") ? "[\(host)]:\(boundPort)" : "\(host):\(boundPort)"
        // Pause accepting for 100 ms on an accept error (EMFILE would otherwise spin, H4). The listener
        // outlives the loop's last iteration (freed only after the loop exits).
        evconnlistener_set_error_cb(
            l,
            { lev, _ in
                guard let lev else { return }
                evconnlistener_disable(lev)
                var tv = timeval(tv_sec: 0, tv_usec: 100_000)
                event_base_once(
                    evconnlistener_get_base(lev), -1, Int16(EV_TIMEOUT),
                    { _, _, arg in evconnlistener_enable(OpaquePointer(arg)) }, UnsafeMutableRawPointer(lev), &tv)
            })
    }

    func disable() { if let raw { evconnlistener_disable(raw) } }

    func enable() { if let raw { evconnlistener_enable(raw) } }

    func free() {
        if let raw { evconnlistener_free(raw) }
        raw = nil
    }
}

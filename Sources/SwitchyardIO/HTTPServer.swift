// The evhttp server: our own listeners (backlog, TCP_NODELAY, accept back-off), limits, one router.

internal import CLibEvent
#if canImport(Glibc)
    internal import Glibc
#endif

/// Limits applied to every client connection (libevent-notes H1–H4).
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

/// One evhttp instance and its listeners. Every request goes to `handler` as an `HTTPExchange`.
package final class HTTPServer {
    let loop: EventLoop
    let http: OpaquePointer
    private var listeners: [Listener] = []
    package var handler: (HTTPExchange) -> Void = { _ in }
    /// Set for a TLS listener: every new connection gets an SSL from this context. Replacing it (SIGHUP
    /// reload) affects new connections only; live ones keep their SSL (which holds a reference to its ctx).
    package var tls: TLSContext? {
        didSet {
            guard (oldValue == nil) != (tls == nil) else { return }
            if tls == nil {
                evhttp_set_bevcb(http, nil, nil)
            } else {
                evhttp_set_bevcb(
                    http,
                    { base, arg in
                        let server = Unmanaged<HTTPServer>.fromOpaque(arg!).takeUnretainedValue()
                        return server.tls?.makeBufferevent(base: base!)
                    }, Unmanaged.passUnretained(self).toOpaque())
            }
        }
    }

    package init(loop: EventLoop, limits: HTTPServerLimits) {
        self.loop = loop
        guard let h = evhttp_new(loop.base) else { preconditionFailure("evhttp_new failed") }
        http = h
        evhttp_set_max_body_size(h, Int(limits.maxBodyBytes))
        evhttp_set_max_headers_size(h, Int(limits.maxHeaderBytes))
        var tv = timeval(tv_sec: limits.timeoutMillis / 1000, tv_usec: (limits.timeoutMillis % 1000) * 1000)
        evhttp_set_timeout_tv(h, &tv)
        // Accept every method so that we, not libevent, answer 405 with an Allow header (H5).
        let all =
            EVHTTP_REQ_GET.rawValue | EVHTTP_REQ_POST.rawValue | EVHTTP_REQ_HEAD.rawValue | EVHTTP_REQ_PUT.rawValue
            | EVHTTP_REQ_DELETE.rawValue | EVHTTP_REQ_OPTIONS.rawValue | EVHTTP_REQ_TRACE.rawValue
            | EVHTTP_REQ_CONNECT.rawValue | EVHTTP_REQ_PATCH.rawValue
        evhttp_set_allowed_methods(h, UInt16(all))
        // No default Content-Type: a 202 must go out without one (H8, P3).
        evhttp_set_default_content_type(h, nil)
        evhttp_set_gencb(
            h,
            { req, arg in
                let server = Unmanaged<HTTPServer>.fromOpaque(arg!).takeUnretainedValue()
                server.handler(HTTPExchange(request: req!, secure: server.tls != nil))
            }, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Binds `host:port` (port 0 = ephemeral) and returns the bound address as "host:port".
    package func bind(host: String, port: Int) throws(BindError) -> String {
        let listener = try Listener(loop: loop, host: host, port: port)
        guard evhttp_bind_listener(http, listener.raw) != nil else {
            throw BindError(address: "\(host):\(port)", reason: "evhttp_bind_listener failed")
        }
        listener.boundToHTTP = true
        listeners.append(listener)
        return listener.boundAddress
    }

    /// Stops accepting new connections; live connections keep going.
    package func stopAccepting() {
        for l in listeners { l.disable() }
    }

    /// Frees the server and all its connections (close callbacks run, H11).
    package func free() {
        evhttp_free(http)
        listeners.removeAll()
    }
}

/// A listening socket built by us (libevent-notes H3/H4): backlog 4096, CLOEXEC, TCP_NODELAY,
/// and an accept-error callback that pauses accepting for 100 ms instead of spinning on EMFILE.
final class Listener {
    let loop: EventLoop
    var raw: OpaquePointer!
    var boundToHTTP = false
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
        // evhttp_bind_listener takes over the listener's user data, so the error callback works from the
        // listener pointer alone: pause accepting for 100 ms (EMFILE would otherwise spin, H4). The
        // listener outlives the loop's last iteration (freed only after the loop exits).
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

    func disable() { evconnlistener_disable(raw) }
}

// Validates a config tree into a GatewayConfig; every error names its key path.

public enum ConfigLoader {
    static let topKeys: Set<String> = [
        "listen", "servers", "default_server", "limits", "allowed_origins", "log_level", "admin", "auth", "allow_insecure",
        "trusted_proxies",
        "mcpServers",
    ]
    static let serverKeys: Set<String> = [
        "command", "args", "env", "cwd", "spares", "pool", "disabled", "type", "description", "env_passthrough", "clear_env",
    ]

    /// Builds the config. `baseDir` is the config file's folder: relative `cwd` paths resolve against it.
    public static func load(_ root: ConfigNode, baseDir: String) throws(ConfigError) -> GatewayConfig {
        guard case .mapping(let top) = root else { throw ConfigError("", "expected a mapping at the top level") }
        var config = GatewayConfig()
        for (key, _) in top where !topKeys.contains(key) {
            throw ConfigError(key, "unknown key (expected one of: \(topKeys.sorted().joined(separator: ", ")))")
        }
        if let l = root["listen"] { config.listen = try listen(l, baseDir: baseDir) }
        if let a = root["auth"] { config.auth = try auth(a, baseDir: baseDir) }
        if let i = root["allow_insecure"] { config.allowInsecure = try bool(i, "allow_insecure") }
        var servers: [ServerSpec] = []
        for key in ["servers", "mcpServers"] {
            guard let node = root[key] else { continue }
            guard case .mapping(let entries) = node else { throw ConfigError(key, "expected a mapping of name → server") }
            for (name, spec) in entries {
                if let s = try server(name: name, spec, path: "\(key).\(name)", baseDir: baseDir) {
                    if servers.contains(where: { $0.name == name }) { throw ConfigError("\(key).\(name)", "duplicate server name") }
                    servers.append(s)
                }
            }
        }
        if servers.isEmpty { throw ConfigError("servers", "at least one server is required") }
        config.servers = servers
        if let d = root["default_server"] {
            let name = try string(d, "default_server")
            guard servers.contains(where: { $0.name == name }) else {
                throw ConfigError("default_server", "no server named \"\(name)\"")
            }
            config.defaultServer = name
        } else {
            config.defaultServer = servers[0].name
        }
        if let l = root["limits"] { config.limits = try limits(l) }
        if let a = root["admin"] {
            guard let addrNode = a["address"] else { throw ConfigError("admin.address", "missing (\"127.0.0.1:port\")") }
            let addr = try string(addrNode, "admin.address")
            guard let spec = parseAddress(addr) else { throw ConfigError("admin.address", "expected \"host:port\", got \"\(addr)\"") }
            guard isLoopback(spec.host) else {
                throw ConfigError(
                    "admin.address", "must be a loopback address (127.0.0.0/8 or ::1): the admin endpoint has no authentication")
            }
            config.admin = spec
        }
        if let t = root["trusted_proxies"] {
            for (i, text) in try stringList(t, "trusted_proxies").enumerated() {
                guard let c = CIDR(text) else { throw ConfigError("trusted_proxies[\(i)]", "expected an address or CIDR, got \"\(text)\"") }
                config.trustedProxies.append(c)
            }
        }
        if let o = root["allowed_origins"] { config.allowedOrigins = try stringList(o, "allowed_origins") }
        if let lv = root["log_level"] {
            let s = try string(lv, "log_level")
            guard let level = LogLevel(name: s) else { throw ConfigError("log_level", "expected debug, info, warn or error, got \"\(s)\"") }
            config.logLevel = level
        }
        try checkProtectedMode(config)
        return config
    }

    /// Protected mode: a listener reachable from other hosts needs TLS and keys, unless `allow_insecure`.
    public static func checkProtectedMode(_ config: GatewayConfig) throws(ConfigError) {
        guard !config.allowInsecure else { return }
        for (i, l) in config.listen.enumerated() where !l.isLoopback {
            if l.tls == nil || !config.auth.isEnabled {
                let missing = l.tls == nil ? (config.auth.isEnabled ? "TLS" : "TLS and keys") : "keys (auth)"
                throw ConfigError(
                    "listen[\(i)]",
                    "\(l.host) is reachable from other hosts but has no \(missing); add listen[\(i)].tls and auth.keys, or set allow_insecure: true"
                )
            }
        }
    }

    /// Server names become URL path segments: letters, digits, `.`, `_`, `-`; not `.` or `..`.
    public static func validateName(_ name: String, path: String) throws(ConfigError) {
        let ok =
            !name.isEmpty && name.count <= 64 && name != "." && name != ".."
            && name.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x5F || c == 0x2D
            }
        if !ok { throw ConfigError(path, "invalid server name (use letters, digits, '.', '_', '-'; not '.' or '..')") }
    }

    static func server(name: String, _ node: ConfigNode, path: String, baseDir: String) throws(ConfigError) -> ServerSpec? {
        try validateName(name, path: path)
        guard case .mapping(let m) = node else { throw ConfigError(path, "expected a mapping with \"command\"") }
        for (k, _) in m where !serverKeys.contains(k) {
            throw ConfigError("\(path).\(k)", "unknown key (expected one of: \(serverKeys.sorted().joined(separator: ", ")))")
        }
        if let d = node["disabled"], try bool(d, "\(path).disabled") { return nil }
        guard let c = node["command"] else { throw ConfigError("\(path).command", "missing (the program to run)") }
        let command = try string(c, "\(path).command")
        if command.isEmpty { throw ConfigError("\(path).command", "must not be empty") }
        var spec = ServerSpec(name: name, command: command)
        if let a = node["args"] { spec.args = try stringList(a, "\(path).args") }
        if let e = node["env"] {
            guard case .mapping(let pairs) = e else { throw ConfigError("\(path).env", "expected a mapping of NAME: value") }
            for (k, v) in pairs {
                if k.isEmpty || k.contains("=") { throw ConfigError("\(path).env.\(k)", "invalid variable name") }
                spec.env.append((k, try string(v, "\(path).env.\(k)")))
            }
        }
        if let w = node["cwd"] {
            let dir = try string(w, "\(path).cwd")
            spec.cwd = dir.hasPrefix("/") ? dir : (baseDir.hasSuffix("/") ? baseDir : baseDir + "/") + dir
        }
        if let s = node["spares"] { spec.spares = try int(s, "\(path).spares", range: 0...64) }
        if let e = node["env_passthrough"] { spec.envPassthrough = try stringList(e, "\(path).env_passthrough") }
        if let c = node["clear_env"] { spec.clearEnv = try bool(c, "\(path).clear_env") }
        if let p = node["pool"] { spec.pool = try pool(p, path: "\(path).pool", base: spec.pool) }
        return spec
    }

    static func pool(_ node: ConfigNode, path: String, base: PoolConfig) throws(ConfigError) -> PoolConfig {
        guard case .mapping(let m) = node else { throw ConfigError(path, "expected a mapping") }
        var p = base
        for (key, v) in m {
            let kp = "\(path).\(key)"
            switch key {
            case "mode":
                let s = try string(v, kp)
                guard let mode = PoolConfig.Mode(rawValue: s) else { throw ConfigError(kp, "expected dedicated or shared, got \"\(s)\"") }
                p.mode = mode
            case "min_idle": p.minIdle = try int(v, kp, range: 0...256)
            case "max_children": p.maxChildren = try int(v, kp, range: 1...10_000)
            case "max_sessions_per_child": p.maxSessionsPerChild = try int(v, kp, range: 1...100_000)
            case "max_inflight_per_child": p.maxInflightPerChild = try int(v, kp, range: 1...100_000)
            case "queue_timeout": p.queueTimeoutMs = try duration(v, kp, min: 0)
            case "request_timeout": p.requestTimeoutMs = try duration(v, kp, min: 0)
            case "spawn_timeout": p.spawnTimeoutMs = try duration(v, kp, min: 100)
            case "idle_timeout": p.idleTimeoutMs = try duration(v, kp, min: 100)
            case "max_lifetime": p.maxLifetimeMs = try duration(v, kp, min: 0)
            case "max_requests": p.maxRequests = try int(v, kp, range: 0...Int.max)
            case "restart_backoff": p.restartBackoffMs = try duration(v, kp, min: 10)
            case "restart_backoff_max": p.restartBackoffMaxMs = try duration(v, kp, min: 10)
            case "cancel_grace": p.cancelGraceMs = try duration(v, kp, min: 0)
            case "scheduling":
                switch try string(v, kp) {
                case "batch": p.batchScheduling = true
                case "normal": p.batchScheduling = false
                case let s: throw ConfigError(kp, "expected batch or normal, got \"\(s)\"")
                }
            default: throw ConfigError(kp, "unknown pool setting")
            }
        }
        if p.minIdle > p.maxChildren { throw ConfigError("\(path).min_idle", "must not exceed max_children (\(p.maxChildren))") }
        if p.restartBackoffMaxMs < p.restartBackoffMs {
            throw ConfigError("\(path).restart_backoff_max", "must be at least restart_backoff")
        }
        return p
    }

    static func resolve(_ path: String, _ baseDir: String) -> String {
        path.hasPrefix("/") ? path : (baseDir.hasSuffix("/") ? baseDir : baseDir + "/") + path
    }

    static func tls(_ node: ConfigNode, path: String, baseDir: String) throws(ConfigError) -> TLSSpec {
        guard case .mapping(let m) = node else { throw ConfigError(path, "expected a mapping with cert and key") }
        guard let c = node["cert"] else { throw ConfigError("\(path).cert", "missing (PEM certificate chain file)") }
        guard let k = node["key"] else { throw ConfigError("\(path).key", "missing (PEM private key file)") }
        var spec = TLSSpec(cert: resolve(try string(c, "\(path).cert"), baseDir), key: resolve(try string(k, "\(path).key"), baseDir))
        for (key, v) in m {
            switch key {
            case "cert", "key": break
            case "min_version":
                let s = try string(v, "\(path).min_version")
                guard s == "1.2" || s == "1.3" else { throw ConfigError("\(path).min_version", "expected \"1.2\" or \"1.3\"") }
                spec.minVersion = s
            case "ciphers": spec.ciphers = try string(v, "\(path).ciphers")
            case "client_ca": spec.clientCA = resolve(try string(v, "\(path).client_ca"), baseDir)
            default: throw ConfigError("\(path).\(key)", "unknown TLS setting (cert, key, min_version, ciphers, client_ca)")
            }
        }
        return spec
    }

    static func auth(_ node: ConfigNode, baseDir: String) throws(ConfigError) -> AuthConfig {
        guard case .mapping(let m) = node else { throw ConfigError("auth", "expected a mapping") }
        var a = AuthConfig()
        for (key, v) in m {
            switch key {
            case "header":
                let h = try string(v, "auth.header")
                guard !h.isEmpty, h.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }) else {
                    throw ConfigError("auth.header", "not a valid header name")
                }
                a.header = h
            case "keys_file": a.keysFile = resolve(try string(v, "auth.keys_file"), baseDir)
            case "keys":
                guard case .sequence(let items) = v else { throw ConfigError("auth.keys", "expected a list of {label, sha256}") }
                for (i, item) in items.enumerated() {
                    let p = "auth.keys[\(i)]"
                    guard case .mapping(let km) = item else { throw ConfigError(p, "expected {label, sha256}") }
                    guard let l = item["label"] else { throw ConfigError("\(p).label", "missing") }
                    let label = try string(l, "\(p).label")
                    var secret: KeySpec.Secret?
                    var servers: [String]?
                    var limits = KeyLimits()
                    for (k, kv) in km {
                        switch k {
                        case "label": break
                        case "sha256":
                            let hex = try string(kv, "\(p).sha256").lowercased()
                            guard hex.count == 64, hex.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else {
                                throw ConfigError("\(p).sha256", "expected 64 hex digits (switchyard hash-key prints them)")
                            }
                            secret = .sha256(hex)
                        case "secret_env": secret = .env(try string(kv, "\(p).secret_env"))
                        case "secret_file": secret = .file(resolve(try string(kv, "\(p).secret_file"), baseDir))
                        case "servers": servers = try stringList(kv, "\(p).servers")
                        case "max_sessions": limits.maxSessions = try int(kv, "\(p).max_sessions", range: 0...1_000_000)
                        case "max_streams": limits.maxStreams = try int(kv, "\(p).max_streams", range: 0...1_000_000)
                        case "rate":
                            guard let r = Double(try string(kv, "\(p).rate")), r >= 0, r.isFinite else {
                                throw ConfigError("\(p).rate", "expected requests per second (a number ≥ 0)")
                            }
                            limits.rate = r
                        case "burst":
                            guard let b = Double(try string(kv, "\(p).burst")), b >= 1, b.isFinite else {
                                throw ConfigError("\(p).burst", "expected a number ≥ 1")
                            }
                            limits.burst = b
                        default:
                            throw ConfigError(
                                "\(p).\(k)",
                                "unknown key setting (label, sha256, secret_env, secret_file, servers, max_sessions, max_streams, rate, burst)"
                            )
                        }
                    }
                    guard let s = secret else { throw ConfigError(p, "needs one of sha256, secret_env, secret_file") }
                    if a.keys.contains(where: { $0.label == label }) { throw ConfigError("\(p).label", "duplicate label \"\(label)\"") }
                    var spec = KeySpec(label: label, secret: s, servers: servers)
                    if limits.rate > 0 && limits.burst == 0 { limits.burst = max(1, limits.rate) }
                    spec.limits = limits
                    a.keys.append(spec)
                }
            default: throw ConfigError("auth.\(key)", "unknown auth setting (header, keys, keys_file)")
            }
        }
        return a
    }

    /// Parses a keys file: `label:sha256hex` per line; blank lines and `#` comments are skipped.
    public static func parseKeysFile(_ text: String, path: String) throws(ConfigError) -> [KeySpec] {
        var out: [KeySpec] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters()
            if line.isEmpty || line.hasPrefix("#") { continue }
            let parts = line.split(separator: ":", maxSplits: 1)
            let hex = parts.count == 2 ? parts[1].trimmingCharacters().lowercased() : ""
            guard parts.count == 2, !parts[0].isEmpty, hex.count == 64,
                hex.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
            else { throw ConfigError("\(path):\(n + 1)", "expected label:sha256hex") }
            out.append(KeySpec(label: String(parts[0]), secret: .sha256(hex)))
        }
        return out
    }

    static func listen(_ node: ConfigNode, baseDir: String) throws(ConfigError) -> [ListenSpec] {
        guard case .sequence(let items) = node, !items.isEmpty else {
            throw ConfigError("listen", "expected a non-empty list of {address: \"host:port\"}")
        }
        var out: [ListenSpec] = []
        for (k, item) in items.enumerated() {
            let path = "listen[\(k)]"
            let addrNode: ConfigNode
            if case .scalar = item {
                addrNode = item
            } else {
                guard let a = item["address"] else { throw ConfigError("\(path).address", "missing (\"host:port\")") }
                addrNode = a
            }
            let addr = try string(addrNode, "\(path).address")
            guard var spec = parseAddress(addr) else { throw ConfigError("\(path).address", "expected \"host:port\", got \"\(addr)\"") }
            if let t = item["tls"] { spec.tls = try tls(t, path: "\(path).tls", baseDir: baseDir) }
            out.append(spec)
        }
        return out
    }

    public static func isLoopback(_ host: String) -> Bool {
        host == "::1" || host == "localhost" || host.hasPrefix("127.") && host.split(separator: ".").count == 4
    }

    /// Parses "host:port" or "[v6]:port".
    public static func parseAddress(_ s: String) -> ListenSpec? {
        var host: Substring
        var portPart: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return nil }
            host = s[s.index(after: s.startIndex)..<close]
            let rest = s[s.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portPart = rest.dropFirst()
        } else {
            guard let colon = s.lastIndex(of: ":") else { return nil }
            host = s[..<colon]
            portPart = s[s.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portPart), (0...65535).contains(port) else { return nil }
        return ListenSpec(host: String(host), port: port)
    }

    static func limits(_ node: ConfigNode) throws(ConfigError) -> Limits {
        guard case .mapping(let m) = node else { throw ConfigError("limits", "expected a mapping") }
        var l = Limits()
        for (key, v) in m {
            let path = "limits.\(key)"
            switch key {
            case "max_body_bytes": l.maxBodyBytes = try size(v, path, min: 1024)
            case "max_header_bytes": l.maxHeaderBytes = try size(v, path, min: 1024)
            case "max_line_bytes": l.maxLineBytes = try size(v, path, min: 1024)
            case "sse_max_backlog_bytes": l.sseMaxBacklogBytes = try size(v, path, min: 1024)
            case "child_stdin_max_bytes": l.childStdinMaxBytes = try size(v, path, min: 1024)
            case "max_sessions": l.maxSessions = try int(v, path, range: 1...1_000_000)
            case "max_connections": l.maxConnections = try int(v, path, range: 1...1_000_000)
            case "pending_notifications": l.pendingNotifications = try int(v, path, range: 0...100_000)
            case "http_timeout": l.httpTimeoutMs = try duration(v, path, min: 100)
            case "session_idle_timeout": l.sessionIdleTimeoutMs = try duration(v, path, min: 100)
            case "sse_keepalive": l.sseKeepAliveMs = try duration(v, path, min: 100)
            case "sse_start_delay": l.sseStartDelayMs = try duration(v, path, min: 0)
            case "request_timeout": l.requestTimeoutMs = try duration(v, path, min: 0)
            case "shutdown_grace": l.shutdownGraceMs = try duration(v, path, min: 0)
            default: throw ConfigError(path, "unknown limit")
            }
        }
        return l
    }

    static func string(_ n: ConfigNode, _ path: String) throws(ConfigError) -> String {
        guard case .scalar(let s, _) = n else { throw ConfigError(path, "expected a string") }
        return s
    }

    static func stringList(_ n: ConfigNode, _ path: String) throws(ConfigError) -> [String] {
        guard case .sequence(let items) = n else { throw ConfigError(path, "expected a list of strings") }
        var out: [String] = []
        for (k, i) in items.enumerated() { out.append(try string(i, "\(path)[\(k)]")) }
        return out
    }

    static func bool(_ n: ConfigNode, _ path: String) throws(ConfigError) -> Bool {
        switch try string(n, path).lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw ConfigError(path, "expected true or false")
        }
    }

    static func int(_ n: ConfigNode, _ path: String, range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let v = Int(try string(n, path)) else { throw ConfigError(path, "expected an integer") }
        guard range.contains(v) else { throw ConfigError(path, "must be between \(range.lowerBound) and \(range.upperBound)") }
        return v
    }

    static func size(_ n: ConfigNode, _ path: String, min: Int) throws(ConfigError) -> Int {
        let s = try string(n, path)
        guard let v = Units.bytes(s) else { throw ConfigError(path, "expected a size such as 65536, 64KiB or 4MiB, got \"\(s)\"") }
        guard v >= min else { throw ConfigError(path, "must be at least \(min) bytes") }
        return v
    }

    static func duration(_ n: ConfigNode, _ path: String, min: Int) throws(ConfigError) -> Int {
        let s = try string(n, path)
        guard let v = Units.durationMillis(s) else { throw ConfigError(path, "expected a duration such as 500ms, 30s or 5m, got \"\(s)\"") }
        guard v >= min else { throw ConfigError(path, "must be at least \(min)ms") }
        return v
    }
}

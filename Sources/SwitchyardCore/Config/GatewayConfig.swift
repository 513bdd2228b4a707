// The validated configuration of one gateway process, with defaults.

/// One stdio MCP server the gateway can run.
public struct ServerSpec: Equatable, Sendable {
    public var name: String
    public var command: String
    public var args: [String]
    public var env: [(String, String)]
    /// Absolute or relative to the config file's folder (resolved by the loader).
    public var cwd: String?
    /// How children are pooled (`pool:`).
    public var pool: PoolConfig
    /// `env_passthrough`: gateway environment variables the child inherits beyond the safe allowlist.
    public var envPassthrough: [String] = []
    /// `clear_env`: inherit nothing (not even the allowlist); the child gets only `env`.
    public var clearEnv = false

    public init(
        name: String, command: String, args: [String] = [], env: [(String, String)] = [], cwd: String? = nil,
        pool: PoolConfig = PoolConfig()
    ) {
        self.name = name
        self.command = command
        self.args = args
        self.env = env
        self.cwd = cwd
        self.pool = pool
    }

    /// Warm spares (dedicated) or ready children (shared): `pool.min_idle`, also spelled `spares`.
    public var spares: Int {
        get { pool.minIdle }
        set { pool.minIdle = newValue }
    }

    public static func == (a: ServerSpec, b: ServerSpec) -> Bool {
        a.name == b.name && a.command == b.command && a.args == b.args && a.cwd == b.cwd && a.pool == b.pool
            && a.env.count == b.env.count && zip(a.env, b.env).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }
}

/// Every limit has a default, a config key under `limits:`, and a documented error.
public struct Limits: Equatable, Sendable {
    /// `max_body_bytes`: larger POST bodies get 413.
    public var maxBodyBytes = 4 << 20
    /// `max_header_bytes`: larger request heads get 431 (414 when the request line alone is too long).
    public var maxHeaderBytes = 64 << 10
    /// `max_sessions`: further `initialize` requests get 503 + Retry-After.
    public var maxSessions = 1000
    /// `max_connections`: open client connections over all client listeners; at the cap the gateway stops
    /// accepting (new clients wait in the listen backlog) until one closes.
    public var maxConnections = 16_384
    /// `max_line_bytes`: a child stdout line longer than this ends the child.
    public var maxLineBytes = 16 << 20
    /// `http_timeout`: read/write timeout of client connections (idle keep-alive included).
    public var httpTimeoutMs = 60_000
    /// `session_idle_timeout`: a session without requests or open streams for this long ends.
    public var sessionIdleTimeoutMs = 30 * 60_000
    /// `sse_keepalive`: comment interval on every SSE stream.
    public var sseKeepAliveMs = 15_000
    /// `sse_start_delay`: a POST answered as SSE sends its headers with the first event if that comes
    /// within this delay (one write instead of two for fast tools); otherwise at the delay (0 = at once).
    public var sseStartDelayMs = 5
    /// `sse_max_backlog_bytes`: a stream whose unsent output exceeds this is dropped (slow reader).
    public var sseMaxBacklogBytes = 4 << 20
    /// `pending_notifications`: server messages queued per session while no GET stream is open.
    public var pendingNotifications = 256
    /// `request_timeout`: a child request unanswered this long gets -32001 (0 = none).
    public var requestTimeoutMs = 0
    /// `shutdown_grace`: SIGTERM to children, then SIGKILL after this.
    public var shutdownGraceMs = 5_000
    /// `child_stdin_max_bytes`: requests are refused while a child's unread stdin backlog exceeds this.
    public var childStdinMaxBytes = 16 << 20

    public init() {}
}

public struct ListenSpec: Equatable, Sendable {
    public var host: String
    public var port: Int
    /// TLS termination on this listener (`tls:`); nil = plain HTTP.
    public var tls: TLSSpec?
    public init(host: String, port: Int, tls: TLSSpec? = nil) {
        self.host = host
        self.port = port
        self.tls = tls
    }

    /// 127.0.0.0/8 or ::1 (or "localhost").
    public var isLoopback: Bool { ConfigLoader.isLoopback(host) }
}

/// `listen[].tls`: certificate chain and key (PEM), minimum version, ciphers, optional client CA (mTLS).
public struct TLSSpec: Equatable, Sendable {
    public var cert: String
    public var key: String
    /// "1.2" (default) or "1.3".
    public var minVersion: String = "1.2"
    public var ciphers: String?
    public var clientCA: String?
    public init(cert: String, key: String) {
        self.cert = cert
        self.key = key
    }
}

/// `auth:`: shared-secret keys checked on every request of every transport.
public struct AuthConfig: Equatable, Sendable {
    /// The header carrying the key; `Authorization` expects `Bearer <key>`, any other header the raw key.
    public var header = "Authorization"
    public var keys: [KeySpec] = []
    /// `keys_file`: one `label:sha256hex` per line (absolute path after loading).
    public var keysFile: String?
    public init() {}
    public var isEnabled: Bool { !keys.isEmpty || keysFile != nil }
}

public struct KeySpec: Equatable, Sendable {
    public enum Secret: Equatable, Sendable {
        /// Hex SHA-256 of the secret itself (without "Bearer ").
        case sha256(String)
        /// The secret is read from this environment variable at start-up (never from argv).
        case env(String)
        /// The secret is the first line of this file.
        case file(String)
    }
    public var label: String
    public var secret: Secret
    /// Servers this key may use; nil = all.
    public var servers: [String]?
    public var limits = KeyLimits()
    public init(label: String, secret: Secret, servers: [String]? = nil) {
        self.label = label
        self.secret = secret
        self.servers = servers
    }
}

public struct GatewayConfig: Equatable, Sendable {
    public var listen: [ListenSpec] = [ListenSpec(host: "127.0.0.1", port: 8080)]
    public var servers: [ServerSpec] = []
    public var defaultServer: String = ""
    public var limits = Limits()
    public var allowedOrigins: [String] = []
    public var auth = AuthConfig()
    /// `trusted_proxies`: peers whose X-Forwarded-For/-Host/-Proto are believed.
    public var trustedProxies: [CIDR] = []
    /// `allow_insecure`: start even with a non-loopback listener lacking TLS or keys (protected mode off).
    public var allowInsecure = false
    /// `admin.address`: a separate loopback-only listener with pool state as JSON (nil = off).
    public var admin: ListenSpec?
    public var logLevel: LogLevel = .info

    public init() {}

    public var defaultSpec: ServerSpec? { servers.first { $0.name == defaultServer } }
}

public enum LogLevel: Int, Comparable, Sendable, CaseIterable {
    case debug, info, warning, error
    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
    public var name: String { ["debug", "info", "warn", "error"][rawValue] }
    public init?(name: String) {
        switch name.lowercased() {
        case "debug", "trace": self = .debug
        case "info": self = .info
        case "warn", "warning": self = .warning
        case "error": self = .error
        default: return nil
        }
    }
}

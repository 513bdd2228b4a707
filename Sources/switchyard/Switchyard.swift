// The command line: quick mode (`-- COMMAND ARGS…`), `--config FILE`, and the demo server.

internal import ArgumentParser
internal import SwitchyardCore
internal import SwitchyardServer
#if canImport(Glibc)
    internal import Glibc
#endif

struct Switchyard: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchyard",
        abstract: "Serve stdio MCP servers over Streamable HTTP (MCP 2025-03-26, 2025-06-18, 2025-11-25).",
        usage: """
            switchyard [--host <host>] [--port <port>] [options] -- COMMAND [ARGS...]
              switchyard --config FILE [options]
              switchyard                      (the bundled demo server on 127.0.0.1:8080)
              switchyard demo-server          (run the demo stdio MCP server itself)
              switchyard hash-key < secret    (print the sha256 for auth.keys[].sha256)
            """,
        discussion: """
            The MCP endpoint is http://HOST:PORT/mcp. A config file is YAML or JSON; a Claude Desktop \
            {"mcpServers": ...} file works unchanged. Logs are logfmt lines on stderr.

            Exit codes: 0 after SIGTERM/SIGINT, 71 cannot listen, 78 bad configuration.
            """)

    @Option(help: "Config file (YAML or JSON). Overrides the embedded default.")
    var config: String?

    @Option(help: "Listen address (quick mode; default 127.0.0.1).")
    var host: String?

    @Option(help: "Listen port (quick mode; default 8080; 0 picks a free port).")
    var port: Int?

    @Option(help: "Warm spare children per server (spawned, not yet initialized).")
    var spares: Int?

    @Option(help: "Pool mode for the server(s): dedicated (a child per session) or shared (sessions multiplexed).")
    var poolMode: String?

    @Option(help: "Requests unanswered this long get -32001 and are cancelled at the child (e.g. 5m; 0 = never).")
    var requestTimeout: String?

    @Option(help: "Spawn + initialize of a child must finish within this (e.g. 30s).")
    var spawnTimeout: String?

    @Option(help: "Admin endpoint (loopback only), e.g. 127.0.0.1:9091: GET /pools, /children, /sessions.")
    var admin: String?

    @Flag(help: "Allow a non-loopback listener without TLS or keys (protected mode off).")
    var allowInsecure = false

    @Option(help: "Maximum concurrent sessions.")
    var maxSessions: Int?

    @Option(help: "Maximum open client connections (then accepting pauses until one closes).")
    var maxConnections: Int?

    @Option(help: "End sessions idle this long (e.g. 30m, 90s).")
    var sessionIdleTimeout: String?

    @Option(help: "Keep-alive comment interval on SSE streams (e.g. 15s).")
    var sseKeepalive: String?

    @Option(help: "Log level: debug, info, warn, error.")
    var logLevel: String?

    @Argument(parsing: .postTerminator, help: "The stdio MCP server to run (after --).")
    var command: [String] = []

    func run() throws {
        var cfg: GatewayConfig
        var keys: KeyRing?
        do {
            cfg = try buildConfig()
            keys = try Gateway.keyRing(for: cfg)
        } catch {
            let line = "switchyard: \(error.description)\n"
            _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
            Glibc.exit(78)
        }
        Glibc.exit(Gateway(config: cfg, keys: keys).run())
    }

    func buildConfig() throws(ConfigError) -> GatewayConfig {
        var cfg: GatewayConfig
        if let path = config {
            if !command.isEmpty { throw ConfigError("", "give either --config or a command after --, not both") }
            cfg = try ConfigFile.load(path: path)
        } else {
            cfg = GatewayConfig()
            var spec: ServerSpec
            if command.isEmpty {
                spec = ServerSpec(name: "demo", command: Switchyard.selfPath(), args: ["demo-server"])
            } else {
                spec = ServerSpec(name: "default", command: command[0], args: Array(command.dropFirst()))
            }
            spec.spares = 1
            cfg.servers = [spec]
            cfg.defaultServer = spec.name
        }
        if host != nil || port != nil {
            let h = host ?? cfg.listen.first?.host ?? "127.0.0.1"
            let p = port ?? cfg.listen.first?.port ?? 8080
            guard (0...65535).contains(p) else { throw ConfigError("--port", "must be between 0 and 65535") }
            cfg.listen = [ListenSpec(host: h, port: p)]
        }
        if let s = spares {
            guard (0...64).contains(s) else { throw ConfigError("--spares", "must be between 0 and 64") }
            for k in cfg.servers.indices { cfg.servers[k].spares = s }
        }
        if let m = poolMode {
            guard let mode = PoolConfig.Mode(rawValue: m) else { throw ConfigError("--pool-mode", "expected dedicated or shared") }
            for k in cfg.servers.indices { cfg.servers[k].pool.mode = mode }
        }
        if let ms = try Switchyard.duration(requestTimeout, "--request-timeout", min: 0) {
            for k in cfg.servers.indices { cfg.servers[k].pool.requestTimeoutMs = ms }
        }
        if let ms = try Switchyard.duration(spawnTimeout, "--spawn-timeout", min: 100) {
            for k in cfg.servers.indices { cfg.servers[k].pool.spawnTimeoutMs = ms }
        }
        if let a = admin {
            guard let spec = ConfigLoader.parseAddress(a), ConfigLoader.isLoopback(spec.host) else {
                throw ConfigError("--admin", "expected a loopback host:port such as 127.0.0.1:9091")
            }
            cfg.admin = spec
        }
        if let m = maxSessions {
            guard m >= 1 else { throw ConfigError("--max-sessions", "must be at least 1") }
            cfg.limits.maxSessions = m
        }
        if let m = maxConnections {
            guard m >= 1 else { throw ConfigError("--max-connections", "must be at least 1") }
            cfg.limits.maxConnections = m
        }
        if let ms = try Switchyard.duration(sessionIdleTimeout, "--session-idle-timeout", min: 100) {
            cfg.limits.sessionIdleTimeoutMs = ms
        }
        if let ms = try Switchyard.duration(sseKeepalive, "--sse-keepalive", min: 100) { cfg.limits.sseKeepAliveMs = ms }
        if allowInsecure { cfg.allowInsecure = true }
        try ConfigLoader.checkProtectedMode(cfg)
        if let l = logLevel {
            guard let level = LogLevel(name: l) else { throw ConfigError("--log-level", "expected debug, info, warn or error") }
            cfg.logLevel = level
        }
        return cfg
    }

    /// A duration flag (`500ms`, `30s`, `5m`), or nil when the flag was not given.
    static func duration(_ text: String?, _ flag: String, min: Int) throws(ConfigError) -> Int? {
        guard let t = text else { return nil }
        guard let ms = Units.durationMillis(t), ms >= min else {
            throw ConfigError(flag, "expected a duration such as 500ms, 30s or 5m (at least \(min)ms), got \"\(t)\"")
        }
        return ms
    }

    /// The running binary, so the demo server child is this same program.
    static func selfPath() -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        if n > 0 { return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        return CommandLine.arguments[0]
    }
}

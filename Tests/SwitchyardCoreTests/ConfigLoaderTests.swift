// Config validation: defaults, units, Claude Desktop files and one-line errors with key paths.

import Testing

@testable import SwitchyardCore

func s(_ v: String) -> ConfigNode { .scalar(v, quoted: false) }
func map(_ pairs: (String, ConfigNode)...) -> ConfigNode { .mapping(pairs) }

struct ConfigLoaderTests {
    @Test func quickConfigWithDefaults() throws {
        let root = map(("servers", map(("time", map(("command", s("uvx")), ("args", .sequence([s("mcp-server-time")])))))))
        let c = try ConfigLoader.load(root, baseDir: "/etc/sy")
        #expect(c.defaultServer == "time")
        #expect(c.servers[0].args == ["mcp-server-time"])
        #expect(c.limits.maxBodyBytes == 4 << 20)
        #expect(c.limits.sessionIdleTimeoutMs == 30 * 60_000)
        #expect(c.listen == [ListenSpec(host: "127.0.0.1", port: 8080)])
    }

    @Test func claudeDesktopFileSkipsDisabledAndResolvesCwd() throws {
        let root = map(
            (
                "mcpServers",
                map(
                    ("a", map(("command", s("npx")), ("disabled", s("true")))),
                    ("b", map(("command", s("python3")), ("cwd", s("srv")), ("env", map(("K", s("v")))))))
            ))
        let c = try ConfigLoader.load(root, baseDir: "/home/u/cfg")
        #expect(c.servers.map(\.name) == ["b"])
        #expect(c.servers[0].cwd == "/home/u/cfg/srv")
        #expect(c.servers[0].env.first?.0 == "K")
        #expect(c.defaultServer == "b")
    }

    @Test func poolSchedulingDefaultsToBatch() throws {
        func server(_ pool: ConfigNode?) throws -> PoolConfig {
            var fields: [(String, ConfigNode)] = [("command", s("c"))]
            if let pool { fields.append(("pool", pool)) }
            return try ConfigLoader.load(map(("servers", map(("x", .mapping(fields))))), baseDir: "/").servers[0].pool
        }
        #expect(try server(nil).batchScheduling)
        #expect(try server(map(("scheduling", s("batch")))).batchScheduling)
        #expect(try !server(map(("scheduling", s("normal")))).batchScheduling)
        #expect(throws: ConfigError.self) { try server(map(("scheduling", s("fifo")))) }
    }

    @Test func limitsAcceptUnits() throws {
        let root = map(
            ("servers", map(("x", map(("command", s("c")))))),
            (
                "limits",
                map(
                    ("max_body_bytes", s("1MiB")), ("sse_keepalive", s("500ms")), ("session_idle_timeout", s("5m")),
                    ("max_connections", s("100")))
            ),
            ("listen", .sequence([map(("address", s("[::1]:9000"))), map(("address", s("0.0.0.0:0")))])),
            ("allow_insecure", s("true")))
        let c = try ConfigLoader.load(root, baseDir: "/")
        #expect(c.limits.maxBodyBytes == 1 << 20)
        #expect(c.limits.sseKeepAliveMs == 500)
        #expect(c.limits.sessionIdleTimeoutMs == 300_000)
        #expect(c.limits.maxConnections == 100)
        #expect(Limits().maxConnections == 16_384)
        #expect(c.listen == [ListenSpec(host: "::1", port: 9000), ListenSpec(host: "0.0.0.0", port: 0)])
    }

    @Test(
        arguments: [
            (
                map(("servers", map(("x", map(("command", s("c")))))), ("limits", map(("max_body_bytes", s("lots"))))),
                "limits.max_body_bytes"
            ),
            (map(("servers", map(("x", map(("args", .sequence([]))))))), "servers.x.command"),
            (map(("servers", map(("../x", map(("command", s("c"))))))), "servers.../x"),
            (map(("servers", map(("x", map(("command", s("c")))))), ("default_server", s("y"))), "default_server"),
            (
                map(("servers", map(("x", map(("command", s("c")))))), ("listen", .sequence([map(("address", s("nowhere")))]))),
                "listen[0].address"
            ),
            (map(("servers", map(("x", map(("command", s("c")), ("spares", s("-1"))))))), "servers.x.spares"),
            (map(("servers", map(("x", map(("command", s("c")))))), ("bogus", s("1"))), "bogus"),
            (map(("servers", map(("x", map(("command", .sequence([s("c")]))))))), "servers.x.command"),
            (map(("servers", map())), "servers"),
            (map(("servers", map(("x", map(("command", s("c")))))), ("limits", map(("sse_keepalive", s("10ms"))))), "limits.sse_keepalive"),
        ] as [(ConfigNode, String)])
    func errorsNameTheKeyPath(root: ConfigNode, path: String) {
        do throws(ConfigError) {
            _ = try ConfigLoader.load(root, baseDir: "/")
            Issue.record("accepted a bad config (\(path))")
        } catch {
            #expect(error.path == path)
            #expect(error.description.hasPrefix("config: \(path): "))
            #expect(!error.description.contains("\n"))
        }
    }

    @Test func protectedModeRefusesAnOpenListenerWithoutTLSAndKeys() throws {
        let open = map(("servers", map(("x", map(("command", s("c")))))), ("listen", .sequence([map(("address", s("0.0.0.0:8080")))])))
        #expect(throws: ConfigError.self) { try ConfigLoader.load(open, baseDir: "/") }
        let withTLSAndKeys = map(
            ("servers", map(("x", map(("command", s("c")))))),
            ("listen", .sequence([map(("address", s("0.0.0.0:8443")), ("tls", map(("cert", s("c.pem")), ("key", s("k.pem")))))])),
            ("auth", map(("keys", .sequence([map(("label", s("a")), ("sha256", s(String(repeating: "a", count: 64))))])))))
        let c = try ConfigLoader.load(withTLSAndKeys, baseDir: "/etc/sy")
        #expect(c.listen[0].tls?.cert == "/etc/sy/c.pem")
        #expect(c.auth.keys.first?.secret == .sha256(String(repeating: "a", count: 64)))
    }

    @Test func keysFileLines() throws {
        let keys = try ConfigLoader.parseKeysFile("# team\nalice:\(String(repeating: "b", count: 64))\n\n", path: "k")
        #expect(keys.map(\.label) == ["alice"])
        #expect(throws: ConfigError.self) { try ConfigLoader.parseKeysFile("bob:123\n", path: "k") }
    }

    @Test(arguments: [("500ms", 500), ("30s", 30_000), ("5m", 300_000), ("1h", 3_600_000), ("2", 2000), ("1.5s", 1500)])
    func durations(text: String, ms: Int) { #expect(Units.durationMillis(text) == ms) }

    @Test func badDurationsAndSizes() {
        #expect(Units.durationMillis("soon") == nil)
        #expect(Units.durationMillis("-1s") == nil)
        #expect(Units.durationMillis("8888888888888888888888") == nil)  // found by FuzzHTTPInputs
        #expect(Units.durationMillis("nan") == nil)
        #expect(ConfigError("a\nb", "c\td").description == "config: a\\nb: c\\td")
        #expect(Units.bytes("4MiB") == 4 << 20)
        #expect(Units.bytes("64K") == 64 << 10)
        #expect(Units.bytes("12") == 12)
        #expect(Units.bytes("x") == nil)
    }

    @Test func endedSessionsAreBounded() {
        var e = EndedSessions(capacity: 2)
        let (a, b, c) = (String(repeating: "a", count: 32), String(repeating: "0", count: 31) + "b", "0123456789abcdef0123456789abcdef")
        e.record(a, .clientDeleted)
        e.record(b, .childExited)
        e.record(c, .idleTimeout)
        #expect(e.reason(a) == nil)
        #expect(e.reason(b) == .childExited)
        #expect(e.reason(c) == .idleTimeout)
        #expect(e.count == 2)
        // Not an id the gateway issues (length, case, characters): never recorded, never found.
        for bogus in ["a", String(repeating: "A", count: 32), String(repeating: "g", count: 32), c + "0"] {
            e.record(bogus, .clientGone)
            #expect(e.reason(bogus) == nil)
        }
        #expect(e.reason(b) == .childExited && e.count == 2)
    }
}

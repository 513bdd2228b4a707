// Config files on disk: YAML, JSON, Claude Desktop files, relative paths and one-line errors.

import Foundation
import Testing

@testable import SwitchyardCore
@testable import SwitchyardServer

struct ConfigFileTests {
    func write(_ text: String, name: String = "switchyard.yaml") throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func yamlWithRelativeCwdAndUnits() throws {
        let path = try write(
            """
            listen:
              - address: "127.0.0.1:9090"
            default_server: time
            servers:
              time:
                command: uvx
                args: [mcp-server-time, "--local-timezone=UTC"]
                env: {TZ: UTC}
                cwd: work
              other:
                command: ./bin/server
            limits:
              max_body_bytes: 2MiB
              session_idle_timeout: 5m
            log_level: debug
            """)
        let c = try ConfigFile.load(path: path)
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        #expect(c.listen == [ListenSpec(host: "127.0.0.1", port: 9090)])
        #expect(c.defaultServer == "time")
        #expect(c.servers.map(\.name) == ["time", "other"])
        #expect(c.servers[0].args == ["mcp-server-time", "--local-timezone=UTC"])
        #expect(c.servers[0].cwd == dir + "/work")
        #expect(c.limits.maxBodyBytes == 2 << 20)
        #expect(c.limits.sessionIdleTimeoutMs == 300_000)
        #expect(c.logLevel == .debug)
    }

    @Test func claudeDesktopJSONUnchanged() throws {
        let path = try write(
            """
            {"mcpServers": {
              "git": {"command": "uvx", "args": ["mcp-server-git"], "disabled": true},
              "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {"A": "1"}}
            }}
            """, name: "claude_desktop_config.json")
        let c = try ConfigFile.load(path: path)
        #expect(c.servers.map(\.name) == ["time"])
        #expect(c.defaultServer == "time")
        #expect(c.servers[0].env.map(\.0) == ["A"])
    }

    @Test func errorsAreOneLineWithThePath() throws {
        let cases: [(String, String)] = [
            ("servers:\n  x:\n    command: [a, b]\n", "config: servers.x.command: expected a string"),
            ("servers: {x: {command: c}}\nlimits: {sse_keepalive: often}\n", "config: limits.sse_keepalive: expected a duration"),
            ("servers: {x: {command: c}\n", "is not valid YAML/JSON"),
            ("", "is empty"),
        ]
        for (text, expected) in cases {
            let path = try write(text)
            do {
                _ = try ConfigFile.load(path: path)
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.description.contains(expected), "\(error.description)")
                #expect(!error.description.contains("\n"))
            }
        }
        #expect(throws: ConfigError.self) { try ConfigFile.load(path: "/nonexistent/switchyard.yaml") }
    }
}

// The bundled demo stdio MCP server (`switchyard demo-server`): the default child and the bench child.
//
// It answers initialize, ping, tools/list and tools/call for `echo`, `add` and `sleep`, reading
// newline-delimited JSON-RPC on stdin and writing one line per answer on stdout. Blocking I/O is fine here:
// it is its own process.

internal import SwitchyardCore
#if canImport(Glibc)
    internal import Glibc
#endif

package enum DemoServer {
    static let tools =
        #"{"tools":[{"name":"echo","description":"Returns the given text.","inputSchema":{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}},{"name":"add","description":"Adds two numbers.","inputSchema":{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}},"required":["a","b"]}},{"name":"sleep","description":"Waits for the given milliseconds.","inputSchema":{"type":"object","properties":{"ms":{"type":"integer"}},"required":["ms"]}}]}"#

    package static func run() -> Int32 {
        var framer = LineFramer(maxLine: 16 << 20)
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
            if n == 0 { return 0 }
            if n < 0 {
                if errno == EINTR { continue }
                return 1
            }
            let lines: [[UInt8]]
            do {
                lines = try framer.append(buf[0..<n])
            } catch {
                return 1
            }
            var out: [UInt8] = []
            for line in lines { line.withUnsafeBytes { answer($0, into: &out) } }
            var off = 0
            while off < out.count {
                let w = out.withUnsafeBytes { write(1, $0.baseAddress! + off, out.count - off) }
                if w <= 0 { return 1 }
                off += w
            }
        }
    }

    static func answer(_ line: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        guard let env = try? EnvelopeScanner.scan(line), env.kind == .request, let id = env.id, let m = env.method else { return }
        let idBytes = Array(UnsafeRawBufferPointer(rebasing: line[id.start..<id.end]))
        func result(_ json: String) {
            out.append(contentsOf: #"{"jsonrpc":"2.0","id":"#.utf8)
            out.append(contentsOf: idBytes)
            out.append(contentsOf: #","result":"#.utf8)
            out.append(contentsOf: json.utf8)
            out.append(contentsOf: "}\n".utf8)
        }
        func error(_ code: Int, _ message: String) {
            out.append(contentsOf: JSONText.errorResponse(id: idBytes, code: code, message: message))
            out.append(0x0A)
        }
        let method = JSONText.decodeString(line, m) ?? ""
        switch method {
        case "initialize":
            var version = "2025-06-18"
            if let p = env.params, let (v, k) = EnvelopeScanner.member(line, of: p, key: "\"protocolVersion\""), k == .string,
                let s = JSONText.decodeString(line, v), ProtocolVersion.isSupported(s)
            {
                version = s
            }
            result(
                #"{"protocolVersion":"\#(version)","capabilities":{"tools":{}},"serverInfo":{"name":"switchyard-demo","version":"0.1.0"}}"#)
        case "ping": result("{}")
        case "tools/list": result(tools)
        case "tools/call":
            guard let p = env.params, let (n, _) = EnvelopeScanner.member(line, of: p, key: "\"name\""),
                let name = JSONText.decodeString(line, n)
            else { return error(JSONRPCErrorCode.invalidParams, "missing tool name") }
            let args = EnvelopeScanner.member(line, of: p, key: "\"arguments\"").map(\.0)
            switch name {
            case "echo":
                guard let a = args, let (t, k) = EnvelopeScanner.member(line, of: a, key: "\"text\""), k == .string else {
                    return error(JSONRPCErrorCode.invalidParams, "echo needs a string argument \"text\"")
                }
                // The text is already valid JSON string syntax: forward its bytes as they are.
                result(
                    #"{"content":[{"type":"text","text":"#
                        + String(decoding: UnsafeRawBufferPointer(rebasing: line[t.start..<t.end]), as: UTF8.self) + "}]}")
            case "add":
                guard let a = args, let (x, kx) = EnvelopeScanner.member(line, of: a, key: "\"a\""), kx == .number,
                    let (y, ky) = EnvelopeScanner.member(line, of: a, key: "\"b\""), ky == .number,
                    let dx = Double(String(decoding: UnsafeRawBufferPointer(rebasing: line[x.start..<x.end]), as: UTF8.self)),
                    let dy = Double(String(decoding: UnsafeRawBufferPointer(rebasing: line[y.start..<y.end]), as: UTF8.self))
                else { return error(JSONRPCErrorCode.invalidParams, "add needs numbers \"a\" and \"b\"") }
                let sum = dx + dy
                let text = sum == sum.rounded() && abs(sum) < 1e15 ? String(Int(sum)) : String(sum)
                result(#"{"content":[{"type":"text","text":"\#(text)"}]}"#)
            case "sleep":
                var ms = 0
                if let a = args, let (v, k) = EnvelopeScanner.member(line, of: a, key: "\"ms\""), k == .number {
                    ms = Int(String(decoding: UnsafeRawBufferPointer(rebasing: line[v.start..<v.end]), as: UTF8.self)) ?? 0
                }
                usleep(UInt32(min(max(ms, 0), 60_000)) * 1000)
                result(#"{"content":[{"type":"text","text":"slept \#(ms)ms"}]}"#)
            default:
                error(JSONRPCErrorCode.invalidParams, "unknown tool \(name)")
            }
        default:
            error(JSONRPCErrorCode.methodNotFound, "Method not found: \(method)")
        }
    }
}

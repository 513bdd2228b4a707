// Server-Sent Events framing for JSON-RPC messages and keep-alive comments.

public enum SSEEncoder {
    public static let messagePrefix: [UInt8] = Array("event: message\ndata: ".utf8)
    public static let eventEnd: [UInt8] = Array("\n\n".utf8)
    public static let keepAlive: [UInt8] = Array(": keepalive\n\n".utf8)

    /// One `message` event around a single-line JSON payload (JSON text never holds a raw newline).
    public static func message(_ json: some Collection<UInt8>) -> [UInt8] {
        var out = messagePrefix
        out.reserveCapacity(messagePrefix.count + json.count + 2)
        out.append(contentsOf: json)
        out.append(contentsOf: eventEnd)
        return out
    }
}

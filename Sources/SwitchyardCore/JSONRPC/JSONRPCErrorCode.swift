// JSON-RPC error codes used by the gateway, and the bytes of the error objects it writes.

public enum JSONRPCErrorCode {
    public static let parseError = -32700
    public static let invalidRequest = -32600
    public static let methodNotFound = -32601
    public static let invalidParams = -32602
    public static let internalError = -32603
    /// Generic transport/server error (the SDKs' "connection closed" code).
    public static let serverError = -32000
    /// Session not found (TS SDK convention for 404 bodies) and request timeouts.
    public static let sessionNotFound = -32001
}

/// Builds JSON text without Foundation.
public enum JSONText {
    /// Appends `s` as a JSON string literal (with quotes) to `out`.
    public static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(c >> 4)], hex[Int(c & 15)]])
            default: out.append(c)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    public static func quoted(_ s: String) -> String {
        var out: [UInt8] = []
        appendString(s, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// A JSON-RPC error response. `id` is the raw id bytes (nil → `null`).
    public static func errorResponse(id: [UInt8]?, code: Int, message: String) -> [UInt8] {
        var out: [UInt8] = Array(#"{"jsonrpc":"2.0","id":"#.utf8)
        if let id { out.append(contentsOf: id) } else { out.append(contentsOf: "null".utf8) }
        out.append(contentsOf: #","error":{"code":"#.utf8)
        out.append(contentsOf: String(code).utf8)
        out.append(contentsOf: #","message":"#.utf8)
        appendString(message, to: &out)
        out.append(contentsOf: "}}".utf8)
        return out
    }

    /// The value of four hex digits at `at` (already validated by the scanner).
    static func hex4(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        var v: UInt32 = 0
        for k in 0..<4 {
            let h = b[at + k]
            v = v << 4 | (h <= 0x39 ? UInt32(h - 0x30) : (h <= 0x46 ? UInt32(h - 0x41 + 10) : UInt32(h - 0x61 + 10)))
        }
        return v
    }

    /// Decodes a JSON string literal span (with quotes) into a Swift String. Handles escapes.
    public static func decodeString(_ b: UnsafeRawBufferPointer, _ span: Span) -> String? {
        guard span.count >= 2, b[span.start] == UInt8(ascii: "\"") else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(span.count)
        var i = span.start + 1
        let end = span.end - 1
        while i < end {
            let c = b[i]
            if c != UInt8(ascii: "\\") {
                out.append(c)
                i += 1
                continue
            }
            i += 1
            guard i < end else { return nil }
            switch b[i] {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                guard end - i >= 5 else { return nil }
                let v = hex4(b, i + 1)
                i += 4
                // Lone surrogates decode to U+FFFD; pairs are joined.
                var scalar = Unicode.Scalar(v)
                if v >= 0xD800 && v < 0xDC00, end - i >= 7, b[i + 1] == 0x5C, b[i + 2] == UInt8(ascii: "u") {
                    let lo = hex4(b, i + 3)
                    if lo >= 0xDC00 && lo < 0xE000 {
                        scalar = Unicode.Scalar(0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00))
                        i += 6
                    }
                }
                out.append(contentsOf: String(Character(scalar ?? "\u{FFFD}")).utf8)
            default: out.append(b[i])
            }
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}

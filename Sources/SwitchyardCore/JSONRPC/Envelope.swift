// The top-level shape of one JSON-RPC message, found in a single pass without decoding the body.

/// What one JSON-RPC message is, with the spans a router needs. Spans index the scanned buffer.
public struct Envelope: Sendable {
    public enum Kind: Equatable, Sendable {
        case request, notification, response
    }
    public var kind: Kind
    /// The `id` value span (request, response). For responses it may be `null`.
    public var id: Span?
    public var idKind: JSONKind?
    /// The `method` value span, including its quotes.
    public var method: Span?
    /// The `params` value span, when present.
    public var params: Span?
}

/// Why a message is not acceptable JSON-RPC; maps to -32700 or -32600.
public enum EnvelopeError: Error, Equatable, Sendable {
    case parse(JSONScanError)
    case notAnObject
    case invalid(String)

    public var code: Int {
        switch self {
        case .parse: return JSONRPCErrorCode.parseError
        case .notAnObject, .invalid: return JSONRPCErrorCode.invalidRequest
        }
    }

    public var message: String {
        switch self {
        case .parse(let e): return "Parse error: invalid JSON at byte \(e.offset)"
        case .notAnObject: return "Invalid Request: expected a JSON-RPC object"
        case .invalid(let why): return "Invalid Request: \(why)"
        }
    }
}

/// Scans JSON-RPC envelopes (top-level `jsonrpc`, `id`, `method`, `params`, `result`, `error`).
public enum EnvelopeScanner {
    /// Validates the whole buffer as JSON and classifies the object at its top level.
    public static func scan(_ bytes: UnsafeRawBufferPointer) throws(EnvelopeError) -> Envelope {
        var s = JSONScanner(bytes)
        s.skipWhitespace()
        guard s.i < s.end else { throw .parse(JSONScanError(code: .unexpectedEnd, offset: s.i)) }
        if bytes[s.i] != UInt8(ascii: "{") {
            do {
                _ = try s.validateDocument()
            } catch {
                throw .parse(error)
            }
            throw .notAnObject
        }
        return try scanObject(bytes, scanner: &s, whole: true)
    }

    /// Classifies the already-validated object at `span` (an element of a batch).
    public static func scanElement(_ bytes: UnsafeRawBufferPointer, span: Span) throws(EnvelopeError) -> Envelope {
        var s = JSONScanner(bytes, span: span)
        guard bytes[span.start] == UInt8(ascii: "{") else { throw .notAnObject }
        return try scanObject(bytes, scanner: &s, whole: false)
    }

    static func scanObject(
        _ bytes: UnsafeRawBufferPointer, scanner s: inout JSONScanner, whole: Bool
    ) throws(EnvelopeError) -> Envelope {
        var jsonrpc: Span?
        var id: Span?
        var idKind: JSONKind?
        var method: Span?
        var methodKind: JSONKind?
        var params: Span?
        var hasResult = false
        var hasError = false
        do throws(JSONScanError) {
            try s.object(depth: 1) { key, value, kind in
                // Keys are compared on their raw bytes; the six names have no escapes worth honouring.
                switch keyName(bytes, key) {
                case .jsonrpc: jsonrpc = kind == .string ? value : Span(-1, -1)
                case .id:
                    id = value
                    idKind = kind
                case .method:
                    method = value
                    methodKind = kind
                case .params: params = value
                case .result: hasResult = true
                case .error: hasError = true
                case .other: break
                }
            }
            if whole {
                s.skipWhitespace()
                if s.i != s.end { throw JSONScanError(code: .trailingBytes, offset: s.i) }
            }
        } catch {
            throw .parse(error)
        }
        guard let v = jsonrpc, v.start >= 0, equals(bytes, v, "\"2.0\"") else {
            throw .invalid("\"jsonrpc\" must be \"2.0\"")
        }
        if let m = method {
            guard methodKind == .string else { throw .invalid("\"method\" must be a string") }
            if hasResult || hasError { throw .invalid("a message cannot have both method and result/error") }
            if let k = idKind {
                guard k == .string || (k == .number && isInteger(bytes, id!)) else {
                    throw .invalid(k == .null ? "request id must not be null" : "id must be a string or an integer")
                }
                return Envelope(kind: .request, id: id, idKind: k, method: m, params: params)
            }
            return Envelope(kind: .notification, id: nil, idKind: nil, method: m, params: params)
        }
        guard hasResult != hasError else { throw .invalid("a response needs exactly one of result and error") }
        guard let k = idKind, k == .string || k == .number || k == .null else {
            throw .invalid("a response needs an id")
        }
        return Envelope(kind: .response, id: id, idKind: k, method: nil, params: params)
    }

    enum Key { case jsonrpc, id, method, params, result, error, other }

    @inline(__always) static func keyName(_ b: UnsafeRawBufferPointer, _ k: Span) -> Key {
        // k includes quotes.
        switch k.count {
        case 4: return equals(b, k, "\"id\"") ? .id : .other
        case 8:
            if equals(b, k, "\"method\"") { return .method }
            if equals(b, k, "\"params\"") { return .params }
            if equals(b, k, "\"result\"") { return .result }
            return .other
        case 7: return equals(b, k, "\"error\"") ? .error : .other
        case 9: return equals(b, k, "\"jsonrpc\"") ? .jsonrpc : .other
        default: return .other
        }
    }

    /// True when the bytes at `span` are exactly `literal`.
    @inline(__always) public static func equals(_ b: UnsafeRawBufferPointer, _ span: Span, _ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard span.count == n else { return false }
        let l = literal.utf8Start
        for k in 0..<n where b[span.start + k] != l[k] { return false }
        return true
    }

    /// True for a JSON number with no fraction or exponent.
    public static func isInteger(_ b: UnsafeRawBufferPointer, _ span: Span) -> Bool {
        for k in span.start..<span.end {
            let c = b[k]
            if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") { return false }
        }
        return true
    }

    /// Parses a non-negative integer id the gateway issued (`123`); nil for anything else.
    public static func parseIssuedID(_ b: UnsafeRawBufferPointer, _ span: Span) -> Int? {
        guard span.count > 0, span.count <= 18 else { return nil }
        var v = 0
        for k in span.start..<span.end {
            let c = b[k]
            guard c >= 0x30 && c <= 0x39 else { return nil }
            v = v * 10 + Int(c - 0x30)
        }
        return v
    }

    /// Finds the member `key` (given with quotes, e.g. `"\"_meta\""`) of the object at `span`.
    public static func member(
        _ b: UnsafeRawBufferPointer, of span: Span, key: StaticString
    ) -> (Span, JSONKind)? {
        guard span.count >= 2, b[span.start] == UInt8(ascii: "{") else { return nil }
        var s = JSONScanner(b, span: span)
        var found: (Span, JSONKind)?
        do throws(JSONScanError) {
            try s.object(depth: 1) { k, v, kind in
                if found == nil && equals(b, k, key) { found = (v, kind) }
            }
        } catch {
            return nil
        }
        return found
    }

    /// `params._meta.progressToken`, when the request carries one.
    public static func progressToken(_ b: UnsafeRawBufferPointer, params: Span?) -> Span? {
        guard let p = params, let (meta, mk) = member(b, of: p, key: "\"_meta\""), mk == .object,
            let (tok, tk) = member(b, of: meta, key: "\"progressToken\""), tk == .string || tk == .number
        else { return nil }
        return tok
    }
}

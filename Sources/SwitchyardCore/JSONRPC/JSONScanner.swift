// A strict, allocation-free JSON validator that reports the byte spans of an object's members.

/// A half-open byte range `[start, end)` into the scanned buffer.
public struct Span: Equatable, Sendable {
    public var start: Int
    public var end: Int
    public init(_ start: Int, _ end: Int) {
        self.start = start
        self.end = end
    }
    public var count: Int { end - start }
}

/// The JSON type of a scanned value.
public enum JSONKind: Equatable, Sendable {
    case object, array, string, number, bool, null
}

/// Why a buffer is not JSON. Carries the byte offset for logs.
public struct JSONScanError: Error, Equatable, Sendable {
    public enum Code: Equatable, Sendable {
        case unexpectedEnd, unexpectedByte, invalidUTF8, invalidEscape, controlCharacter, invalidNumber,
            tooDeep, trailingBytes
    }
    public var code: Code
    public var offset: Int
}

/// Validates RFC 8259 JSON (UTF-8 checked inside strings) over borrowed bytes.
///
/// The scanner never allocates and never builds a tree: it walks the bytes once and hands back the spans
/// of values, so callers can splice or forward the original bytes unchanged.
public struct JSONScanner {
    public static let maxDepth = 64
    @usableFromInline let p: UnsafeRawBufferPointer
    @usableFromInline var i: Int
    let end: Int

    public init(_ bytes: UnsafeRawBufferPointer) {
        self.p = bytes
        self.i = 0
        self.end = bytes.count
    }

    /// Creates a scanner limited to `span` of `bytes` (for looking inside an already-validated value).
    public init(_ bytes: UnsafeRawBufferPointer, span: Span) {
        self.p = bytes
        self.i = span.start
        self.end = span.end
    }

    @inline(__always) mutating func skipWhitespace() {
        while i < end {
            let c = p[i]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { i += 1 } else { return }
        }
    }

    @inline(__always) func fail(_ code: JSONScanError.Code) -> JSONScanError {
        JSONScanError(code: code, offset: i)
    }

    /// Validates one whole document: a single value with optional surrounding whitespace.
    public mutating func validateDocument() throws(JSONScanError) -> (Span, JSONKind) {
        skipWhitespace()
        let r = try value(depth: 0)
        skipWhitespace()
        if i != end { throw fail(.trailingBytes) }
        return r
    }

    /// Scans one value at the cursor and returns its span and kind.
    public mutating func value(depth: Int) throws(JSONScanError) -> (Span, JSONKind) {
        guard i < end else { throw fail(.unexpectedEnd) }
        let start = i
        let c = p[i]
        switch c {
        case UInt8(ascii: "{"):
            try object(depth: depth + 1) { _, _, _ in }
            return (Span(start, i), .object)
        case UInt8(ascii: "["):
            try array(depth: depth + 1)
            return (Span(start, i), .array)
        case UInt8(ascii: "\""):
            try string()
            return (Span(start, i), .string)
        case UInt8(ascii: "t"):
            try literal("true")
            return (Span(start, i), .bool)
        case UInt8(ascii: "f"):
            try literal("false")
            return (Span(start, i), .bool)
        case UInt8(ascii: "n"):
            try literal("null")
            return (Span(start, i), .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try number()
            return (Span(start, i), .number)
        default:
            throw fail(.unexpectedByte)
        }
    }

    mutating func literal(_ word: StaticString) throws(JSONScanError) {
        let n = word.utf8CodeUnitCount
        guard end - i >= n else { throw fail(.unexpectedEnd) }
        let w = word.utf8Start
        for k in 0..<n where p[i + k] != w[k] { throw fail(.unexpectedByte) }
        i += n
    }

    /// Scans an object at the cursor, calling `member` with (key span incl. quotes, value span, kind)
    /// for each member at this level.
    public mutating func object(
        depth: Int, _ member: (Span, Span, JSONKind) -> Void
    ) throws(JSONScanError) {
        if depth > JSONScanner.maxDepth { throw fail(.tooDeep) }
        i += 1  // {
        skipWhitespace()
        if i < end && p[i] == UInt8(ascii: "}") {
            i += 1
            return
        }
        while true {
            skipWhitespace()
            guard i < end else { throw fail(.unexpectedEnd) }
            guard p[i] == UInt8(ascii: "\"") else { throw fail(.unexpectedByte) }
            let ks = i
            try string()
            let key = Span(ks, i)
            skipWhitespace()
            guard i < end else { throw fail(.unexpectedEnd) }
            guard p[i] == UInt8(ascii: ":") else { throw fail(.unexpectedByte) }
            i += 1
            skipWhitespace()
            let (v, kind) = try value(depth: depth)
            member(key, v, kind)
            skipWhitespace()
            guard i < end else { throw fail(.unexpectedEnd) }
            if p[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            if p[i] == UInt8(ascii: "}") {
                i += 1
                return
            }
            throw fail(.unexpectedByte)
        }
    }

    mutating func array(depth: Int) throws(JSONScanError) {
        if depth > JSONScanner.maxDepth { throw fail(.tooDeep) }
        try elements(depth: depth) { _, _ in }
    }

    /// Validates `bytes` as one JSON array and returns the spans of its elements (a batch).
    public static func arrayElements(_ bytes: UnsafeRawBufferPointer) throws(JSONScanError) -> [Span] {
        var v = JSONScanner(bytes)
        _ = try v.validateDocument()
        var s = JSONScanner(bytes)
        s.skipWhitespace()
        var spans: [Span] = []
        try s.elements { span, _ in spans.append(span) }
        return spans
    }

    /// Calls `element` with the span and kind of each element of the array at the cursor.
    public mutating func elements(depth: Int = 1, _ element: (Span, JSONKind) -> Void) throws(JSONScanError) {
        guard i < end, p[i] == UInt8(ascii: "[") else { throw fail(.unexpectedByte) }
        i += 1
        skipWhitespace()
        if i < end && p[i] == UInt8(ascii: "]") {
            i += 1
            return
        }
        while true {
            skipWhitespace()
            let (s, k) = try value(depth: depth)
            element(s, k)
            skipWhitespace()
            guard i < end else { throw fail(.unexpectedEnd) }
            if p[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            if p[i] == UInt8(ascii: "]") {
                i += 1
                return
            }
            throw fail(.unexpectedByte)
        }
    }

    mutating func string() throws(JSONScanError) {
        i += 1  // opening quote
        while i < end {
            let c = p[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                return
            }
            if c == UInt8(ascii: "\\") {
                i += 1
                guard i < end else { throw fail(.unexpectedEnd) }
                switch p[i] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                    UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 1
                case UInt8(ascii: "u"):
                    guard end - i >= 5 else { throw fail(.unexpectedEnd) }
                    for k in 1...4 where !isHex(p[i + k]) { throw fail(.invalidEscape) }
                    i += 5
                default:
                    throw fail(.invalidEscape)
                }
                continue
            }
            if c < 0x20 { throw fail(.controlCharacter) }
            if c < 0x80 {
                i += 1
                continue
            }
            try utf8Sequence(lead: c)
        }
        throw fail(.unexpectedEnd)
    }

    @inline(__always) func isHex(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
    }

    /// Validates one multi-byte UTF-8 sequence (no overlongs, no surrogates, ≤ U+10FFFF).
    mutating func utf8Sequence(lead c: UInt8) throws(JSONScanError) {
        var n = 0
        var lo: UInt8 = 0x80
        var hi: UInt8 = 0xBF
        switch c {
        case 0xC2...0xDF: n = 1
        case 0xE0:
            n = 2
            lo = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: n = 2
        case 0xED:
            n = 2
            hi = 0x9F
        case 0xF0:
            n = 3
            lo = 0x90
        case 0xF1...0xF3: n = 3
        case 0xF4:
            n = 3
            hi = 0x8F
        default: throw fail(.invalidUTF8)
        }
        guard end - i > n else { throw fail(.unexpectedEnd) }
        let b1 = p[i + 1]
        if b1 < lo || b1 > hi { throw fail(.invalidUTF8) }
        for k in stride(from: 2, through: n, by: 1) where p[i + k] & 0xC0 != 0x80 {
            throw fail(.invalidUTF8)
        }
        i += n + 1
    }

    mutating func number() throws(JSONScanError) {
        if p[i] == UInt8(ascii: "-") { i += 1 }
        guard i < end else { throw fail(.unexpectedEnd) }
        if p[i] == UInt8(ascii: "0") {
            i += 1
        } else if p[i] >= 0x31 && p[i] <= 0x39 {
            while i < end && p[i] >= 0x30 && p[i] <= 0x39 { i += 1 }
        } else {
            throw fail(.invalidNumber)
        }
        if i < end && p[i] == UInt8(ascii: ".") {
            i += 1
            let s = i
            while i < end && p[i] >= 0x30 && p[i] <= 0x39 { i += 1 }
            if i == s { throw fail(.invalidNumber) }
        }
        if i < end && (p[i] == UInt8(ascii: "e") || p[i] == UInt8(ascii: "E")) {
            i += 1
            if i < end && (p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-")) { i += 1 }
            let s = i
            while i < end && p[i] >= 0x30 && p[i] <= 0x39 { i += 1 }
            if i == s { throw fail(.invalidNumber) }
        }
    }
}

// HTTP/1.1 request framing, sans IO: where a request head ends, what it says, how its body is framed.
//
// The I/O layer hands us contiguous bytes and keeps them; we return ranges into them, never copies, so
// reading a request allocates nothing here. Everything that could smuggle a second request (two
// Content-Lengths, Content-Length with Transfer-Encoding, obs-fold, space before a colon) is refused,
// and every refusal closes the connection (RFC 9112 §6.3, §11.2).

#if canImport(Glibc)
    internal import Glibc
#endif

/// Why a request cannot be read: the status to answer with; the connection closes after it.
public struct HTTPRefusal: Error, Equatable, Sendable {
    public var status: Int
    public var reason: String
    public init(_ status: Int, _ reason: String) {
        self.status = status
        self.reason = reason
    }
    static let badRequest = HTTPRefusal(400, "Bad Request")
}

/// The request methods we parse; any other token gets 501, as libevent did.
public enum HTTPRequestMethod: UInt8, Sendable {
    case get, post, head, put, delete, options, trace, connect, patch

    public var name: String {
        switch self {
        case .get: "GET"
        case .post: "POST"
        case .head: "HEAD"
        case .put: "PUT"
        case .delete: "DELETE"
        case .options: "OPTIONS"
        case .trace: "TRACE"
        case .connect: "CONNECT"
        case .patch: "PATCH"
        }
    }
}

/// One header line: name and value (trimmed) as ranges of the head bytes.
public struct HTTPField: Equatable, Sendable {
    public var name: Range<Int>
    public var value: Range<Int>
}

public enum HTTPBodyFraming: Equatable, Sendable {
    case none
    case length(Int)
    case chunked
}

/// A parsed request head. Ranges index the bytes that were parsed.
public struct HTTPRequestHead: Sendable {
    public var method: HTTPRequestMethod = .get
    /// The path (origin form, or the path part of an absolute-form target), without query or fragment.
    public var path: Range<Int> = 0..<0
    public var query: Range<Int>?
    /// An absolute-form target without a path (`http://host`): the path is "/" (RFC 9112 §3.2.2).
    public var pathIsEmptyAbsolute = false
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var minorVersion = 1
    public var framing: HTTPBodyFraming = .none
    /// The client wants the connection kept after the answer (HTTP/1.1 default; 1.0 opt-in).
    public var keepAlive = true
    /// `Expect: 100-continue`.
    public var expectsContinue = false
    public init() {}
}

public enum HTTP1 {
    /// The length of the head (up to and including the empty line) if `bytes` holds a whole one.
    /// Lines may end in CRLF or a bare LF (RFC 9112 §2.2).
    public static func headLength(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard let base = bytes.baseAddress, bytes.count >= 2 else { return nil }
        let p = base.assumingMemoryBound(to: UInt8.self)
        var i = 0
        let n = bytes.count
        while i < n {
            guard let hit = memchrIndex(p, from: i, to: n, 0x0A) else { return nil }
            // LF LF, or LF CR LF: the empty line.
            if hit + 1 < n, p[hit + 1] == 0x0A { return hit + 2 }
            if hit + 2 < n, p[hit + 1] == 0x0D, p[hit + 2] == 0x0A { return hit + 3 }
            if hit + 2 >= n { return nil }
            i = hit + 1
        }
        return nil
    }

    /// The number of empty lines (CRLF or LF) before a request line, which a server should ignore
    /// (RFC 9112 §2.2); stray CRLFs after a body are common.
    public static func leadingEmptyLines(_ bytes: UnsafeRawBufferPointer) -> Int {
        var i = 0
        while i < bytes.count {
            if bytes[i] == 0x0A {
                i += 1
            } else if bytes[i] == 0x0D, i + 1 < bytes.count, bytes[i + 1] == 0x0A {
                i += 2
            } else {
                break
            }
        }
        return i
    }

    /// True if the first line (the request line) is complete within `bytes`: tells an overlong target
    /// (414) from overlong headers (431) when no head end was found within the limit.
    public static func hasRequestLine(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return false }
        return memchrIndex(base.assumingMemoryBound(to: UInt8.self), from: 0, to: bytes.count, 0x0A) != nil
    }

    /// Parses a complete head (`headLength` bytes). `fields` is cleared and refilled (its capacity is
    /// reused between requests). Body limits are checked here so that a declared oversize body gets 413
    /// before a byte of it is read.
    public static func parseHead(
        _ bytes: UnsafeRawBufferPointer, fields: inout [HTTPField], maxBody: Int, maxFields: Int = 200
    ) throws(HTTPRefusal) -> HTTPRequestHead {
        fields.removeAll(keepingCapacity: true)
        var head = HTTPRequestHead()
        guard let base = bytes.baseAddress else { throw .badRequest }
        let p = base.assumingMemoryBound(to: UInt8.self)
        let n = bytes.count
        var lineStart = 0
        var lineEnd = lineEndIndex(p, lineStart, n)
        try parseRequestLine(p, lineStart, lineEnd.content, &head)
        lineStart = lineEnd.next
        var contentLength: Int?
        var transferEncoding = false
        var connectionClose = false
        var connectionKeepAlive = false
        while lineStart < n {
            lineEnd = lineEndIndex(p, lineStart, n)
            let end = lineEnd.content
            if end == lineStart { break }  // the empty line
            let first = p[lineStart]
            if first == 0x20 || first == 0x09 { throw HTTPRefusal(400, "Bad Request") }  // obs-fold
            var colon = lineStart
            while colon < end, p[colon] != 0x3A {
                guard isTokenChar(p[colon]) else { throw .badRequest }
                colon += 1
            }
            guard colon < end, colon > lineStart else { throw .badRequest }
            var vs = colon + 1
            var ve = end
            while vs < ve, p[vs] == 0x20 || p[vs] == 0x09 { vs += 1 }
            while ve > vs, p[ve - 1] == 0x20 || p[ve - 1] == 0x09 { ve -= 1 }
            for i in vs..<ve {
                let c = p[i]
                if c < 0x20 && c != 0x09 || c == 0x7F { throw .badRequest }
            }
            guard fields.count < maxFields else { throw HTTPRefusal(431, "Request Header Fields Too Large") }
            let field = HTTPField(name: lineStart..<colon, value: vs..<ve)
            fields.append(field)
            if nameIs(p, field.name, "content-length") {
                guard contentLength == nil else { throw .badRequest }
                contentLength = try parseLength(p, field.value)
            } else if nameIs(p, field.name, "transfer-encoding") {
                guard !transferEncoding else { throw .badRequest }
                transferEncoding = true
                guard valueIs(p, field.value, "chunked") else { throw HTTPRefusal(501, "Not Implemented") }
            } else if nameIs(p, field.name, "connection") {
                if containsToken(p, field.value, "close") { connectionClose = true }
                if containsToken(p, field.value, "keep-alive") { connectionKeepAlive = true }
            } else if nameIs(p, field.name, "expect") {
                guard valueIs(p, field.value, "100-continue") else { throw HTTPRefusal(417, "Expectation Failed") }
                head.expectsContinue = head.minorVersion >= 1
            }
            lineStart = lineEnd.next
        }
        if transferEncoding {
            // Both framings at once is the classic smuggling vector: refuse rather than pick one.
            guard contentLength == nil else { throw .badRequest }
            guard head.minorVersion >= 1 else { throw .badRequest }
            head.framing = .chunked
        } else if let len = contentLength {
            guard len <= maxBody else { throw HTTPRefusal(413, "Payload Too Large") }
            head.framing = len > 0 ? .length(len) : .none
        }
        head.keepAlive = head.minorVersion >= 1 ? !connectionClose : (connectionKeepAlive && !connectionClose)
        return head
    }

    // MARK: request line

    static func parseRequestLine(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ head: inout HTTPRequestHead)
        throws(HTTPRefusal)
    {
        var i = start
        while i < end, p[i] != 0x20 {
            guard isTokenChar(p[i]) else { throw .badRequest }
            i += 1
        }
        guard i < end, i > start else { throw .badRequest }
        guard let method = methodCode(p, start, i) else { throw HTTPRefusal(501, "Not Implemented") }
        head.method = method
        let targetStart = i + 1
        var j = targetStart
        while j < end, p[j] != 0x20 { j += 1 }
        guard j < end, j > targetStart else { throw .badRequest }
        try parseTarget(p, targetStart, j, &head)
        // "HTTP/1.1" exactly: the version is case-sensitive (RFC 9112 §2.3).
        let v = j + 1
        guard end - v == 8, p[v] == 0x48, p[v + 1] == 0x54, p[v + 2] == 0x54, p[v + 3] == 0x50, p[v + 4] == 0x2F,
            isDigit(p[v + 5]), p[v + 6] == 0x2E, isDigit(p[v + 7])
        else { throw .badRequest }
        guard p[v + 5] == 0x31 else { throw HTTPRefusal(505, "HTTP Version Not Supported") }
        head.minorVersion = p[v + 7] == 0x30 ? 0 : 1
    }

    /// Origin form (`/path?query`), absolute form (`http://host[:port]/path`) or, as libevent allowed, a
    /// bare relative path (routed to 404). Any byte but SP is kept: routing decides what a path means.
    static func parseTarget(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ head: inout HTTPRequestHead)
        throws(HTTPRefusal)
    {
        var s = start
        if p[s] != 0x2F, let afterScheme = schemeEnd(p, s, end) {
            // authority: [userinfo@]host[:port], up to the first '/', '?' or '#'
            var a = afterScheme
            while a < end, p[a] != 0x2F, p[a] != 0x3F, p[a] != 0x23 { a += 1 }
            try checkAuthority(p, afterScheme, a)
            s = a
        }
        var e = s
        while e < end, p[e] != 0x3F, p[e] != 0x23 { e += 1 }
        head.path = s..<e
        head.pathIsEmptyAbsolute = s == e && s != start
        if e < end, p[e] == 0x3F {
            var q = e + 1
            while q < end, p[q] != 0x23 { q += 1 }
            head.query = (e + 1)..<q
        }
    }

    static func schemeEnd(_ p: UnsafePointer<UInt8>, _ s: Int, _ end: Int) -> Int? {
        var i = s
        while i < end, isAlpha(p[i]) || isDigit(p[i]) || p[i] == 0x2B || p[i] == 0x2D || p[i] == 0x2E { i += 1 }
        guard i > s, isAlpha(p[s]), i + 2 < end, p[i] == 0x3A, p[i + 1] == 0x2F, p[i + 2] == 0x2F else { return nil }
        return i + 3
    }

    static func checkAuthority(_ p: UnsafePointer<UInt8>, _ s: Int, _ e: Int) throws(HTTPRefusal) {
        var hostStart = s
        for i in s..<e where p[i] == 0x40 { hostStart = i + 1 }  // after the last '@'
        guard hostStart < e else { throw .badRequest }
        if p[hostStart] == 0x5B {  // [v6]
            var i = hostStart
            while i < e, p[i] != 0x5D { i += 1 }
            guard i < e else { throw .badRequest }
            hostStart = i
        }
        var colon = -1
        for i in hostStart..<e where p[i] == 0x3A { colon = i }
        guard colon >= 0 else { return }
        var port = 0
        for i in (colon + 1)..<e {
            guard isDigit(p[i]) else { throw .badRequest }
            port = port * 10 + Int(p[i] - 0x30)
            guard port <= 65535 else { throw .badRequest }
        }
    }

    static func methodCode(_ p: UnsafePointer<UInt8>, _ s: Int, _ e: Int) -> HTTPRequestMethod? {
        func eq(_ lit: StaticString) -> Bool {
            guard e - s == lit.utf8CodeUnitCount else { return false }
            return memcmp(p + s, lit.utf8Start, e - s) == 0
        }
        switch e - s {
        case 3: return eq("GET") ? .get : eq("PUT") ? .put : nil
        case 4: return eq("POST") ? .post : eq("HEAD") ? .head : nil
        case 5: return eq("PATCH") ? .patch : eq("TRACE") ? .trace : nil
        case 6: return eq("DELETE") ? .delete : nil
        case 7: return eq("OPTIONS") ? .options : eq("CONNECT") ? .connect : nil
        default: return nil
        }
    }

    // MARK: helpers

    static func lineEndIndex(_ p: UnsafePointer<UInt8>, _ start: Int, _ n: Int) -> (content: Int, next: Int) {
        guard let lf = memchrIndex(p, from: start, to: n, 0x0A) else { return (n, n) }
        let content = lf > start && p[lf - 1] == 0x0D ? lf - 1 : lf
        return (content, lf + 1)
    }

    @inline(__always) static func memchrIndex(_ p: UnsafePointer<UInt8>, from: Int, to: Int, _ byte: UInt8) -> Int? {
        guard from < to, let hit = memchr(p + from, Int32(byte), to - from) else { return nil }
        return UnsafeRawPointer(hit) - UnsafeRawPointer(p)
    }

    static func parseLength(_ p: UnsafePointer<UInt8>, _ r: Range<Int>) throws(HTTPRefusal) -> Int {
        guard !r.isEmpty, r.count <= 18 else { throw .badRequest }
        var v = 0
        for i in r {
            guard isDigit(p[i]) else { throw .badRequest }
            v = v * 10 + Int(p[i] - 0x30)
        }
        return v
    }

    @inline(__always) static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    @inline(__always) static func isAlpha(_ c: UInt8) -> Bool { (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7A }
    @inline(__always) static func lower(_ c: UInt8) -> UInt8 { c >= 0x41 && c <= 0x5A ? c | 0x20 : c }

    /// tchar (RFC 9110 §5.6.2).
    static func isTokenChar(_ c: UInt8) -> Bool {
        if isAlpha(c) || isDigit(c) { return true }
        switch c {
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: return true
        default: return false
        }
    }

    /// Case-insensitive comparison of a range with a lowercase literal.
    public static func nameIs(_ p: UnsafePointer<UInt8>, _ r: Range<Int>, _ lowercase: StaticString) -> Bool {
        equalsIgnoringCase(p, r, UnsafeRawBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount))
    }

    /// `p[r]` equals `name`, ASCII case-insensitively (header names: RFC 9110 §5.1).
    public static func equalsIgnoringCase(_ p: UnsafePointer<UInt8>, _ r: Range<Int>, _ name: UnsafeRawBufferPointer) -> Bool {
        guard r.count == name.count else { return false }
        var i = 0
        for k in r {
            if lower(p[k]) != lower(name[i]) { return false }
            i += 1
        }
        return true
    }

    static func valueIs(_ p: UnsafePointer<UInt8>, _ r: Range<Int>, _ lowercase: StaticString) -> Bool {
        nameIs(p, r, lowercase)
    }

    /// A comma-separated list contains `token` (case-insensitive).
    static func containsToken(_ p: UnsafePointer<UInt8>, _ r: Range<Int>, _ token: StaticString) -> Bool {
        var s = r.lowerBound
        while s < r.upperBound {
            var e = s
            while e < r.upperBound, p[e] != 0x2C { e += 1 }
            var a = s
            var b = e
            while a < b, p[a] == 0x20 || p[a] == 0x09 { a += 1 }
            while b > a, p[b - 1] == 0x20 || p[b - 1] == 0x09 { b -= 1 }
            if nameIs(p, a..<b, token) { return true }
            s = e + 1
        }
        return false
    }
}

/// Decodes a chunked request body incrementally (RFC 9112 §7.1). Trailers are read and dropped.
public struct ChunkedDecoder: Sendable {
    enum State: Sendable {
        case size, sizeExtension, sizeLF, data, dataCR, dataLF, trailerLineStart, trailerLine, trailerLF, done
    }
    var state = State.size
    var remaining = 0
    var sizeDigits = 0
    var sawDigit = false
    var lastChunk = false
    /// Body bytes announced by the chunk-size lines read so far (counted before the data arrives, so an
    /// oversized chunk gets 413 before any of it is read); the body length once `isDone`.
    public private(set) var total = 0
    public var isDone: Bool { state == .done }

    public init() {}

    /// Consumes as much of `input` as it can and calls `emit` with the body byte ranges of `input`.
    /// Returns the number of bytes consumed (all of them unless the body ended within `input`).
    public mutating func decode(_ input: UnsafeRawBufferPointer, maxBody: Int, emit: (Range<Int>) -> Void)
        throws(HTTPRefusal) -> Int
    {
        guard let base = input.baseAddress else { return 0 }
        let p = base.assumingMemoryBound(to: UInt8.self)
        let n = input.count
        var i = 0
        while i < n, state != .done {
            let c = p[i]
            switch state {
            case .size:
                if let d = hexValue(c) {
                    sizeDigits += 1
                    guard sizeDigits <= 15 else { throw HTTPRefusal(413, "Payload Too Large") }
                    remaining = remaining << 4 | d
                    sawDigit = true
                } else if sawDigit && (c == 0x3B || c == 0x20 || c == 0x09) {
                    state = .sizeExtension
                } else if sawDigit && c == 0x0D {
                    state = .sizeLF
                } else if sawDigit && c == 0x0A {
                    try endSizeLine(maxBody)
                } else {
                    throw .badRequest
                }
                i += 1
            case .sizeExtension:
                if c == 0x0D {
                    state = .sizeLF
                } else if c == 0x0A {
                    try endSizeLine(maxBody)
                } else if c < 0x20 && c != 0x09 {
                    throw .badRequest
                }
                i += 1
            case .sizeLF:
                guard c == 0x0A else { throw .badRequest }
                try endSizeLine(maxBody)
                i += 1
            case .data:
                let take = min(remaining, n - i)
                emit(i..<(i + take))
                remaining -= take
                i += take
                if remaining == 0 { state = .dataCR }
            case .dataCR:
                if c == 0x0D {
                    state = .dataLF
                } else if c == 0x0A {
                    state = .size
                    resetSize()
                } else {
                    throw .badRequest
                }
                i += 1
            case .dataLF:
                guard c == 0x0A else { throw .badRequest }
                state = .size
                resetSize()
                i += 1
            case .trailerLineStart:
                if c == 0x0D {
                    state = .trailerLF
                } else if c == 0x0A {
                    state = .done
                } else {
                    state = .trailerLine
                }
                i += 1
            case .trailerLine:
                if c == 0x0A { state = .trailerLineStart }
                i += 1
            case .trailerLF:
                guard c == 0x0A else { throw .badRequest }
                state = .done
                i += 1
            case .done:
                break
            }
        }
        return i
    }

    mutating func endSizeLine(_ maxBody: Int) throws(HTTPRefusal) {
        if remaining == 0 {
            state = .trailerLineStart
            return
        }
        total += remaining
        guard total <= maxBody else { throw HTTPRefusal(413, "Payload Too Large") }
        state = .data
    }

    mutating func resetSize() {
        remaining = 0
        sizeDigits = 0
        sawDigit = false
    }

    func hexValue(_ c: UInt8) -> Int? {
        switch c {
        case 0x30...0x39: Int(c - 0x30)
        case 0x41...0x46: Int(c - 0x41 + 10)
        case 0x61...0x66: Int(c - 0x61 + 10)
        default: nil
        }
    }
}

// HTTP-level rules of Streamable HTTP: media types, Accept, protocol versions, Origin.

public enum ProtocolVersion {
    /// Every version the HTTP layer accepts in `MCP-Protocol-Version` (H-24).
    public static let supported: [String] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"]
    /// Assumed when a client sends no header (H-22).
    public static let assumed = "2025-03-26"
    /// The only version in which batches (JSON arrays) are allowed (B-05).
    public static let batching = "2025-03-26"

    public static func isSupported(_ v: String) -> Bool { supported.contains(v) }
}

public enum MediaType {
    /// True when a Content-Type names `application/json` (any parameters, any case). Missing is accepted.
    public static func isJSON(contentType: String?) -> Bool {
        guard let ct = contentType else { return true }
        if ct == "application/json" { return true }  // the common case, without allocating
        let base = ct.split(separator: ";", maxSplits: 1).first.map { $0.trimmingSpaces().lowercased() } ?? ""
        return base == "application/json"
    }
}

/// Which answer forms a client's `Accept` allows (lenient, H-03).
public struct AcceptSet: Equatable, Sendable {
    public var json: Bool
    public var sse: Bool

    public init(json: Bool, sse: Bool) {
        self.json = json
        self.sse = sse
    }

    public init(header: String?) {
        guard let h = header, !h.allSatisfy({ $0 == " " }) else {
            self.init(json: true, sse: true)
            return
        }
        // What the SDKs send, decided without splitting.
        if h == "application/json, text/event-stream" || h == "*/*" || h == "text/event-stream, application/json" {
            self.init(json: true, sse: true)
            return
        }
        var json = false
        var sse = false
        for part in h.split(separator: ",") {
            let t = part.split(separator: ";", maxSplits: 1).first.map { $0.trimmingSpaces().lowercased() } ?? ""
            switch t {
            case "*/*":
                json = true
                sse = true
            case "application/json", "application/*": json = true
            case "text/event-stream", "text/*": sse = true
            default: break
            }
        }
        self.init(json: json, sse: sse)
    }

    public var allowsAny: Bool { json || sse }
}

/// The Origin policy (H-30): absent passes; loopback origins pass; others must be listed.
public struct OriginPolicy: Sendable {
    public var allowed: [String]

    public init(allowed: [String]) { self.allowed = allowed.map { $0.lowercased() } }

    public func permits(_ origin: String?) -> Bool {
        guard let o = origin?.lowercased() else { return true }
        if allowed.contains(o) || allowed.contains("*") { return true }
        for scheme in ["http://", "https://"] where o.hasPrefix(scheme) {
            var host = o.dropFirst(scheme.count)
            if host.hasPrefix("[::1]") {
                host = host.dropFirst(5)
            } else if host.hasPrefix("localhost") {
                host = host.dropFirst(9)
            } else if host.hasPrefix("127.0.0.1") {
                host = host.dropFirst(9)
            } else {
                continue
            }
            if host.isEmpty { return true }
            if host.first == ":", host.dropFirst().allSatisfy({ $0.isASCII && $0.isNumber }), host.count > 1 { return true }
        }
        return false
    }
}

/// How a request's answer is delivered.
public enum ReplyMode: Equatable, Sendable {
    case json, sse
}

public enum ReplyPolicy {
    /// Methods whose answers may be preceded by progress or server requests (H-07): answered as SSE.
    static let streamingMethods: Set<String> = ["tools/call", "prompts/get", "resources/read", "completion/complete"]

    public static func mode(method: String, hasProgressToken: Bool, accept: AcceptSet) -> ReplyMode {
        if !accept.json { return .sse }
        if !accept.sse { return .json }
        return hasProgressToken || streamingMethods.contains(method) ? .sse : .json
    }

    /// The same decision on the raw method span (with quotes), without building a String.
    public static func mode(_ b: UnsafeRawBufferPointer, method: Span, hasProgressToken: Bool, accept: AcceptSet) -> ReplyMode {
        if !accept.json { return .sse }
        if !accept.sse { return .json }
        if hasProgressToken { return .sse }
        let streaming =
            EnvelopeScanner.equals(b, method, "\"tools/call\"") || EnvelopeScanner.equals(b, method, "\"prompts/get\"")
            || EnvelopeScanner.equals(b, method, "\"resources/read\"") || EnvelopeScanner.equals(b, method, "\"completion/complete\"")
        return streaming ? .sse : .json
    }
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}

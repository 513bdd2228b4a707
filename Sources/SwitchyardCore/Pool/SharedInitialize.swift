// A shared child's InitializeResult, cached once and answered to every client locally (P-01, P-03, P-04).

public struct SharedInitialize: Sendable {
    /// The result object with `protocolVersion`'s value cut out: `head` + "<version>" + `tail`.
    public let head: [UInt8]
    public let tail: [UInt8]
    /// The version the child negotiated with the gateway.
    public let childVersion: String
    /// Capabilities the child declared (for list_changed broadcasts after a restart).
    public let listChanged: [String]
    public let supportsSubscribe: Bool

    /// Builds the template from the child's InitializeResult object (the `result` span of its response).
    /// `tasks` is removed from the capabilities: task ownership is not tracked per session (P-03).
    public init?(_ b: UnsafeRawBufferPointer, result: Span) {
        guard let (pv, pk) = EnvelopeScanner.member(b, of: result, key: "\"protocolVersion\""), pk == .string,
            let version = JSONText.decodeString(b, pv)
        else { return nil }
        childVersion = version
        var cut: [Span] = []
        var changed: [String] = []
        var subscribe = false
        if let (caps, ck) = EnvelopeScanner.member(b, of: result, key: "\"capabilities\""), ck == .object {
            if let m = JSONEdit.memberWithSeparator(b, of: caps, key: "\"tasks\"") { cut.append(m) }
            for (name, key) in [("tools", "\"tools\"" as StaticString), ("prompts", "\"prompts\""), ("resources", "\"resources\"")] {
                guard let (obj, k) = JSONEdit.member(b, of: caps, key: key), k == .object else { continue }
                if let (lc, _) = EnvelopeScanner.member(b, of: obj, key: "\"listChanged\""), EnvelopeScanner.equals(b, lc, "true") {
                    changed.append(name)
                }
                if name == "resources", let (s, _) = EnvelopeScanner.member(b, of: obj, key: "\"subscribe\""),
                    EnvelopeScanner.equals(b, s, "true")
                {
                    subscribe = true
                }
            }
        }
        listChanged = changed
        supportsSubscribe = subscribe
        // Bytes of the result without the cut spans, split around the protocolVersion value.
        var h: [UInt8] = []
        var t: [UInt8] = []
        var pos = result.start
        let cuts = cut.sorted { $0.start < $1.start }
        func copy(_ from: Int, _ to: Int, into out: inout [UInt8]) {
            var k = from
            for c in cuts where c.end > k && c.start < to {
                if c.start > k { out.append(contentsOf: b[k..<c.start]) }
                k = max(k, c.end)
            }
            if k < to { out.append(contentsOf: b[k..<to]) }
        }
        copy(pos, pv.start, into: &h)
        pos = pv.end
        copy(pos, result.end, into: &t)
        head = h
        tail = t
    }

    /// The version answered to a client (P-04): its own if the gateway speaks it and it is not newer than
    /// the child's; otherwise the child's.
    public func negotiate(client: String?) -> String {
        if let c = client, ProtocolVersion.isSupported(c), c <= childVersion { return c }
        return childVersion
    }

    /// A complete JSON-RPC response to a client's `initialize`.
    public func response(id: [UInt8], version: String) -> [UInt8] {
        var out: [UInt8] = Array(#"{"jsonrpc":"2.0","id":"#.utf8)
        out.reserveCapacity(head.count + tail.count + 64)
        out.append(contentsOf: id)
        out.append(contentsOf: #","result":"#.utf8)
        out.append(contentsOf: head)
        JSONText.appendString(version, to: &out)
        out.append(contentsOf: tail)
        out.append(UInt8(ascii: "}"))
        return out
    }
}

/// Small structural edits on validated JSON, by span.
public enum JSONEdit {
    public static func member(_ b: UnsafeRawBufferPointer, of span: Span, key: StaticString) -> (Span, JSONKind)? {
        EnvelopeScanner.member(b, of: span, key: key)
    }

    /// The span covering member `key` of the object at `span` together with one adjacent comma, so that
    /// cutting it leaves valid JSON.
    public static func memberWithSeparator(_ b: UnsafeRawBufferPointer, of span: Span, key: StaticString) -> Span? {
        var members: [(Span, Span)] = []
        var s = JSONScanner(b, span: span)
        do throws(JSONScanError) {
            try s.object(depth: 1) { k, v, _ in members.append((k, v)) }
        } catch {
            return nil
        }
        guard let idx = members.firstIndex(where: { EnvelopeScanner.equals(b, $0.0, key) }) else { return nil }
        let (k, v) = members[idx]
        if idx + 1 < members.count { return Span(k.start, members[idx + 1].0.start) }  // up to the next key
        if idx > 0 { return Span(members[idx - 1].1.end, v.end) }  // from the previous value's end
        return Span(k.start, v.end)
    }

    /// Replaces several non-overlapping spans at once, emitting pieces to `sink` in order.
    public static func splice(
        _ b: UnsafeRawBufferPointer, _ edits: [(Span, UnsafeRawBufferPointer)], to sink: (UnsafeRawBufferPointer) -> Void
    ) {
        var pos = 0
        for (span, replacement) in edits.sorted(by: { $0.0.start < $1.0.start }) {
            sink(UnsafeRawBufferPointer(rebasing: b[pos..<span.start]))
            sink(replacement)
            pos = span.end
        }
        sink(UnsafeRawBufferPointer(rebasing: b[pos..<b.count]))
    }
}

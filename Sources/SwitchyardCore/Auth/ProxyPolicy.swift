// Trusted proxies: X-Forwarded-For/-Host/-Proto count only from peers inside configured CIDRs.

/// An IPv4 or IPv6 network (`10.0.0.0/8`, `::1/128`, or a bare address).
public struct CIDR: Equatable, Sendable {
    let bytes: [UInt8]
    let prefix: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let first = parts.first, let addr = CIDR.parseIP(String(first)) else { return nil }
        let maxBits = addr.count * 8
        if parts.count == 2 {
            guard let p = Int(parts[1]), (0...maxBits).contains(p) else { return nil }
            prefix = p
        } else {
            prefix = maxBits
        }
        bytes = addr
    }

    public func contains(_ ip: String) -> Bool {
        guard var addr = CIDR.parseIP(ip) else { return false }
        // An IPv4-mapped IPv6 peer (::ffff:a.b.c.d) matches IPv4 networks.
        if addr.count == 16 && bytes.count == 4 && addr[0..<10].allSatisfy({ $0 == 0 }) && addr[10] == 0xFF && addr[11] == 0xFF {
            addr = Array(addr[12...])
        }
        guard addr.count == bytes.count else { return false }
        var bits = prefix
        for i in 0..<bytes.count where bits > 0 {
            let mask: UInt8 = bits >= 8 ? 0xFF : UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if addr[i] & mask != bytes[i] & mask { return false }
            bits -= 8
        }
        return true
    }

    /// Parses dotted IPv4 or RFC 4291 IPv6 text (with `::`, optional embedded IPv4, optional brackets).
    static func parseIP(_ s: String) -> [UInt8]? {
        var t = Substring(s)
        if t.hasPrefix("[") && t.hasSuffix("]") { t = t.dropFirst().dropLast() }
        if !t.contains(":") { return parseV4(t) }
        let halves = t.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: Substring) -> [UInt8]? {
            if part.isEmpty { return [] }
            var out: [UInt8] = []
            let items = part.split(separator: ":", omittingEmptySubsequences: false)
            for (k, g) in items.enumerated() {
                if k == items.count - 1 && g.contains(".") {
                    guard let v4 = parseV4(g) else { return nil }
                    out += v4
                    continue
                }
                guard !g.isEmpty, g.count <= 4, let v = UInt16(g, radix: 16) else { return nil }
                out += [UInt8(v >> 8), UInt8(v & 0xFF)]
            }
            return out
        }
        guard let head = groups(Substring(halves[0])) else { return nil }
        if halves.count == 1 { return head.count == 16 ? head : nil }
        guard let tail = groups(Substring(halves[1])), head.count + tail.count <= 14 else { return nil }
        return head + [UInt8](repeating: 0, count: 16 - head.count - tail.count) + tail
    }

    static func parseV4(_ s: Substring) -> [UInt8]? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard !p.isEmpty, p.count <= 3, let v = UInt8(p) else { return nil }
            out.append(v)
        }
        return out
    }
}

extension Substring {
    func components(separatedBy sep: String) -> [String] {
        var out: [String] = []
        var rest = self
        while let r = rest.range(of: sep) {
            out.append(String(rest[..<r.lowerBound]))
            rest = rest[r.upperBound...]
        }
        out.append(String(rest))
        return out
    }

    func range(of needle: String) -> Range<Substring.Index>? {
        let n = Array(needle)
        guard !n.isEmpty else { return nil }
        var i = startIndex
        while i < endIndex {
            var j = i
            var k = 0
            while k < n.count && j < endIndex && self[j] == n[k] {
                j = index(after: j)
                k += 1
            }
            if k == n.count { return i..<j }
            i = index(after: i)
        }
        return nil
    }
}

/// Who the client is and which origin it reached, after honouring trusted proxies.
public struct ClientView: Equatable, Sendable {
    public var address: String
    public var scheme: String
    public var host: String?
    /// The peer is a trusted proxy (its forwarded headers were applied).
    public var viaTrustedProxy = false

    /// `peer` is the TCP peer address (no port). Forwarded headers count only if the peer is trusted.
    public static func resolve(
        peer: String, secure: Bool, host: String?, forwardedFor: String?, forwardedHost: String?, forwardedProto: String?,
        trusted: [CIDR]
    ) -> ClientView {
        var view = ClientView(address: peer, scheme: secure ? "https" : "http", host: host)
        guard trusted.contains(where: { $0.contains(peer) }) else { return view }
        view.viaTrustedProxy = true
        if let f = forwardedFor?.split(separator: ",").first.map({ String($0).trimmingCharacters() }), !f.isEmpty { view.address = f }
        if let h = forwardedHost?.split(separator: ",").first.map({ String($0).trimmingCharacters() }), !h.isEmpty { view.host = h }
        if let p = forwardedProto?.split(separator: ",").first.map({ String($0).trimmingCharacters().lowercased() }),
            p == "https" || p == "http"
        {
            view.scheme = p
        }
        return view
    }

    /// The origin a browser on this very gateway would send (`https://gw.example.com`). Only meaningful
    /// behind a trusted proxy: a directly reached gateway cannot trust Host (DNS rebinding).
    public var origin: String? { host.map { "\(scheme)://\($0)".lowercased() } }
}

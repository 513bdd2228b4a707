// Shared-secret keys: constant-time matching of a presented secret's SHA-256 against the configured ones.

/// One accepted key, by label. `digest` is the SHA-256 of the secret (32 bytes).
public struct Key: Equatable, Sendable {
    public var label: String
    public var digest: [UInt8]
    public var servers: [String]?
    public var limits: KeyLimits
    public init(label: String, digest: [UInt8], servers: [String]?, limits: KeyLimits = KeyLimits()) {
        self.label = label
        self.digest = digest
        self.servers = servers
        self.limits = limits
    }

    public func allows(server: String) -> Bool { servers.map { $0.contains(server) } ?? true }
}

public struct KeyRing: Sendable {
    public let keys: [Key]
    public init(keys: [Key]) { self.keys = keys }

    /// The key whose digest equals `digest`. Every key is compared in full, so timing reveals nothing
    /// about which key, or how much of one, matched.
    public func match(digest: [UInt8]) -> Key? {
        var found: Key?
        for k in keys {
            var diff: UInt8 = k.digest.count == digest.count ? 0 : 1
            for i in 0..<min(k.digest.count, digest.count) { diff |= k.digest[i] ^ digest[i] }
            if diff == 0 && found == nil { found = k }
        }
        return found
    }

    /// Decodes 64 hex digits.
    public static func digest(hex: String) -> [UInt8]? {
        let u = Array(hex.utf8)
        guard u.count == 64 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(32)
        func v(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x61...0x66: return c - 0x61 + 10
            case 0x41...0x46: return c - 0x41 + 10
            default: return nil
            }
        }
        var i = 0
        while i < 64 {
            guard let h = v(u[i]), let l = v(u[i + 1]) else { return nil }
            out.append(h << 4 | l)
            i += 2
        }
        return out
    }
}

/// What the auth check decided for one request.
public enum AuthDecision: Error, Equatable, Sendable {
    case allow(Key)
    /// 401: no key, a wrong key, a malformed header.
    case unauthorized(String)
    /// 400: more than one auth header, or a secret in the URL.
    case badRequest(String)
}

public enum AuthPolicy {
    static let secretQueryKeys: Set<String> = ["key", "api_key", "apikey", "token", "access_token", "auth", "secret"]

    /// Extracts the presented secret from the header values (`Bearer <key>` for Authorization).
    public static func presentedSecret(header: String, values: [String], query: String?) -> Result<[UInt8], AuthDecision> {
        if let q = query {
            for pair in q.split(separator: "&") {
                let name = pair.split(separator: "=", maxSplits: 1).first.map { String($0).lowercased() } ?? ""
                if secretQueryKeys.contains(name) {
                    return .failure(.badRequest("Bad Request: secrets must not be sent in the URL; use the \(header) header"))
                }
            }
        }
        guard !values.isEmpty else { return .failure(.unauthorized("Unauthorized: missing \(header) header")) }
        guard values.count == 1 else { return .failure(.badRequest("Bad Request: more than one \(header) header")) }
        var v = Substring(values[0])
        if header.lowercased() == "authorization" {
            guard v.count > 7, v.prefix(7).lowercased() == "bearer " else {
                return .failure(.unauthorized("Unauthorized: expected \"Authorization: Bearer <key>\""))
            }
            v = v.dropFirst(7)
        }
        while v.first == " " { v = v.dropFirst() }
        while v.last == " " { v = v.dropLast() }
        guard !v.isEmpty else { return .failure(.unauthorized("Unauthorized: empty key")) }
        return .success(Array(v.utf8))
    }
}

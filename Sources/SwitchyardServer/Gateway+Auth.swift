// Shared-secret keys: resolved at start-up, checked on every request of every transport (A-04, A-09).

package import SwitchyardCore
internal import SwitchyardIO
internal import Foundation
#if canImport(Glibc)
    internal import Glibc
#endif

extension Gateway {
    /// Builds the key ring: hashes from the config, secrets from the environment or files (hashed here,
    /// never logged), and the keys file. Errors are config errors (exit 78).
    package static func keyRing(for config: GatewayConfig) throws(ConfigError) -> KeyRing? {
        guard config.auth.isEnabled else { return nil }
        var keys: [Key] = []
        var specs = config.auth.keys
        if let file = config.auth.keysFile {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ConfigError("auth.keys_file", "cannot read \(file)")
            }
            specs += try ConfigLoader.parseKeysFile(text, path: file)
        }
        for (i, spec) in specs.enumerated() {
            let digest: [UInt8]
            switch spec.secret {
            case .sha256(let hex):
                guard let d = KeyRing.digest(hex: hex) else { throw ConfigError("auth.keys[\(i)].sha256", "expected 64 hex digits") }
                digest = d
            case .env(let name):
                guard let v = ProcessInfo.processInfo.environment[name], !v.isEmpty else {
                    throw ConfigError("auth.keys[\(i)].secret_env", "environment variable \(name) is not set")
                }
                digest = Digest.sha256(Array(v.utf8))
            case .file(let path):
                guard let text = try? String(contentsOfFile: path, encoding: .utf8),
                    let line = text.split(separator: "\n", omittingEmptySubsequences: true).first
                else { throw ConfigError("auth.keys[\(i)].secret_file", "cannot read a secret from \(path)") }
                digest = Digest.sha256(Array(line.utf8))
            }
            keys.append(Key(label: spec.label, digest: digest, servers: spec.servers, limits: spec.limits))
        }
        if keys.isEmpty { throw ConfigError("auth", "no keys configured") }
        return KeyRing(keys: keys)
    }

    /// Checks the request's key. Sends 400/401/403 and returns false when it may not proceed.
    func authorize(_ ex: HTTPExchange, server: String) -> Bool {
        requestKey = nil
        guard let ring = keys else { return true }
        let header = config.auth.header
        switch AuthPolicy.presentedSecret(header: header, values: ex.headerValues(header), query: ex.query) {
        case .failure(let decision):
            switch decision {
            case .badRequest(let m): respondError(ex, 400, "Bad Request", JSONRPCErrorCode.serverError, m)
            case .unauthorized(let m): unauthorized(ex, m)
            case .allow: unauthorized(ex, "Unauthorized")
            }
            return false
        case .success(let secret):
            guard let key = ring.match(digest: Digest.sha256(secret)) else {
                log.info("auth_failed", [("peer", ex.peer), ("reason", "unknown key")])
                unauthorized(ex, "Unauthorized: invalid key")
                return false
            }
            guard key.allows(server: server) else {
                log.info("auth_forbidden", [("key", key.label), ("server", server), ("peer", ex.peer)])
                respondError(
                    ex, 403, "Forbidden", JSONRPCErrorCode.serverError, "Forbidden: key \"\(key.label)\" may not use server \"\(server)\"")
                return false
            }
            // Token bucket per key (429 + Retry-After).
            if key.limits.rate > 0 {
                var bucket =
                    keyBuckets[key.label] ?? TokenBucket(ratePerSecond: key.limits.rate, burst: key.limits.burst, nowMs: loop.nowMillis)
                let wait = bucket.take(nowMs: loop.nowMillis)
                keyBuckets[key.label] = bucket
                if let wait {
                    let seconds = max(1, (wait + 999) / 1000)
                    log.debug("rate_limited", [("key", key.label)])
                    respondError(
                        ex, 429, "Too Many Requests", JSONRPCErrorCode.serverError,
                        "Too Many Requests: key \"\(key.label)\" is limited to \(key.limits.rate) requests/s",
                        extra: [("Retry-After", String(seconds))])
                    return false
                }
            }
            requestKey = key
            return true
        }
    }

    /// True (and a 429 sent) when the request's key already has `max_sessions` sessions.
    func keySessionLimitReached(_ ex: HTTPExchange) -> Bool {
        guard let key = requestKey, key.limits.maxSessions > 0 else { return false }
        let open = sessions.values.reduce(0) { $0 + ($1.keyLabel == key.label ? 1 : 0) }
        guard open >= key.limits.maxSessions else { return false }
        respondError(
            ex, 429, "Too Many Requests", JSONRPCErrorCode.serverError,
            "Too Many Requests: key \"\(key.label)\" has its maximum of \(key.limits.maxSessions) sessions", extra: [("Retry-After", "5")])
        return true
    }

    /// True (and a 429 sent) when the request's key already holds `max_streams` open SSE streams.
    func keyStreamLimitReached(_ ex: HTTPExchange) -> Bool {
        guard let key = requestKey, key.limits.maxStreams > 0 else { return false }
        let open = streams.values.reduce(0) { $0 + ($1.session?.keyLabel == key.label ? 1 : 0) }
        guard open >= key.limits.maxStreams else { return false }
        respondError(
            ex, 429, "Too Many Requests", JSONRPCErrorCode.serverError,
            "Too Many Requests: key \"\(key.label)\" has its maximum of \(key.limits.maxStreams) open streams",
            extra: [("Retry-After", "5")])
        return true
    }

    /// 401 with a JSON body and a Bearer challenge without resource_metadata, so OAuth-capable clients
    /// report the error instead of starting discovery (A-09).
    func unauthorized(_ ex: HTTPExchange, _ message: String) {
        respondError(
            ex, 401, "Unauthorized", JSONRPCErrorCode.serverError, message,
            extra: [("WWW-Authenticate", #"Bearer realm="switchyard""#)])
    }
}

/// `switchyard hash-key`: prints the SHA-256 of a secret read from stdin (never from argv, which other
/// users can read in /proc). One trailing newline is ignored.
package enum HashKey {
    package static func run() -> Int32 {
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes.append(contentsOf: buf[0..<n])
            if bytes.count > 1 << 16 { return 65 }
        }
        if bytes.last == 0x0A { bytes.removeLast() }
        if bytes.last == 0x0D { bytes.removeLast() }
        guard !bytes.isEmpty else {
            let m = "switchyard hash-key: empty secret on stdin\n"
            _ = m.withCString { write(2, $0, strlen($0)) }
            return 65
        }
        let line = Digest.sha256Hex(bytes) + "\n"
        _ = line.withCString { write(1, $0, strlen($0)) }
        return 0
    }
}

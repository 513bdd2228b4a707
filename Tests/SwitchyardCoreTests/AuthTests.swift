// Key matching and the extraction of the presented secret.

import Testing

@testable import SwitchyardCore

struct AuthTests {
    static let a = KeyRing.digest(hex: String(repeating: "ab", count: 32))!
    static let b = KeyRing.digest(hex: String(repeating: "0f", count: 32))!

    @Test func matchesByDigestInFull() {
        let ring = KeyRing(keys: [Key(label: "alice", digest: Self.a, servers: nil), Key(label: "bob", digest: Self.b, servers: ["time"])])
        #expect(ring.match(digest: Self.a)?.label == "alice")
        #expect(ring.match(digest: Self.b)?.label == "bob")
        var near = Self.a
        near[31] ^= 1
        #expect(ring.match(digest: near) == nil)
        #expect(ring.match(digest: Array(Self.a.prefix(31))) == nil)
        #expect(ring.match(digest: Self.b)!.allows(server: "time"))
        #expect(!ring.match(digest: Self.b)!.allows(server: "git"))
        #expect(ring.match(digest: Self.a)!.allows(server: "git"))
    }

    @Test func hexDigests() {
        #expect(KeyRing.digest(hex: "zz") == nil)
        #expect(KeyRing.digest(hex: String(repeating: "g", count: 64)) == nil)
        #expect(KeyRing.digest(hex: String(repeating: "AB", count: 32)) == Self.a)
    }

    @Test(
        arguments: [
            ("Authorization", ["Bearer s3cret"], nil, "s3cret"),
            ("Authorization", ["bearer   s3cret "], nil, "s3cret"),
            ("X-MCP-Token", ["s3cret"], nil, "s3cret"),
        ] as [(String, [String], String?, String)])
    func extractsTheSecret(header: String, values: [String], query: String?, secret: String) {
        #expect(AuthPolicy.presentedSecret(header: header, values: values, query: query) == .success(Array(secret.utf8)))
    }

    @Test(
        arguments: [
            ("Authorization", [], nil, AuthDecision.unauthorized("Unauthorized: missing Authorization header")),
            ("Authorization", ["Basic eA=="], nil, .unauthorized("Unauthorized: expected \"Authorization: Bearer <key>\"")),
            ("Authorization", ["Bearer a", "Bearer b"], nil, .badRequest("Bad Request: more than one Authorization header")),
            (
                "Authorization", ["Bearer a"], "sessionId=1&token=x",
                .badRequest("Bad Request: secrets must not be sent in the URL; use the Authorization header")
            ),
            ("X-MCP-Token", ["  "], nil, .unauthorized("Unauthorized: empty key")),
        ] as [(String, [String], String?, AuthDecision)])
    func refuses(header: String, values: [String], query: String?, decision: AuthDecision) {
        #expect(AuthPolicy.presentedSecret(header: header, values: values, query: query) == .failure(decision))
    }
}

struct TokenBucketTests {
    @Test func allowsBurstThenRefillsAtRate() {
        var b = TokenBucket(ratePerSecond: 2, burst: 3, nowMs: 0)
        #expect(b.take(nowMs: 0) == nil)
        #expect(b.take(nowMs: 0) == nil)
        #expect(b.take(nowMs: 0) == nil)
        #expect(b.take(nowMs: 0) == 500)  // one token every 500 ms
        #expect(b.take(nowMs: 499) != nil)
        #expect(b.take(nowMs: 1000) == nil)
        #expect(b.take(nowMs: 100_000) == nil)  // refills only up to the burst
        #expect(b.take(nowMs: 100_000) == nil)
        #expect(b.take(nowMs: 100_000) == nil)
        #expect(b.take(nowMs: 100_000) != nil)
    }
}

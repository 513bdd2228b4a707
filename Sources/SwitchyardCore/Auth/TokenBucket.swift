// A token bucket per key: `rate` requests a second with bursts up to `burst`.

public struct TokenBucket: Equatable, Sendable {
    public let ratePerSecond: Double
    public let burst: Double
    var tokens: Double
    var lastMs: Int

    public init(ratePerSecond: Double, burst: Double, nowMs: Int) {
        self.ratePerSecond = ratePerSecond
        self.burst = max(1, burst)
        self.tokens = max(1, burst)
        self.lastMs = nowMs
    }

    /// Takes one token. Returns nil when allowed, or the milliseconds until a token is available.
    public mutating func take(nowMs: Int) -> Int? {
        let elapsed = Double(max(0, nowMs - lastMs)) / 1000
        tokens = min(burst, tokens + elapsed * ratePerSecond)
        lastMs = nowMs
        if tokens >= 1 {
            tokens -= 1
            return nil
        }
        guard ratePerSecond > 0 else { return Int.max }
        return Int(((1 - tokens) / ratePerSecond * 1000).rounded(.up))
    }
}

/// Per-key limits (`auth.keys[]`): 0 means unlimited.
public struct KeyLimits: Equatable, Sendable {
    public var maxSessions = 0
    public var maxStreams = 0
    /// Requests per second (0 = unlimited) and burst size.
    public var rate: Double = 0
    public var burst: Double = 0
    public init() {}
}

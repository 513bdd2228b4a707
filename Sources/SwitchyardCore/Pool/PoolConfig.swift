// How a server's children are pooled: dedicated (one child per session) or shared (sessions multiplexed).

public struct PoolConfig: Equatable, Sendable {
    public enum Mode: String, Sendable {
        /// One child per session for its whole life; never handed to a second session (recycled instead).
        case dedicated
        /// Many sessions per child; the gateway initializes each child once and virtualizes ids.
        case shared
    }

    /// `mode`
    public var mode: Mode = .dedicated
    /// `min_idle`: dedicated: warm spares (spawned, not initialized); shared: children kept up and initialized.
    public var minIdle = 1
    /// `max_children`: live children of this server; beyond it new sessions queue.
    public var maxChildren = 256
    /// `max_sessions_per_child` (shared).
    public var maxSessionsPerChild = 64
    /// `max_inflight_per_child`: requests beyond it wait in the child's queue.
    public var maxInflightPerChild = 128
    /// `queue_timeout`: how long a session or request waits for capacity before "server busy".
    public var queueTimeoutMs = 10_000
    /// `request_timeout`: a request unanswered this long gets -32001 and is cancelled at the child (0 = none).
    public var requestTimeoutMs = 300_000
    /// `spawn_timeout`: spawn + initialize (shared) must finish within this.
    public var spawnTimeoutMs = 60_000
    /// `idle_timeout`: shared children above `min_idle` with no sessions for this long are stopped.
    public var idleTimeoutMs = 300_000
    /// `max_lifetime`: children are recycled (drained, then replaced) after this (0 = never).
    public var maxLifetimeMs = 0
    /// `max_requests`: children are recycled after serving this many requests (0 = never).
    public var maxRequests = 0
    /// `restart_backoff`: first delay after a spawn/initialize failure; doubles up to `restart_backoff_max`.
    public var restartBackoffMs = 1_000
    public var restartBackoffMaxMs = 30_000
    /// `cancel_grace`: after a request timeout, a child silent for this long is recycled.
    public var cancelGraceMs = 5_000
    /// `scheduling`: `batch` (default) starts children under SCHED_BATCH: a child woken by a request
    /// does not preempt the gateway's event loop in the middle of a turn (CPU shares are unchanged);
    /// `normal` leaves them under SCHED_OTHER.
    public var batchScheduling = true

    public init() {}
}

/// Exponential back-off after consecutive spawn or initialize failures (the crash-loop guard).
public struct Backoff: Equatable, Sendable {
    public private(set) var failures = 0
    public private(set) var nextAttemptMs = 0
    public private(set) var lastError = ""

    public init() {}

    public mutating func recordFailure(_ error: String, nowMs: Int, initialMs: Int, maxMs: Int) {
        failures += 1
        lastError = error
        let shift = min(failures - 1, 20)
        let delay = min(maxMs, initialMs.multipliedReportingOverflow(by: 1 << shift).overflow ? maxMs : initialMs << shift)
        nextAttemptMs = nowMs + delay
    }

    public mutating func recordSuccess() {
        failures = 0
        nextAttemptMs = 0
    }

    public func isWaiting(nowMs: Int) -> Bool { failures > 0 && nowMs < nextAttemptMs }
}

/// Least-loaded placement of a session on a shared child.
public enum Placement {
    /// Index of the ready child with the fewest sessions (then fewest in flight) below the cap; nil if none.
    public static func pick(sessions: [Int], inflight: [Int], ready: [Bool], maxSessionsPerChild: Int) -> Int? {
        var best: Int?
        for k in sessions.indices where ready[k] && sessions[k] < maxSessionsPerChild {
            if let b = best, (sessions[b], inflight[b]) <= (sessions[k], inflight[k]) { continue }
            best = k
        }
        return best
    }
}

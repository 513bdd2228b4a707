// The state machine of one client session, independent of sockets and children.

/// initializing → ready → ended(reason); `ended` is terminal and reached exactly once.
public struct SessionLifecycle: Sendable {
    public enum State: Equatable, Sendable {
        /// `initialize` was forwarded; the InitializeResult is not back yet.
        case initializing
        /// The InitializeResult went to the client; requests flow.
        case ready
        /// Out of the registry; later requests with this id get 404.
        case ended(CloseReason)
    }

    public private(set) var state: State = .initializing
    /// The negotiated version (from the InitializeResult); 2025-03-26 until known (H-22).
    public private(set) var protocolVersion = ProtocolVersion.assumed
    public private(set) var lastActivityMs: Int

    public init(nowMs: Int) { lastActivityMs = nowMs }

    /// The child answered `initialize` with a result. Returns false if the session already ended.
    public mutating func initializeSucceeded(version: String?) -> Bool {
        guard state == .initializing else { return state == .ready }
        state = .ready
        if let v = version { protocolVersion = v }
        return true
    }

    /// Records activity (a request, an open stream, an in-flight request).
    public mutating func touch(nowMs: Int) { lastActivityMs = max(lastActivityMs, nowMs) }

    /// True when the session has been idle for `timeoutMs` and nothing keeps it busy.
    public func isIdle(nowMs: Int, timeoutMs: Int, busy: Bool) -> Bool {
        guard !isEnded, !busy else { return false }
        return nowMs - lastActivityMs >= timeoutMs
    }

    /// Ends the session. Returns true only the first time (one teardown, one log line, one count).
    public mutating func end(_ reason: CloseReason) -> Bool {
        if isEnded { return false }
        state = .ended(reason)
        return true
    }

    public var isEnded: Bool {
        if case .ended = state { return true }
        return false
    }

    /// Batches (JSON arrays) are allowed only in 2025-03-26 sessions (B-05).
    public var allowsBatches: Bool { protocolVersion == ProtocolVersion.batching }
}

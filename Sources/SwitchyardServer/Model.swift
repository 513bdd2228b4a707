// Loop-owned state of the gateway: sessions, children, pending requests and reply channels.

internal import SwitchyardCore
internal import SwitchyardIO

/// An SSE response stream (a session's GET stream, or the answer stream of one POST).
final class SSEStream {
    let exchange: HTTPExchange
    var lastWriteMs: Int
    weak var session: Session?
    let isGet: Bool

    init(exchange: HTTPExchange, nowMs: Int, session: Session?, isGet: Bool) {
        self.exchange = exchange
        self.lastWriteMs = nowMs
        self.session = session
        self.isGet = isGet
    }

    var isOpen: Bool { !exchange.isFinished }
}

/// How one POST gets its answer: a JSON body (after all responses) or an SSE stream.
final class Reply {
    let exchange: HTTPExchange
    let mode: ReplyMode
    let isBatch: Bool
    var expected: Int
    var delivered = 0
    var collected: [[UInt8]] = []
    var stream: SSEStream?
    /// False for legacy sessions: their one stream outlives every request.
    var endsStream = true
    let sessionID: String

    init(exchange: HTTPExchange, mode: ReplyMode, isBatch: Bool, expected: Int, sessionID: String) {
        self.exchange = exchange
        self.mode = mode
        self.isBatch = isBatch
        self.expected = expected
        self.sessionID = sessionID
    }

    var isOpen: Bool { !exchange.isFinished }
}

/// A request forwarded to a child and not answered yet, keyed by the child-side id.
struct Pending {
    /// The client's id, byte-exact.
    var originalID: [UInt8]
    var reply: Reply
    var progressToken: [UInt8]?
    var isInitialize: Bool
}

/// A client session (Streamable HTTP). Dedicated mode: it owns exactly one child for its life.
final class Session {
    enum Transport: Equatable {
        /// Streamable HTTP: answers on each POST; unrelated messages on the GET stream.
        case streamable
        /// Legacy HTTP+SSE: one stream (`getStream`) carries everything; it ending ends the session.
        case legacy
    }

    let id: String
    let serverName: String
    let transport: Transport
    var lifecycle: SessionLifecycle
    var child: Child?
    var getStream: SSEStream?
    /// Server messages waiting for a GET stream (bounded, H-32).
    var queued: [[UInt8]] = []

    init(id: String, serverName: String, transport: Transport, nowMs: Int) {
        self.id = id
        self.serverName = serverName
        self.transport = transport
        self.lifecycle = SessionLifecycle(nowMs: nowMs)
    }
}

/// One stdio child process and its routing table.
final class Child {
    enum State: Equatable {
        /// Spawned, waiting in the pool for a session.
        case spare
        /// Bound to a session.
        case active
        /// Being terminated or already exited.
        case exiting
    }

    let process: ChildProcess
    unowned let pool: ServerPool
    let spawnedAtMs: Int
    var state: State = .spare
    weak var session: Session?
    var pending: [Int: Pending] = [:]
    var nextID = 1
    var initialized = false
    var exitDescription: String?
    var killTimers: [Timer] = []
    /// stderr lines logged in the current one-second window, and lines suppressed beyond the budget.
    var stderrWindowStartMs = 0
    var stderrLinesInWindow = 0
    var stderrSuppressed = 0

    init(process: ChildProcess, pool: ServerPool, nowMs: Int) {
        self.process = process
        self.pool = pool
        self.spawnedAtMs = nowMs
    }

    var pid: Int32 { process.pid }

    func issueID() -> Int {
        defer { nextID += 1 }
        return nextID
    }
}

/// The children of one configured server: warm spares and spawn back-off after failures.
final class ServerPool {
    let spec: ServerSpec
    var spares: [Child] = []
    var consecutiveFailures = 0
    var nextAttemptMs = 0
    var lastError = ""
    var refillTimer: Timer?

    init(spec: ServerSpec) { self.spec = spec }

    /// 1 s doubling to 30 s after consecutive spawn or initialize failures.
    func recordFailure(_ error: String, nowMs: Int) {
        consecutiveFailures += 1
        lastError = error
        let delay = min(30_000, 1000 << min(consecutiveFailures - 1, 5))
        nextAttemptMs = nowMs + delay
    }

    func inBackoff(nowMs: Int) -> Bool { consecutiveFailures > 0 && nowMs < nextAttemptMs }
}

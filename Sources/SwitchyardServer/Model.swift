// Loop-owned state of the gateway: sessions, children, pending requests and reply channels.

internal import SwitchyardCore
internal import SwitchyardIO

/// An SSE response stream (a session's GET stream, or the answer stream of one POST).
final class SSEStream {
    let exchange: HTTPExchange
    var lastWriteMs: Int
    /// Strong on purpose (weak references cost a side table per request); the cycle with
    /// `Session.getStream` is broken by `streamGone` / `endSession`.
    var session: Session?
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
    /// SSE reply whose stream is opened lazily (with the first event, or at `startDeadlineMs`).
    var lazyStart = false
    var startDeadlineMs = 0
    var session: Session?
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
    /// The client's id, byte-exact (empty for the gateway's own requests).
    var originalID: [UInt8]
    /// Where the answer goes; nil for the gateway's own requests (child initialize, replayed subscribe).
    var reply: Reply?
    /// The session that asked (shared children serve many). Strong: entries are removed when the
    /// session ends (`cancelPending`) or the child goes (`failPending`).
    var session: Session?
    /// The client's progress token, byte-exact; the child sees the child-side id instead.
    var progressToken: [UInt8]?
    var kind: Kind
    /// When the request times out (0 = never).
    var deadlineMs: Int

    enum Kind {
        case client
        /// A dedicated child's answer to the client's own `initialize`.
        case clientInitialize
        /// The gateway's `initialize` of a shared child.
        case gatewayInitialize
        /// A request the gateway sent for itself (replayed `resources/subscribe`); the answer is dropped.
        case gatewayInternal
    }
}

/// A request that waits for room on its child (`max_inflight_per_child`).
struct QueuedRequest {
    var bytes: [UInt8]
    var reply: Reply
    var session: Session?
    var deadlineMs: Int
}

/// A session waiting for a child (pool at `max_children`, or shared children still starting).
struct Waiter {
    let session: Session
    let deadlineMs: Int
    let completion: (Result<Child, SpawnFailure>) -> Void
}

/// A client session of either transport. Its child is dedicated to it, or shared with others.
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
    /// The child serving this session; nil before `initialize` (legacy) or while re-placed after a crash.
    var child: Child?
    var getStream: SSEStream?
    /// Server messages waiting for a GET stream (bounded, H-32).
    var queued: [[UInt8]] = []
    /// Shared mode: resource URIs this session subscribed to (reference-counted on the child).
    var subscriptions: Set<String> = []
    /// Shared mode: `logging/setLevel` of this session (index into `LogLevels.names`); nil = everything.
    var logLevel: Int?
    /// The protocol version the client asked for in `initialize` (shared mode answers it locally).
    var requestedVersion: String?
    /// The label of the key that created the session; other keys get 404 for it.
    var keyLabel: String?
    /// `initialize` was received (legacy sessions exist before it).
    var initializeStarted = false

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
        /// Dedicated: spawned, waiting in the pool for a session (not initialized).
        case spare
        /// Shared: spawned, the gateway's `initialize` is in flight.
        case starting
        /// Shared: initialized; takes sessions.
        case ready
        /// Dedicated: bound to its session.
        case active
        /// Takes no new sessions; recycled once its in-flight requests settle.
        case draining
        /// Being terminated or already exited.
        case exiting
    }

    let process: ChildProcess
    /// Pools live as long as the gateway (never removed); read on every request.
    unowned(unsafe) let pool: ServerPool
    let spawnedAtMs: Int
    var state: State
    /// Sessions served by this child (one in dedicated mode).
    var sessions: [ObjectIdentifier: Session] = [:]
    var pending: [Int: Pending] = [:]
    var waiting: [QueuedRequest] = []
    var nextID = 1
    var initialized = false
    var shared: SharedInitialize?
    /// Shared mode: resource URI → number of sessions subscribed.
    var subscriptions: [String: Int] = [:]
    var requestsServed = 0
    var lastOutputMs: Int
    /// After a request timeout: the child must say something before this, or it is recycled.
    var settleDeadlineMs = 0
    var exitDescription: String?
    var killTimers: [Timer] = []
    var startTimer: Timer?
    var idleSinceMs: Int
    /// stderr lines logged in the current one-second window, and lines suppressed beyond the budget.
    var stderrWindowStartMs = 0
    var stderrLinesInWindow = 0
    var stderrSuppressed = 0

    init(process: ChildProcess, pool: ServerPool, nowMs: Int, state: State) {
        self.process = process
        self.pool = pool
        self.spawnedAtMs = nowMs
        self.lastOutputMs = nowMs
        self.idleSinceMs = nowMs
        self.state = state
    }

    var pid: Int32 { process.pid }
    var isShared: Bool { pool.spec.pool.mode == .shared }

    func issueID() -> Int {
        defer { nextID += 1 }
        return nextID
    }
}

/// The children of one configured server: warm spares, placement, waiters, back-off and counters.
final class ServerPool {
    let spec: ServerSpec
    /// Every live child (not yet exiting).
    var children: [Child] = []
    /// Dedicated mode: spawned, unbound children.
    var spares: [Child] = []
    var waiters: [Waiter] = []
    var backoff = Backoff()
    /// When initialized children crashed recently (crash-loop detection).
    var recentCrashes: [Int] = []
    var refillTimer: Timer?
    var stats = PoolStats()

    init(spec: ServerSpec) { self.spec = spec }

    var config: PoolConfig { spec.pool }
}

/// Countable pool state for the admin endpoint (and metrics later).
struct PoolStats {
    var spawns = 0
    var spawnFailures = 0
    var crashes = 0
    var recycles = 0
    var requests = 0
    var timeouts = 0
    var busyRejections = 0
    var spawnLatencyTotalMs = 0
    var spawnLatencyCount = 0
    var lastSpawnLatencyMs = 0
}

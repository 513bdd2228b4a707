// Why a session, stream or child ended: one closed enum, logged and counted once.

public enum CloseReason: String, Sendable {
    case clientDeleted = "client_deleted"
    case idleTimeout = "idle_timeout"
    case childExited = "child_exited"
    case childLineTooLong = "child_line_too_long"
    case spawnFailed = "spawn_failed"
    case initializeFailed = "initialize_failed"
    case shutdown = "shutdown"
    case replaced = "replaced"
    case clientGone = "client_gone"
    case slowReader = "slow_reader"
    case finished = "finished"
}

// The one libevent loop that owns every gateway object; timers, signals and deferred work.
//
// Ownership rule for C callbacks: objects reached from libevent through a `void *` are kept alive by
// their owner (the loop or the gateway); thunks use `Unmanaged.passUnretained`. An object must be
// cancelled (its event freed) before its owner drops it. Nothing here is Sendable: loop thread only.

internal import CLibEvent
#if canImport(Glibc)
    internal import Glibc
#endif

/// A libevent `event_base` plus the process-wide setup the daemon needs.
package final class EventLoop {
    let base: OpaquePointer
    private var deferred: [() -> Void] = []
    private var deferEvent: OpaquePointer?

    package init() {
        guard let b = event_base_new() else { preconditionFailure("event_base_new failed") }
        base = b
        deferEvent = event_new(
            base, -1, 0,
            { _, _, arg in Unmanaged<EventLoop>.fromOpaque(arg!).takeUnretainedValue().runDeferred() },
            Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        if let e = deferEvent { event_free(e) }
        event_base_free(base)
    }

    /// Runs until `stop()`.
    package func run() { event_base_dispatch(base) }

    package func stop() { event_base_loopbreak(base) }

    /// Runs `work` at a safe point after the current callback returns (never free a libevent object
    /// inside its own callback).
    package func runSoon(_ work: @escaping () -> Void) {
        deferred.append(work)
        if deferred.count == 1, let e = deferEvent { event_active(e, 0, 0) }
    }

    private func runDeferred() {
        while !deferred.isEmpty {
            let batch = deferred
            deferred.removeAll(keepingCapacity: true)
            for w in batch { w() }
        }
    }

    /// Gives freed heap memory back to the kernel (malloc_trim). After 10,000 connections closed at once,
    /// glibc kept ~18 MB of free chunks mapped; this returns them. Costs a walk of the free lists: call it
    /// after bursts of closes, not per connection.
    package static func releaseFreedMemory() { _ = malloc_trim(0) }

    /// Monotonic milliseconds (cached per loop iteration by libevent).
    package var nowMillis: Int {
        var tv = timeval()
        event_base_gettimeofday_cached(base, &tv)
        return Int(tv.tv_sec) * 1000 + Int(tv.tv_usec) / 1000
    }

    /// Ignores SIGPIPE (libevent writes without MSG_NOSIGNAL) and raises RLIMIT_NOFILE to the hard limit.
    package static func prepareProcess() -> (soft: Int, hard: Int) {
        signal(SIGPIPE, SIG_IGN)
        var rl = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0 {
            rl.rlim_cur = rl.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl)
            _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl)
        }
        return (Int(clamping: rl.rlim_cur), Int(clamping: rl.rlim_max))
    }
}

/// A one-shot or repeating timer. Cancelled by `cancel()`; the owner must cancel before dropping it.
package final class Timer {
    private var event: OpaquePointer?
    private let callback: () -> Void
    private let repeating: Bool
    private let intervalMs: Int

    /// Starts a timer that fires after `ms` (and every `ms` when `repeating`); `armed: false` creates it idle.
    package init(loop: EventLoop, afterMillis ms: Int, repeating: Bool = false, armed: Bool = true, _ callback: @escaping () -> Void) {
        self.callback = callback
        self.repeating = repeating
        self.intervalMs = ms
        event = event_new(
            loop.base, -1, repeating ? Int16(EV_PERSIST) : 0,
            { _, _, arg in Unmanaged<Timer>.fromOpaque(arg!).takeUnretainedValue().fire() },
            Unmanaged.passUnretained(self).toOpaque())
        if armed { schedule(afterMillis: ms) }
    }

    /// (Re-)arms the timer; a pending expiry is replaced.
    package func schedule(afterMillis ms: Int) {
        guard let e = event else { return }
        var tv = timeval(tv_sec: ms / 1000, tv_usec: (ms % 1000) * 1000)
        event_add(e, &tv)
    }

    package var isPending: Bool {
        guard let e = event else { return false }
        return event_pending(e, Int16(EV_TIMEOUT), nil) != 0
    }

    private func fire() {
        // Keep self alive while the callback may drop the last reference to this timer.
        withExtendedLifetime(self) { callback() }
    }

    package func cancel() {
        if let e = event {
            event_free(e)
            event = nil
        }
    }

    deinit { cancel() }
}

/// Delivers a signal through the loop (evsignal): the handler runs as an ordinary callback.
package final class SignalWatcher {
    private var event: OpaquePointer?
    private let callback: (Int32) -> Void
    private let signo: Int32

    package init(loop: EventLoop, signal signo: Int32, _ callback: @escaping (Int32) -> Void) {
        self.callback = callback
        self.signo = signo
        event = sy_evsignal_new(
            loop.base, signo,
            { fd, _, arg in Unmanaged<SignalWatcher>.fromOpaque(arg!).takeUnretainedValue().fire() },
            Unmanaged.passUnretained(self).toOpaque())
        event_add(event, nil)
    }

    private func fire() { callback(signo) }

    package func cancel() {
        if let e = event {
            event_free(e)
            event = nil
        }
    }

    deinit { cancel() }
}

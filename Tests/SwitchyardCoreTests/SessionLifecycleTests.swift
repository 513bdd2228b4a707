// The session state machine: transitions, idleness and a single teardown.

import Testing

@testable import SwitchyardCore

struct SessionLifecycleTests {
    @Test func initializeThenEndOnce() {
        var s = SessionLifecycle(nowMs: 0)
        #expect(s.state == .initializing)
        #expect(s.protocolVersion == ProtocolVersion.assumed)
        let first = s.initializeSucceeded(version: "2025-06-18")
        #expect(first)
        #expect(s.state == .ready)
        #expect(s.protocolVersion == "2025-06-18")
        let ended = s.end(.clientDeleted)
        let again = s.end(.idleTimeout)
        #expect(ended)
        #expect(!again)
        #expect(s.state == .ended(.clientDeleted))
        let late = s.initializeSucceeded(version: "2025-11-25")
        #expect(!late)
        #expect(s.protocolVersion == "2025-06-18")
    }

    @Test func batchesOnlyFor20250326() {
        var s = SessionLifecycle(nowMs: 0)
        _ = s.initializeSucceeded(version: "2025-03-26")
        #expect(s.allowsBatches)
        var t = SessionLifecycle(nowMs: 0)
        _ = t.initializeSucceeded(version: "2025-11-25")
        #expect(!t.allowsBatches)
    }

    @Test func idleOnlyWhenNotBusyAndPastTimeout() {
        var s = SessionLifecycle(nowMs: 1000)
        #expect(!s.isIdle(nowMs: 1500, timeoutMs: 1000, busy: false))
        #expect(s.isIdle(nowMs: 2000, timeoutMs: 1000, busy: false))
        #expect(!s.isIdle(nowMs: 9000, timeoutMs: 1000, busy: true))
        s.touch(nowMs: 8500)
        #expect(!s.isIdle(nowMs: 9000, timeoutMs: 1000, busy: false))
        s.touch(nowMs: 100)  // clocks never move activity backwards
        #expect(s.lastActivityMs == 8500)
        _ = s.end(.shutdown)
        #expect(!s.isIdle(nowMs: 99_999, timeoutMs: 1000, busy: false))
    }
}

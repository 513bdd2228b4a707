// Pool decisions: placement, back-off, the shared InitializeResult and multi-span splicing.

import Testing

@testable import SwitchyardCore

struct PoolTests {
    @Test func placementPicksLeastLoadedReadyChildUnderTheCap() {
        #expect(Placement.pick(sessions: [3, 1, 2], inflight: [0, 0, 0], ready: [true, true, true], maxSessionsPerChild: 4) == 1)
        #expect(Placement.pick(sessions: [3, 1, 2], inflight: [0, 0, 0], ready: [true, false, true], maxSessionsPerChild: 4) == 2)
        #expect(Placement.pick(sessions: [2, 2], inflight: [5, 1], ready: [true, true], maxSessionsPerChild: 4) == 1)
        #expect(Placement.pick(sessions: [4, 4], inflight: [0, 0], ready: [true, true], maxSessionsPerChild: 4) == nil)
        #expect(Placement.pick(sessions: [], inflight: [], ready: [], maxSessionsPerChild: 4) == nil)
    }

    @Test func backoffDoublesUpToTheCapAndResets() {
        var b = Backoff()
        #expect(!b.isWaiting(nowMs: 0))
        b.recordFailure("boom", nowMs: 0, initialMs: 1000, maxMs: 5000)
        #expect(b.nextAttemptMs == 1000)
        b.recordFailure("boom", nowMs: 0, initialMs: 1000, maxMs: 5000)
        #expect(b.nextAttemptMs == 2000)
        b.recordFailure("boom", nowMs: 0, initialMs: 1000, maxMs: 5000)
        b.recordFailure("boom", nowMs: 0, initialMs: 1000, maxMs: 5000)
        #expect(b.nextAttemptMs == 5000)
        for _ in 0..<100 { b.recordFailure("boom", nowMs: 0, initialMs: 1000, maxMs: 5000) }
        #expect(b.nextAttemptMs == 5000)
        #expect(b.isWaiting(nowMs: 4999))
        #expect(!b.isWaiting(nowMs: 5000))
        b.recordSuccess()
        #expect(!b.isWaiting(nowMs: 0))
    }

    static let childResult =
        #"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18","capabilities":{"tasks":{"list":{}},"tools":{"listChanged":true},"resources":{"subscribe":true,"listChanged":false}},"serverInfo":{"name":"s","version":"1"}}}"#

    @Test func sharedInitializeDropsTasksAndNegotiates() throws {
        let bytes = Array(Self.childResult.utf8)
        let shared = try bytes.withUnsafeBytes { b -> SharedInitialize? in
            let top = Span(0, b.count)
            let (result, _) = try #require(EnvelopeScanner.member(b, of: top, key: "\"result\""))
            return SharedInitialize(b, result: result)
        }
        let s = try #require(shared)
        #expect(s.childVersion == "2025-06-18")
        #expect(s.listChanged == ["tools"])
        #expect(s.supportsSubscribe)
        #expect(s.negotiate(client: "2025-11-25") == "2025-06-18")
        #expect(s.negotiate(client: "2025-03-26") == "2025-03-26")
        #expect(s.negotiate(client: "1999-01-01") == "2025-06-18")
        #expect(s.negotiate(client: nil) == "2025-06-18")
        let answer = String(decoding: s.response(id: Array("\"a\"".utf8), version: "2025-03-26"), as: UTF8.self)
        #expect(
            answer
                == #"{"jsonrpc":"2.0","id":"a","result":{"protocolVersion":"2025-03-26","capabilities":{"tools":{"listChanged":true},"resources":{"subscribe":true,"listChanged":false}},"serverInfo":{"name":"s","version":"1"}}}"#
        )
        try Array(answer.utf8).withUnsafeBytes { b in _ = try EnvelopeScanner.scan(b) }
    }

    @Test(arguments: [
        (#"{"a":1,"tasks":{},"b":2}"#, #"{"a":1,"b":2}"#),
        (#"{"tasks":{}, "b":2}"#, #"{"b":2}"#),
        (#"{"a":1, "tasks":{}}"#, #"{"a":1}"#),
        (#"{"tasks":{}}"#, "{}"),
    ])
    func removingAMemberLeavesValidJSON(input: String, expected: String) {
        let bytes = Array(input.utf8)
        let out = bytes.withUnsafeBytes { b -> [UInt8] in
            guard let cut = JSONEdit.memberWithSeparator(b, of: Span(0, b.count), key: "\"tasks\"") else { return [] }
            return Splice.apply(b, replacing: cut, with: [])
        }
        #expect(String(decoding: out, as: UTF8.self) == expected)
    }

    @Test func splicesSeveralSpansInOrder() {
        let body = Array(#"{"id":"x","params":{"_meta":{"progressToken":"t"}}}"#.utf8)
        var out: [UInt8] = []
        body.withUnsafeBytes { b in
            let seven = Array("7".utf8)
            seven.withUnsafeBytes { r in
                // given out of order on purpose
                JSONEdit.splice(b, [(Span(45, 48), r), (Span(6, 9), r)]) { out.append(contentsOf: $0) }
            }
        }
        #expect(String(decoding: out, as: UTF8.self) == #"{"id":7,"params":{"_meta":{"progressToken":7}}}"#)
    }
}

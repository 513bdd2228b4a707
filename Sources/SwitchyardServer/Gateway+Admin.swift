// The admin endpoint: pool, child and session state as JSON, on its own loopback listener (PgBouncer's
// SHOW POOLS / SHOW SERVERS / SHOW CLIENTS), never on the data port.

internal import SwitchyardCore
internal import SwitchyardIO

extension Gateway {
    func handleAdmin(_ ex: HTTPExchange) {
        guard ex.method == .get else {
            respondError(ex, 405, "Method Not Allowed", JSONRPCErrorCode.serverError, "Method Not Allowed", extra: [("Allow", "GET")])
            return
        }
        switch ex.path {
        case "/pools": respondJSON(ex, 200, "OK", Array(poolsJSON().utf8))
        case "/children": respondJSON(ex, 200, "OK", Array(childrenJSON().utf8))
        case "/sessions": respondJSON(ex, 200, "OK", Array(sessionsJSON().utf8))
        case "/connections": respondJSON(ex, 200, "OK", Array(connectionsJSON().utf8))
        case "/healthz": respondJSON(ex, 200, "OK", Array(#"{"status":"ok"}"#.utf8))
        default:
            respondJSON(
                ex, 404, "Not Found",
                Array(#"{"error":"not found","endpoints":["/pools","/children","/sessions","/connections","/healthz"]}"#.utf8))
        }
    }

    /// Client connections over all client listeners: open, the cap, how often it was reached, and how the
    /// closed ones ended.
    func connectionsJSON() -> String {
        let b = connectionBudget
        let closedText = b.closeCounts.map { "\(JSONText.quoted($0.0)):\($0.1)" }.joined(separator: ",")
        return
            #"{"open":\#(b.open),"max_connections":\#(b.limit),"times_full":\#(b.timesFull),"accepted":\#(b.accepted),"closed":{\#(closedText)}}"#
    }

    func poolsJSON() -> String {
        let now = loop.nowMillis
        var rows: [String] = []
        for name in pools.keys.sorted() {
            let p = pools[name]!
            var byState: [String: Int] = ["spawning": 0, "idle": 0, "active": 0, "draining": 0]
            for c in p.children {
                switch c.state {
                case .starting: byState["spawning", default: 0] += 1
                case .spare: byState["idle", default: 0] += 1
                case .ready: byState[c.sessions.isEmpty ? "idle" : "active", default: 0] += 1
                case .active: byState["active", default: 0] += 1
                case .draining: byState["draining", default: 0] += 1
                case .exiting: break
                }
            }
            let exiting = children.values.filter { $0.pool === p && $0.state == .exiting }.count
            let sessionCount = sessions.values.filter { $0.serverName == name }.count
            let oldestWait = p.waiters.map { now - ($0.deadlineMs - p.config.queueTimeoutMs) }.max() ?? 0
            let queuedRequests = p.children.reduce(0) { $0 + $1.waiting.count }
            let inflight = p.children.reduce(0) { $0 + $1.pending.count }
            let s = p.stats
            let avgSpawn = s.spawnLatencyCount > 0 ? s.spawnLatencyTotalMs / s.spawnLatencyCount : 0
            rows.append(
                """
                {"server":\(JSONText.quoted(name)),"mode":"\(p.config.mode.rawValue)",\
                "children":{"spawning":\(byState["spawning"]!),"idle":\(byState["idle"]!),"active":\(byState["active"]!),\
                "draining":\(byState["draining"]!),"exiting":\(exiting)},\
                "sessions":\(sessionCount),"inflight":\(inflight),"waiting_sessions":\(p.waiters.count),\
                "queued_requests":\(queuedRequests),"oldest_wait_ms":\(oldestWait),\
                "spawn_latency_ms":{"last":\(s.lastSpawnLatencyMs),"avg":\(avgSpawn)},\
                "backoff":{"failures":\(p.backoff.failures),"retry_in_ms":\(max(0, p.backoff.nextAttemptMs - now))},\
                "totals":{"spawns":\(s.spawns),"spawn_failures":\(s.spawnFailures),"crashes":\(s.crashes),\
                "recycles":\(s.recycles),"requests":\(s.requests),"timeouts":\(s.timeouts),"busy_rejections":\(s.busyRejections)}}
                """)
        }
        return "{\"pools\":[\(rows.joined(separator: ","))],\"sessions\":\(sessions.count),\"streams\":\(streams.count)}"
    }

    func childrenJSON() -> String {
        let now = loop.nowMillis
        let rows = children.values.sorted { $0.spawnedAtMs < $1.spawnedAtMs }.map { c in
            """
            {"pid":\(c.pid),"server":\(JSONText.quoted(c.pool.spec.name)),"state":"\(c.state)","sessions":\(c.sessions.count),\
            "inflight":\(c.pending.count),"queued":\(c.waiting.count),"served":\(c.requestsServed),"age_ms":\(now - c.spawnedAtMs),\
            "subscriptions":\(c.subscriptions.count)}
            """
        }
        return "{\"children\":[\(rows.joined(separator: ","))]}"
    }

    func sessionsJSON() -> String {
        let now = loop.nowMillis
        let rows = sessions.values.map { s in
            """
            {"id":\(JSONText.quoted(s.id)),"server":\(JSONText.quoted(s.serverName)),\
            "transport":"\(s.transport == .legacy ? "sse" : "streamable")","pid":\(s.child.map { String($0.pid) } ?? "null"),\
            "protocol":\(JSONText.quoted(s.lifecycle.protocolVersion)),"idle_ms":\(now - s.lifecycle.lastActivityMs),\
            "stream_open":\(s.getStream?.isOpen == true)}
            """
        }
        return "{\"sessions\":[\(rows.joined(separator: ","))]}"
    }
}

"""Child pools under failure: a child killed under load, request timeouts and cancellation reaching the
child with the rewritten id, queue overflow ("server busy"), the crash-loop guard, and dedicated mode.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import pid_alive, wait_until
from poolkit import (
    McpHttp, Recording, fastmcp_server, pool_daemon, recording_server, result_text,
)


def shared(**kw) -> dict:
    p = {"mode": "shared"}
    p.update(kw)
    return p


# ---------------------------------------------------------------------------------------------
# 2. a child SIGKILLed under load
# ---------------------------------------------------------------------------------------------

def test_child_killed_under_load(switchyard):
    srv = fastmcp_server()
    srv["pool"] = shared(max_children=2, max_sessions_per_child=5, min_idle=2)
    d, admin = pool_daemon(switchyard, {"fix": srv})
    clients = [McpHttp(d).must_initialize() for _ in range(10)]
    by_sid = {s["id"]: s["pid"] for s in admin.sessions("fix")}
    pids = sorted(set(by_sid.values()))
    assert len(pids) == 2, f"10 sessions, 5 per child -> 2 children: {admin.get('/sessions')}"
    victim, survivor = pids
    on_victim = [c for c in clients if by_sid[c.sid] == victim]
    on_survivor = [c for c in clients if by_sid[c.sid] == survivor]
    assert len(on_victim) == 5 and len(on_survivor) == 5

    # every session: one long call (4 s) in flight
    results = {}

    def call(c):
        results[c.sid] = c.call("sleep", {"seconds": 4, "steps": 0}, id_=42, timeout=30)

    threads = [threading.Thread(target=call, args=(c,)) for c in clients]
    [t.start() for t in threads]
    wait_until(lambda: sum(ch["inflight"] for ch in admin.children("fix")) == 10, 10,
               what="10 requests in flight on the two children")
    t_kill = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    # the victim's requests fail fast
    for c in on_victim:
        wait_until(lambda: c.sid in results, 3, what=f"error answer for session on the killed child")
    fail_latency = time.monotonic() - t_kill
    for c in on_victim:
        r = results[c.sid]
        assert r.status == 200, r
        a = r.answer()
        assert a.get("id") == 42 and "error" in a, f"in-flight request on the killed child must get a JSON-RPC error: {r!r}"
    assert fail_latency < 3, f"errors took {fail_latency:.1f}s"
    [t.join(15) for t in threads]
    for c in on_survivor:
        r = results[c.sid]
        assert result_text(r.answer(42)) == "slept", f"request on the surviving child must succeed: {r!r}"

    # sessions keep their ids and work again on a replacement child
    for c in clients:
        r = c.call("whoami", {}, id_=43)
        assert r.status == 200, f"session {c.sid} after its child died: {r!r}"
        pid = int(result_text(r.answer(43)))
        assert pid != victim
    assert not pid_alive(victim)
    live = admin.children("fix")
    assert victim not in {ch["pid"] for ch in live}
    assert len(admin.sessions("fix")) == 10
    assert admin.pool("fix")["totals"]["crashes"] >= 1


# ---------------------------------------------------------------------------------------------
# 3. request timeout and client cancellation reach the child with the rewritten id
# ---------------------------------------------------------------------------------------------

def test_request_timeout_cancels_at_child_with_child_id(switchyard, tmp_path):
    rec = Recording(str(tmp_path / "rec.jsonl"))
    srv = recording_server(rec.path)
    srv["pool"] = shared(max_children=1, min_idle=1, request_timeout="1s", cancel_grace="30s")
    d, admin = pool_daemon(switchyard, {"rec": srv})
    c = McpHttp(d).must_initialize()
    r = c.call("hang", {}, id_="hang-1", timeout=15)
    assert r.status == 200, r
    a = r.answer()
    assert a.get("id") == "hang-1" and a.get("error", {}).get("code") == -32001, \
        f"timed out request: expected JSON-RPC error -32001 with id 'hang-1', got {a}"
    assert 0.8 <= r.elapsed < 4, f"request_timeout 1s, answered after {r.elapsed:.2f}s"
    calls = rec.tool_calls("hang")
    assert len(calls) == 1, calls
    child_id = calls[0]["id"]
    assert child_id != "hang-1", "the child must see a rewritten id"

    def cancelled():
        return [m for m in rec.msgs("notifications/cancelled")]

    got = wait_until(cancelled, 5, what="notifications/cancelled at the child")
    assert [m["params"]["requestId"] for m in got] == [child_id], \
        f"child must get notifications/cancelled with requestId={child_id!r} (its own id), got {got}"
    assert type(got[0]["params"]["requestId"]) is type(child_id)
    assert admin.pool("rec")["totals"]["timeouts"] >= 1


def test_client_cancel_reaches_child_rewritten(switchyard, tmp_path):
    rec = Recording(str(tmp_path / "rec.jsonl"))
    srv = recording_server(rec.path)
    srv["pool"] = shared(max_children=1, min_idle=1, request_timeout="30s")
    d, admin = pool_daemon(switchyard, {"rec": srv})
    other = McpHttp(d).must_initialize()
    c = McpHttp(d).must_initialize()
    # shift the child's id counter so client id 7 and the child's id cannot coincide by accident
    for k in range(3):
        assert result_text(other.call("echo", {"text": str(k)}, id_=7).answer(7)) == str(k)
    sp = c.start_post({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "hang", "arguments": {}}})
    try:
        assert sp.read_head(10) == 200
        calls = wait_until(lambda: rec.tool_calls("hang"), 5, what="hang call at the child")
        child_id = calls[0]["id"]
        c.notify("notifications/cancelled", {"requestId": 7, "reason": "user"})
        got = wait_until(lambda: rec.msgs("notifications/cancelled"), 5, what="notifications/cancelled at the child")
        assert [m["params"]["requestId"] for m in got] == [child_id], \
            f"client cancel of id 7 must reach the child as requestId={child_id!r}, got {got}"
        assert got[0]["params"].get("reason") == "user"
    finally:
        sp.close()
    # the session still works
    assert result_text(c.call("echo", {"text": "after"}, id_=7).answer(7)) == "after"


# ---------------------------------------------------------------------------------------------
# 6. queue overflow -> "server busy"
# ---------------------------------------------------------------------------------------------

def test_queue_overflow_server_busy(switchyard):
    srv = fastmcp_server()
    srv["pool"] = shared(max_children=1, max_sessions_per_child=1, min_idle=1, queue_timeout="1s")
    d, admin = pool_daemon(switchyard, {"fix": srv})
    first = McpHttp(d).must_initialize()
    second = McpHttp(d)
    r = second.initialize()
    a = r.answer()
    assert second.sid is None and "error" in a, f"second initialize must be refused: {r!r}"
    assert a["error"]["code"] == -32000 and "busy" in a["error"]["message"].lower(), \
        f"expected -32000 'server busy', got {a}"
    assert a.get("id") == 1, f"error must carry the request id: {a}"
    assert 0.8 <= r.elapsed < 4, f"queue_timeout 1s, refused after {r.elapsed:.2f}s"
    assert admin.pool("fix")["totals"]["busy_rejections"] >= 1
    assert first.delete().status == 200
    third = McpHttp(d)
    r3 = third.initialize()
    assert third.sid, f"after DELETE of the first session a new initialize must succeed: {r3!r}"
    assert result_text(third.call("echo", {"text": "hi"}).answer()) == "hi"


def test_waiting_session_gets_freed_slot(switchyard):
    srv = fastmcp_server()
    srv["pool"] = shared(max_children=1, max_sessions_per_child=1, min_idle=1, queue_timeout="10s")
    d, admin = pool_daemon(switchyard, {"fix": srv})
    first = McpHttp(d).must_initialize()
    res = {}
    waiter = McpHttp(d)
    t = threading.Thread(target=lambda: res.setdefault("r", waiter.initialize(timeout=20)))
    t.start()
    wait_until(lambda: admin.pool("fix")["waiting_sessions"] == 1, 5, what="a waiting session in /pools")
    t0 = time.monotonic()
    assert first.delete().status == 200
    t.join(15)
    assert waiter.sid, f"the queued initialize must succeed once the slot frees: {res.get('r')!r}"
    assert time.monotonic() - t0 < 5
    assert result_text(waiter.call("echo", {"text": "w"}).answer()) == "w"


# ---------------------------------------------------------------------------------------------
# 7. crash-loop guard
# ---------------------------------------------------------------------------------------------

def test_crash_loop_backoff(switchyard):
    srv = {"command": "/bin/sh", "args": ["-c", "exit 3"],
           "pool": shared(max_children=2, min_idle=1, restart_backoff="3s", restart_backoff_max="30s",
                          spawn_timeout="5s")}
    d, admin = pool_daemon(switchyard, {"bad": srv})
    c = McpHttp(d)
    r = c.initialize(timeout=15)
    a = r.answer()
    assert c.sid is None and "error" in a, f"initialize on a crash-looping server must fail: {r!r}"
    assert r.elapsed < 6, f"first failure took {r.elapsed:.1f}s"
    msg = a["error"]["message"]
    assert a["error"]["code"] == -32000, a
    assert "bad" in msg and ("fail" in msg.lower() or "exit" in msg.lower()), \
        f"error should name the server and say it fails: {msg!r}"
    p0 = admin.pool("bad")
    assert p0["backoff"]["failures"] > 0, p0
    spawns0 = p0["totals"]["spawns"]
    for k in range(6):
        r = McpHttp(d).initialize(timeout=10)
        a = r.answer()
        assert "error" in a and a["error"]["code"] == -32000, f"attempt {k}: {r!r}"
        assert r.elapsed < 1.0, f"attempt {k} during back-off should fail fast, took {r.elapsed:.2f}s"
    p1 = admin.pool("bad")
    assert p1["totals"]["spawns"] <= spawns0 + 1, f"spawning per request during back-off: {p0} -> {p1}"
    assert p1["backoff"]["failures"] > 0
    assert p1["backoff"]["retry_in_ms"] > 0 or p1["totals"]["spawns"] > spawns0, p1
    assert len(admin.children("bad")) <= 2
    d.assert_alive()


# ---------------------------------------------------------------------------------------------
# 8. dedicated mode: state does not leak; DELETE ends the child
# ---------------------------------------------------------------------------------------------

def test_dedicated_counter_no_leak(switchyard):
    srv = fastmcp_server()
    srv["pool"] = {"mode": "dedicated", "min_idle": 1}
    d, admin = pool_daemon(switchyard, {"fix": srv})
    a, b = McpHttp(d).must_initialize(), McpHttp(d).must_initialize()
    seen = {"a": [], "b": []}
    for _ in range(3):
        for tag, c in (("a", a), ("b", b)):
            seen[tag].append(int(result_text(c.call("counter", {}, id_=1).answer(1))))
    assert seen == {"a": [1, 2, 3], "b": [1, 2, 3]}, f"state leaked between dedicated sessions: {seen}"
    pa, pb = admin.session(a.sid)["pid"], admin.session(b.sid)["pid"]
    assert pa != pb and pa and pb
    assert {pa, pb} <= {ch["pid"] for ch in admin.children("fix")}
    assert a.delete().status == 200
    wait_until(lambda: not pid_alive(pa), 10, what=f"dedicated child {pa} to exit after DELETE")
    wait_until(lambda: pa not in {ch["pid"] for ch in admin.children("fix", live_only=False)}, 5,
               what="the child to leave /children")
    assert admin.session(a.sid) is None
    assert a.call("counter", {}, id_=2).status == 404
    assert int(result_text(b.call("counter", {}, id_=1).answer())) == 4
    assert pid_alive(pb)


# ---------------------------------------------------------------------------------------------
# children are killed by process group; none orphaned
# ---------------------------------------------------------------------------------------------

def test_shutdown_kills_child_process_groups(switchyard, tmp_path):
    # The child spawns a grandchild (sleep) in its own process group and waits; both must die on shutdown.
    pidfile = tmp_path / "grandchild.pid"
    script = (f"sleep 300 & echo $! > {pidfile}; exec {os.path.abspath(__import__('sys').executable)} "
              f"{os.path.join(os.path.dirname(__file__), '..', 'Fixtures', 'fastmcp_server.py')}")
    srv = {"command": "/bin/sh", "args": ["-c", script], "pool": shared(max_children=1, min_idle=1)}
    d, admin = pool_daemon(switchyard, {"fix": srv})
    c = McpHttp(d).must_initialize()
    assert result_text(c.call("echo", {"text": "ok"}).answer()) == "ok"
    child_pid = admin.children("fix")[0]["pid"]
    gpid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 5, what="grandchild pid"))
    try:
        assert pid_alive(gpid) and pid_alive(child_pid)
        assert d.terminate() == 0
        wait_until(lambda: not pid_alive(child_pid), 5, what="child to be gone after shutdown")
        wait_until(lambda: not pid_alive(gpid), 5, what="grandchild (same process group) to be gone after shutdown")
    finally:
        if pid_alive(gpid):
            os.kill(gpid, signal.SIGKILL)


def test_child_dying_right_after_initialize_is_backed_off(switchyard, tmp_path):
    """A child that answers initialize and then exits at once is a crash loop too: respawns must back off.

    (The window below measures a spawn rate; it is not used for synchronisation.)
    """
    from poolkit import recording_server
    srv = recording_server(str(tmp_path / "rec.jsonl"))
    srv["env"]["RECORD_EXIT_AFTER_INIT"] = "1"
    srv["pool"] = shared(max_children=2, min_idle=1, restart_backoff="1s", restart_backoff_max="30s")
    d, admin = pool_daemon(switchyard, {"rec": srv})
    c = McpHttp(d)
    c.initialize(timeout=15)
    if c.sid:
        r = c.call("echo", {"text": "x"}, timeout=10)
        assert "error" in r.answer(), r
    s0 = admin.pool("rec")["totals"]["spawns"]
    t0 = time.monotonic()
    time.sleep(2.0)
    p = admin.pool("rec")
    spawned = p["totals"]["spawns"] - s0
    assert spawned <= 4, (f"child exits right after initialize: {spawned} respawns in {time.monotonic() - t0:.1f}s "
                          f"(no back-off); pool: {p}")
    d.assert_alive()

"""Child pools, harder cases: id types across sessions, cancellation with duplicate ids, late answers
after a timeout, subscriptions replayed after a crash and released when a session ends, per-session log
levels, per-child in-flight limits, idle shrink, recycling by max_requests, dedicated crash.
"""

from __future__ import annotations

import json
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


def rec_daemon(switchyard, tmp_path, **pool):
    rec = Recording(str(tmp_path / "rec.jsonl"))
    srv = recording_server(rec.path)
    p = {"max_children": 1, "min_idle": 1}
    p.update(pool)
    srv["pool"] = shared(**p)
    d, admin = pool_daemon(switchyard, {"rec": srv})
    return d, admin, rec


def is_updated(uri):
    return lambda m: m.get("method") == "notifications/resources/updated" and m["params"]["uri"] == uri


def test_id_types_restored_exactly_across_sessions(switchyard):
    srv = fastmcp_server()
    srv["pool"] = shared(max_children=1, min_idle=1)
    d, admin = pool_daemon(switchyard, {"fix": srv})
    ids = [1, "1", 'x"y', 12345678901234, 0, -5, "", "\u00e9\U0001F600"]
    clients = [McpHttp(d).must_initialize() for _ in ids]

    def go(k):
        return clients[k].call("echo", {"text": f"t{k}"}, id_=ids[k])

    with ThreadPoolExecutor(len(ids)) as ex:
        rs = list(ex.map(go, range(len(ids))))
    for k, r in enumerate(rs):
        a = r.answer()
        assert a.get("id") == ids[k] and type(a["id"]) is type(ids[k]), f"id {ids[k]!r} came back as {a.get('id')!r}"
        assert result_text(a) == f"t{k}"


def test_cancel_with_duplicate_ids_only_cancels_own(switchyard, tmp_path):
    d, admin, rec = rec_daemon(switchyard, tmp_path, request_timeout="60s")
    A, B, C = (McpHttp(d).must_initialize() for _ in range(3))
    hang = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "hang", "arguments": {}}}
    spa = A.start_post(hang)
    spb = None
    try:
        wait_until(lambda: len(rec.tool_calls("hang")) == 1, 5, what="A's hang at the child")
        spb = B.start_post(hang)
        wait_until(lambda: len(rec.tool_calls("hang")) == 2, 5, what="B's hang at the child")
        a_id, b_id = [m["id"] for m in rec.tool_calls("hang")]
        assert a_id != b_id
        A.notify("notifications/cancelled", {"requestId": 7})
        got = wait_until(lambda: rec.msgs("notifications/cancelled"), 5, what="cancel at the child")
        assert result_text(C.call("echo", {"text": "barrier"}).answer()) == "barrier"
        got = rec.msgs("notifications/cancelled")
        assert [m["params"]["requestId"] for m in got] == [a_id], \
            f"A cancelling its id 7 must cancel only child id {a_id!r} (B's is {b_id!r}); child got {got}"
        # an id nobody has in flight: dropped, not forwarded
        C.notify("notifications/cancelled", {"requestId": 12345})
        assert result_text(C.call("echo", {"text": "barrier2"}).answer()) == "barrier2"
        assert len(rec.msgs("notifications/cancelled")) == 1, \
            f"cancel for an unknown id must not reach the child: {rec.msgs('notifications/cancelled')}"
    finally:
        spa.close()
        if spb:
            spb.close()


def test_late_answer_after_timeout_is_swallowed(switchyard, tmp_path):
    d, admin, rec = rec_daemon(switchyard, tmp_path, request_timeout="1s", cancel_grace="30s")
    c = McpHttp(d).must_initialize()
    # no progress token: the child just sleeps 2.5 s and then answers "late" (after the gateway timed it out)
    r = c.call("progress", {"steps": 1, "delay": 2.5, "tag": "late"}, id_=5, timeout=15)
    a = r.answer()
    assert a.get("id") == 5 and a.get("error", {}).get("code") == -32001, f"expected -32001, got {r!r}"
    r2 = c.call("echo", {"text": "fresh"}, id_=5, timeout=15)
    a2 = r2.answer()
    assert a2.get("id") == 5 and result_text(a2) == "fresh", \
        f"the same client id reused after a timeout must get its own answer, not the late one: {r2!r}"
    assert "late" not in r2.body.decode(), r2


def test_subscriptions_replayed_after_child_crash(switchyard, tmp_path):
    d, admin, rec = rec_daemon(switchyard, tmp_path)
    X = "file:///replayed"
    A = McpHttp(d).must_initialize()
    sid = A.sid
    g = A.open_get()
    try:
        r = A.request("resources/subscribe", {"uri": X}, id_=1)
        assert r.answer(1).get("result") == {}, r
        old = int(result_text(A.call("whoami", {}, id_=2).answer()))
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: not pid_alive(old), 5, what="killed child gone")
        new = int(result_text(wait_until(lambda: _try_whoami(A), 15, what="session working again").answer()))
        assert new != old and A.sid == sid
        subs = wait_until(lambda: [m for m in rec.msgs("resources/subscribe", pid=new) if m["params"]["uri"] == X],
                          5, what=f"resources/subscribe {X} replayed on the replacement child {new}")
        assert len(subs) == 1, subs
        assert result_text(A.call("touch", {"uri": X}, id_=4).answer()) == f"touched {X}"
        g.wait_message(is_updated(X), 10)
    finally:
        g.close()


def _try_whoami(c):
    r = c.call("whoami", {}, id_=3)
    if r.status == 200 and "result" in r.answer():
        return r
    return None


def test_session_end_cancels_inflight_and_releases_subscriptions(switchyard, tmp_path):
    d, admin, rec = rec_daemon(switchyard, tmp_path, request_timeout="60s")
    X = "file:///only-a"
    A, B = McpHttp(d).must_initialize(), McpHttp(d).must_initialize()
    assert A.request("resources/subscribe", {"uri": X}, id_=1).answer(1).get("result") == {}
    sp = A.start_post({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "hang", "arguments": {}}})
    try:
        child_id = wait_until(lambda: rec.tool_calls("hang"), 5, what="hang at the child")[0]["id"]
        assert A.delete().status == 200
        got = wait_until(lambda: rec.msgs("notifications/cancelled"), 5,
                         what="notifications/cancelled at the child after DELETE")
        assert [m["params"]["requestId"] for m in got] == [child_id], got
        assert result_text(B.call("echo", {"text": "barrier"}).answer()) == "barrier"
        unsubs = [m for m in rec.msgs("resources/unsubscribe") if m["params"]["uri"] == X]
        assert len(unsubs) == 1, \
            f"the last subscriber of {X} ended its session; the child should get one resources/unsubscribe, got {unsubs}"
    finally:
        sp.close()


def test_log_level_per_session(switchyard, tmp_path):
    d, admin, rec = rec_daemon(switchyard, tmp_path)
    A, B = McpHttp(d).must_initialize(), McpHttp(d).must_initialize()
    ga, gb = A.open_get(), B.open_get()
    try:
        assert A.request("logging/setLevel", {"level": "error"}, id_=1).answer(1).get("result") == {}
        assert B.request("logging/setLevel", {"level": "debug"}, id_=1).answer(1).get("result") == {}
        r1 = B.call("log", {"level": "info", "text": "info-1"}, id_=2)
        r2 = B.call("log", {"level": "error", "text": "error-2"}, id_=3)
        is_msg = lambda text: (lambda m: m.get("method") == "notifications/message" and m["params"]["data"] == text)  # noqa: E731
        ga.wait_message(is_msg("error-2"), 10)
        a_data = [m["params"]["data"] for m in ga.messages if m.get("method") == "notifications/message"]
        assert a_data == ["error-2"], f"A (level error) must not get the info message: {a_data}"
        b_seen = [m["params"]["data"] for m in gb.messages + r1.notifications() + r2.notifications()
                  if m.get("method") == "notifications/message"]
        if "error-2" not in b_seen:
            gb.wait_message(is_msg("error-2"), 10)
            b_seen = [m["params"]["data"] for m in gb.messages + r1.notifications() + r2.notifications()
                      if m.get("method") == "notifications/message"]
        assert sorted(b_seen) == ["error-2", "info-1"], f"B (level debug) must get both: {b_seen}"
    finally:
        ga.close()
        gb.close()


def test_inflight_limit_queue_timeout_busy(switchyard, tmp_path):
    d, admin, rec = rec_daemon(switchyard, tmp_path, max_inflight_per_child=1, queue_timeout="1s")
    A, B = McpHttp(d).must_initialize(), McpHttp(d).must_initialize()
    res = {}
    t = threading.Thread(target=lambda: res.setdefault("a", A.call("progress", {"steps": 1, "delay": 3, "tag": "A"},
                                                                    id_=1, timeout=20)))
    t.start()
    wait_until(lambda: rec.tool_calls("progress"), 5, what="A's slow call at the child")
    r = B.call("echo", {"text": "b"}, id_=1, timeout=10)
    a = r.answer()
    assert "error" in a and a["error"]["code"] == -32000 and "busy" in a["error"]["message"].lower(), \
        f"a request waiting longer than queue_timeout for the in-flight slot must get -32000 busy: {r!r}"
    assert 0.8 <= r.elapsed < 2.9, f"busy after {r.elapsed:.2f}s (queue_timeout 1s, A holds the slot ~3s)"
    t.join(20)
    assert result_text(res["a"].answer(1)) == "A"
    assert result_text(B.call("echo", {"text": "b2"}, id_=2).answer()) == "b2"


def test_idle_children_above_min_idle_stop(switchyard):
    srv = fastmcp_server()
    srv["pool"] = shared(max_children=3, max_sessions_per_child=1, min_idle=1, idle_timeout="500ms")
    d, admin = pool_daemon(switchyard, {"fix": srv})
    cs = [McpHttp(d).must_initialize() for _ in range(3)]
    assert len(admin.children("fix")) == 3, admin.children("fix")
    for c in cs:
        assert c.delete().status == 200
    wait_until(lambda: len(admin.children("fix", live_only=False)) == 1, 8,
               what="shared children above min_idle to stop after idle_timeout")


def test_recycle_by_max_requests_under_continuous_load(switchyard):
    """Recycling drains: under continuous load a draining child takes no new requests, is replaced, and no
    request fails."""
    srv = fastmcp_server()
    srv["pool"] = shared(max_children=2, min_idle=1, max_requests=3)
    d, admin = pool_daemon(switchyard, {"fix": srv})
    cs = [McpHttp(d).must_initialize() for _ in range(2)]
    stop = threading.Event()
    failures, answered = [], [0]

    def load(k):
        n = 0
        if k == 1:
            cs[k].call("sleep", {"seconds": 0.15, "steps": 0}, id_=0)  # stagger: always one request in flight
        while not stop.is_set():
            n += 1
            r = cs[k].call("sleep", {"seconds": 0.3, "steps": 0}, id_=n, timeout=30)
            try:
                assert result_text(r.answer(n)) == "slept"
                answered[0] += 1
            except AssertionError as e:
                failures.append(f"session {k} request {n}: {e}")

    ts = [threading.Thread(target=load, args=(k,)) for k in range(2)]
    [t.start() for t in ts]
    draining_served: dict[int, int] = {}
    grew = []
    try:
        def recycled():
            for ch in admin.children("fix", live_only=False):
                if ch["state"] == "draining":
                    first = draining_served.setdefault(ch["pid"], ch["served"])
                    if ch["served"] > first:
                        grew.append((ch["pid"], first, ch["served"]))
            return admin.pool("fix")["totals"]["recycles"] >= 1
        try:
            wait_until(recycled, 8, interval=0.1, what="a recycle under continuous load")
        except AssertionError:
            raise AssertionError(f"max_requests=3 with two sessions always busy: no child recycled within 8s; "
                                 f"children {admin.children('fix', live_only=False)}; "
                                 f"draining child kept receiving requests (pid, served at drain, later): {grew[:1] + grew[-1:]}")
    finally:
        stop.set()
        [t.join(30) for t in ts]
    assert not failures, failures
    assert not grew, f"a draining child was given new requests (pid, served when draining began, later): {grew[:1] + grew[-1:]}"


def test_max_requests_is_a_cap(switchyard):
    """`max_requests: 3`: no child should answer more than 3 requests."""
    srv = fastmcp_server()
    srv["pool"] = shared(max_children=2, min_idle=1, max_requests=3)
    d, admin = pool_daemon(switchyard, {"fix": srv})
    c = McpHttp(d).must_initialize()
    seq = [int(result_text(c.call("whoami", {}, id_=k).answer())) for k in range(8)]
    counts = {p: seq.count(p) for p in dict.fromkeys(seq)}
    assert max(counts.values()) <= 3, \
        f"max_requests=3 but a child served more: whoami sequence {seq} (requests per pid {counts})"


def test_dedicated_child_crash_ends_session(switchyard):
    srv = fastmcp_server()
    srv["pool"] = {"mode": "dedicated", "min_idle": 1}
    d, admin = pool_daemon(switchyard, {"fix": srv})
    c = McpHttp(d).must_initialize()
    r = c.call("crash", {}, id_=1, timeout=10)
    a = r.answer()
    assert "error" in a and a["error"]["code"] == -32000 and a["id"] == 1, r
    assert r.elapsed < 3
    r2 = c.call("echo", {"text": "x"}, id_=2)
    assert r2.status == 404, f"dedicated session whose child exited must end: {r2!r}"
    assert "exit" in r2.body.decode().lower(), r2


def test_duplicate_ids_in_one_session_and_batch(switchyard):
    srv = fastmcp_server()
    srv["pool"] = shared(max_children=1, min_idle=1)
    d, admin = pool_daemon(switchyard, {"fix": srv})
    c = McpHttp(d).must_initialize()
    with ThreadPoolExecutor(4) as ex:
        rs = list(ex.map(lambda k: (k, c.call("sleep", {"seconds": 0.2, "steps": 0}, id_=1) if k == 0
                                    else c.call("echo", {"text": f"same-{k}"}, id_=1)), range(4)))
    for k, r in rs:
        assert r.answer().get("id") == 1
        assert result_text(r.answer()) == ("slept" if k == 0 else f"same-{k}"), f"request {k}: {r!r}"
    b = McpHttp(d)
    r = b.initialize(proto="2025-03-26")
    assert b.sid, r
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "b1"}}},
             {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "b2"}}}]
    r = b.post(batch)
    assert r.status == 200, r
    got = sorted(result_text(m) for m in r.messages if m.get("id") == 1 and "result" in m)
    assert got == ["b1", "b2"], f"batch with a duplicated id: {r!r}"


@pytest.mark.parametrize("proto", ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"])
def test_initialize_version_echo_shared(switchyard, proto):
    srv = fastmcp_server()
    srv["pool"] = shared(max_children=1, min_idle=1)
    d, admin = pool_daemon(switchyard, {"fix": srv})
    c = McpHttp(d)
    r = c.initialize(proto=proto)
    assert c.sid, r
    assert c.init_result["protocolVersion"] == proto, f"client asked {proto}, got {c.init_result['protocolVersion']}"
    assert result_text(c.call("echo", {"text": proto}).answer()) == proto


def test_subscribe_refcount_is_per_session(switchyard, tmp_path):
    d, admin, rec = rec_daemon(switchyard, tmp_path)
    X = "file:///set"
    A, B, C = (McpHttp(d).must_initialize() for _ in range(3))

    def ok(c, method, id_):
        r = c.request(method, {"uri": X}, id_=id_)
        assert r.status == 200 and r.answer(id_).get("result") == {}, f"{method}: {r!r}"

    def barrier():
        assert result_text(C.call("echo", {"text": "b"}, id_=50).answer()) == "b"

    ok(A, "resources/subscribe", 1)
    ok(A, "resources/subscribe", 2)       # the same session again: no second reference
    # B never subscribed: its unsubscribe must not release A's subscription
    r = B.request("resources/unsubscribe", {"uri": X}, id_=3)
    assert r.status == 200, r
    barrier()
    assert rec.msgs("resources/unsubscribe") == [], \
        f"an unsubscribe from a session that never subscribed reached the child: {rec.msgs('resources/unsubscribe')}"
    g = A.open_get()
    try:
        C.call("touch", {"uri": X}, id_=4)
        g.wait_message(is_updated(X), 10)
    finally:
        g.close()
    ok(A, "resources/unsubscribe", 5)     # one unsubscribe ends A's (single) subscription
    barrier()
    assert len(rec.msgs("resources/unsubscribe")) == 1, \
        f"A subscribed twice, unsubscribed once -> the child should get one unsubscribe: {rec.msgs('resources/unsubscribe')}"
    assert len(rec.msgs("resources/subscribe")) == 1, rec.msgs("resources/subscribe")


def test_concurrent_first_subscribes_reach_child_once(switchyard, tmp_path):
    d, admin, rec = rec_daemon(switchyard, tmp_path)
    X = "file:///race"
    cs = [McpHttp(d).must_initialize() for _ in range(12)]
    bar = threading.Barrier(len(cs), timeout=10)

    def sub(c):
        bar.wait()
        return c.request("resources/subscribe", {"uri": X}, id_=1)

    with ThreadPoolExecutor(len(cs)) as ex:
        rs = list(ex.map(sub, cs))
    for r in rs:
        assert r.status == 200 and r.answer(1).get("result") == {}, r
    assert result_text(cs[0].call("echo", {"text": "b"}).answer()) == "b"
    subs = rec.msgs("resources/subscribe")
    assert len(subs) == 1, f"12 concurrent first subscribes: the child must get exactly one, got {len(subs)}"
    gs = [c.open_get() for c in cs]
    try:
        cs[0].call("touch", {"uri": X}, id_=2)
        for g in gs:
            g.wait_message(is_updated(X), 10)
    finally:
        for g in gs:
            g.close()


def test_abandoned_waiter_does_not_take_the_slot(switchyard):
    """A queued initialize whose client hung up must not consume the slot when it frees."""
    import socket as _s
    srv = fastmcp_server()
    srv["pool"] = shared(max_children=1, max_sessions_per_child=1, min_idle=1, queue_timeout="4s")
    d, admin = pool_daemon(switchyard, {"fix": srv})
    first = McpHttp(d).must_initialize()
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                       "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                  "clientInfo": {"name": "ghost", "version": "0"}}}).encode()
    sock = _s.create_connection((d.host, d.port), timeout=5)
    sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Accept: application/json, text/event-stream\r\nContent-Length: " + str(len(body)).encode()
                 + b"\r\n\r\n" + body)
    wait_until(lambda: admin.pool("fix")["waiting_sessions"] == 1, 5, what="the ghost initialize to be queued")
    sock.close()
    assert first.delete().status == 200
    third = McpHttp(d)
    r = third.initialize(timeout=15)
    assert third.sid, (f"the slot went to a client that had hung up: a new initialize got {r!r}; "
                       f"sessions now {admin.sessions('fix')}")
    assert r.elapsed < 3, f"new initialize waited {r.elapsed:.1f}s"

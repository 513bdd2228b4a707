"""Shared child pools: many sessions multiplexed on few children (ids, progress tokens, subscriptions,
capabilities, local answers). See the pool semantics in docs and /work/shared/mcp-transports.md §6.2.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import MCP_SERVER_TIME, mcp_session, run_async, text_of, wait_until
from poolkit import (
    McpHttp, Recording, demo_server, fastmcp_server, pool_daemon, recording_server, result_text,
)


def shared(**kw) -> dict:
    p = {"mode": "shared"}
    p.update(kw)
    return p


# ---------------------------------------------------------------------------------------------
# 1. 200 sessions with colliding ids on 2 children
# ---------------------------------------------------------------------------------------------

def test_200_sessions_colliding_ids_two_children(switchyard):
    srv = demo_server()
    srv["pool"] = shared(max_children=2, max_sessions_per_child=100, min_idle=2)
    d, admin = pool_daemon(switchyard, {"demo": srv})
    n = 200
    clients = [McpHttp(d) for _ in range(n)]

    with ThreadPoolExecutor(max_workers=64) as ex:
        list(ex.map(lambda c: c.must_initialize(), clients))
    sids = {c.sid for c in clients}
    assert len(sids) == n, "session ids must be distinct"

    barrier = threading.Barrier(n, timeout=30)

    def call(k):
        barrier.wait()
        r = clients[k].call("echo", {"text": f"session-{k}-payload"}, id_=1)
        return k, r

    with ThreadPoolExecutor(max_workers=n) as ex:
        results = list(ex.map(call, range(n)))
    bad = []
    for k, r in results:
        try:
            assert r.status == 200, r
            a = r.answer()
            assert a.get("id") == 1 and isinstance(a["id"], int), f"id not restored: {a}"
            assert result_text(a) == f"session-{k}-payload", f"got another session's answer: {a}"
        except AssertionError as e:
            bad.append(f"session {k}: {e}")
    assert not bad, f"{len(bad)} of {n} answers wrong; first: {bad[:5]}"

    kids = admin.children("demo")
    assert len(kids) == 2, f"expected exactly 2 children, admin /children: {kids}"
    assert sorted(c["sessions"] for c in kids) == [100, 100], f"least-loaded placement: {kids}"
    assert admin.pool("demo")["sessions"] == n
    assert len(admin.sessions("demo")) == n
    pids = {s["pid"] for s in admin.sessions("demo")}
    assert pids == {c["pid"] for c in kids}, f"sessions on unknown children: {pids} vs {kids}"


# ---------------------------------------------------------------------------------------------
# 4. progress: same token from two sessions on one child
# ---------------------------------------------------------------------------------------------

def test_progress_same_token_two_sessions_fastmcp(switchyard):
    srv = fastmcp_server()
    srv["pool"] = shared(max_children=1, min_idle=1)
    d, admin = pool_daemon(switchyard, {"fix": srv})
    a, b = McpHttp(d).must_initialize(), McpHttp(d).must_initialize()
    steps = {"A": 3, "B": 5}
    out = {}

    def run(tag, c):
        out[tag] = c.call("sleep", {"seconds": 0.6, "steps": steps[tag]}, id_=0, meta={"progressToken": 0})

    ts = [threading.Thread(target=run, args=(t, c)) for t, c in (("A", a), ("B", b))]
    [t.start() for t in ts]
    [t.join(30) for t in ts]
    kids = admin.children("fix")
    assert len(kids) == 1 and kids[0]["sessions"] == 2, f"both sessions must share one child: {kids}"
    for tag in ("A", "B"):
        r = out[tag]
        assert r.status == 200 and r.content_type.startswith("text/event-stream"), r
        assert result_text(r.answer(0)) == "slept"
        prog = [m for m in r.notifications() if m["method"] == "notifications/progress"]
        toks = [m["params"]["progressToken"] for m in prog]
        assert toks == [0] * steps[tag], f"session {tag}: tokens must be the original 0 (int): {toks} in {r!r}"
        assert all(type(t) is int for t in toks)
        # each session sees exactly its own progress sequence (A has total 3, B total 5)
        assert [(m["params"]["progress"], m["params"].get("total")) for m in prog] == \
            [(i, steps[tag]) for i in range(1, steps[tag] + 1)], f"session {tag} got foreign progress: {prog}"


def test_progress_token_rewritten_at_child_and_restored(switchyard, tmp_path):
    rec = Recording(str(tmp_path / "rec.jsonl"))
    srv = recording_server(rec.path)
    srv["pool"] = shared(max_children=1, min_idle=1)
    d, admin = pool_daemon(switchyard, {"rec": srv})
    a, b = McpHttp(d).must_initialize(), McpHttp(d).must_initialize()
    ra = a.call("progress", {"steps": 2, "tag": "A"}, id_=0, meta={"progressToken": 0})
    rb = b.call("progress", {"steps": 2, "tag": "B"}, id_=0, meta={"progressToken": 0})
    seen = {}
    for tag, r in (("A", ra), ("B", rb)):
        assert result_text(r.answer(0)) == tag, r
        prog = [m for m in r.notifications() if m["method"] == "notifications/progress"]
        assert len(prog) == 2, f"{tag}: {r!r}"
        for m in prog:
            assert m["params"]["progressToken"] == 0 and type(m["params"]["progressToken"]) is int, m
            info = json.loads(m["params"]["message"])
            assert info["tag"] == tag, f"session {tag} got the other session's progress: {m}"
            seen[tag] = info["seen"]
    calls = rec.tool_calls("progress")
    child_tokens = [c["params"]["_meta"]["progressToken"] for c in calls]
    assert len(child_tokens) == 2 and child_tokens[0] != child_tokens[1], \
        f"the child must see distinct (rewritten) tokens, saw {child_tokens}"
    assert seen["A"] != seen["B"]


# ---------------------------------------------------------------------------------------------
# 5. resources/subscribe fan-out and reference counting
# ---------------------------------------------------------------------------------------------

def _updates(stream, pred_uri, timeout=10.0):
    return stream.wait_message(lambda m: m.get("method") == "notifications/resources/updated"
                               and m["params"]["uri"] == pred_uri, timeout)


def test_subscribe_fanout_and_refcount(switchyard, tmp_path):
    rec = Recording(str(tmp_path / "rec.jsonl"))
    srv = recording_server(rec.path)
    srv["pool"] = shared(max_children=1, min_idle=1)
    d, admin = pool_daemon(switchyard, {"rec": srv})
    X = "file:///x"
    A, B, C = (McpHttp(d).must_initialize() for _ in range(3))
    ga, gb, gc = A.open_get(), B.open_get(), C.open_get()
    try:
        def sub(c, uri, method="resources/subscribe", id_=1):
            r = c.request(method, {"uri": uri}, id_=id_)
            assert r.status == 200 and r.answer(id_).get("result") == {}, f"{method} {uri}: {r!r}"

        def barrier():  # anything forwarded before this call is recorded before it
            assert result_text(C.call("echo", {"text": "barrier"}, id_=99).answer()) == "barrier"

        sub(A, X)
        sub(B, X, id_="b1")
        barrier()
        subs = [m for m in rec.msgs("resources/subscribe") if m["params"]["uri"] == X]
        assert len(subs) == 1, f"exactly one resources/subscribe for {X} must reach the child, got {subs}"

        # touch X (from C, who is not subscribed), then a marker only C is subscribed to
        sub(C, "marker://c1")
        assert result_text(C.call("touch", {"uri": X}, id_=5).answer(5)) == f"touched {X}"
        assert result_text(C.call("touch", {"uri": "marker://c1"}, id_=6).answer(6)) == "touched marker://c1"
        _updates(ga, X)
        _updates(gb, X)
        _updates(gc, "marker://c1")
        c_uris = [m["params"]["uri"] for m in gc.messages if m.get("method") == "notifications/resources/updated"]
        assert X not in c_uris, f"C is not subscribed to {X} but got its update: {gc.messages}"
        for s in (ga, gb):
            assert [m for m in s.messages if m.get("method") == "notifications/resources/updated"
                    and m["params"]["uri"] == "marker://c1"] == [], "marker update leaked to A/B"

        # A unsubscribes: refcount 2 -> 1, nothing reaches the child
        sub(A, X, "resources/unsubscribe", id_=7)
        barrier()
        assert rec.msgs("resources/unsubscribe") == [], \
            f"unsubscribe with another session still subscribed must not reach the child: {rec.msgs('resources/unsubscribe')}"
        # A no longer gets X; B does (ordering marker for A)
        sub(A, "marker://a1", id_=8)
        C.call("touch", {"uri": X}, id_=9)
        C.call("touch", {"uri": "marker://a1"}, id_=10)
        _updates(gb, X)
        _updates(ga, "marker://a1")
        a_x = [m for m in ga.messages if m.get("method") == "notifications/resources/updated" and m["params"]["uri"] == X]
        assert len(a_x) == 1, f"A got {len(a_x)} updates for {X}; after unsubscribing it must get none more"

        # B unsubscribes: last one -> exactly one unsubscribe reaches the child
        sub(B, X, "resources/unsubscribe", id_=11)
        barrier()
        unsubs = [m for m in rec.msgs("resources/unsubscribe") if m["params"]["uri"] == X]
        assert len(unsubs) == 1, f"exactly one resources/unsubscribe for {X} expected, got {unsubs}"
    finally:
        for s in (ga, gb, gc):
            s.close()


def test_list_changed_broadcast_to_all_sessions(switchyard, tmp_path):
    rec = Recording(str(tmp_path / "rec.jsonl"))
    srv = recording_server(rec.path)
    srv["pool"] = shared(max_children=1, min_idle=1)
    d, admin = pool_daemon(switchyard, {"rec": srv})
    cs = [McpHttp(d).must_initialize() for _ in range(3)]
    gs = [c.open_get() for c in cs]
    try:
        assert result_text(cs[0].call("list_changed", {}, id_=1).answer()) == "changed"
        for k, g in enumerate(gs):
            g.wait_message(lambda m: m.get("method") == "notifications/tools/list_changed", 10)
    finally:
        for g in gs:
            g.close()


# ---------------------------------------------------------------------------------------------
# 10. capabilities minus tasks; ping / logging/setLevel / initialize answered locally
# ---------------------------------------------------------------------------------------------

def test_capabilities_without_tasks_and_local_answers(switchyard, tmp_path):
    rec = Recording(str(tmp_path / "rec.jsonl"))
    srv = recording_server(rec.path)
    srv["pool"] = shared(max_children=1, min_idle=1)
    d, admin = pool_daemon(switchyard, {"rec": srv})
    a = McpHttp(d).must_initialize()
    b = McpHttp(d).must_initialize()
    for c in (a, b):
        caps = c.init_result["capabilities"]
        assert "tasks" not in caps, f"a shared pool must not advertise tasks: {caps}"
        assert "tools" in caps and caps.get("resources", {}).get("subscribe") is True, caps
        assert "logging" in caps, caps
        assert c.init_result["serverInfo"]["name"], c.init_result
    r = a.request("ping", None, id_="p-1")
    assert r.status == 200 and r.answer("p-1").get("result") == {}, r
    r = a.request("logging/setLevel", {"level": "debug"}, id_=3)
    assert r.status == 200 and r.answer(3).get("result") == {}, r
    # barrier: the child handles lines in order, so anything forwarded before this is recorded
    assert result_text(a.call("echo", {"text": "x"}, id_=4).answer()) == "x"
    assert rec.msgs("ping") == [], f"client ping reached the child: {rec.msgs('ping')}"
    assert rec.msgs("logging/setLevel") == [], f"logging/setLevel reached the child: {rec.msgs('logging/setLevel')}"
    assert len(rec.msgs("initialize")) == 1, f"one child, one initialize: {rec.msgs('initialize')}"
    assert len(rec.msgs("notifications/initialized")) == 1, \
        f"clients' notifications/initialized must be swallowed: {rec.msgs('notifications/initialized')}"


# ---------------------------------------------------------------------------------------------
# 9. real mcp-server-time + official SDK, 10 concurrent sessions on one child
# ---------------------------------------------------------------------------------------------

def test_mcp_server_time_sdk_ten_sessions_one_child(switchyard):
    import anyio

    srv = {"command": MCP_SERVER_TIME, "pool": shared(max_children=4, max_sessions_per_child=1000, min_idle=1)}
    d, admin = pool_daemon(switchyard, {"time": srv})
    n = 10
    ready = []
    results: dict[int, str] = {}
    snapshot = {}

    async def main():
        release = anyio.Event()
        all_ready = anyio.Event()

        async def one(k):
            async with mcp_session(d.url) as (s, get_sid):
                res = await s.call_tool("get_current_time", {"timezone": "UTC"})
                results[k] = text_of(res)
                ready.append(get_sid())
                if len(ready) == n:
                    all_ready.set()
                await release.wait()

        async def watcher():
            await all_ready.wait()
            snapshot["children"] = await anyio.to_thread.run_sync(lambda: admin.children("time"))
            snapshot["pool"] = await anyio.to_thread.run_sync(lambda: admin.pool("time"))
            release.set()

        async with anyio.create_task_group() as tg:
            for k in range(n):
                tg.start_soon(one, k)
            tg.start_soon(watcher)

    run_async(main, timeout=60)
    assert len(results) == n
    for k, t in results.items():
        assert '"timezone": "UTC"' in t or '"timezone":"UTC"' in t, f"session {k}: {t}"
    assert len(set(ready)) == n
    assert len(snapshot["children"]) == 1, f"expected 1 shared child: {snapshot['children']}"
    assert snapshot["children"][0]["sessions"] == n, snapshot
    assert snapshot["pool"]["sessions"] == n, snapshot["pool"]

"""Switchyard behind the reverse proxies it ships snippets for (deploy/nginx.conf, deploy/haproxy.cfg).

Real nginx and HAProxy (Debian packages; skipped when not installed) run on free loopback ports with
configs generated from the shipped snippets (see proxykit.py), in front of real Switchyard daemons:

  nginx    -> one gateway: official SDK clients over Streamable HTTP (/mcp) and legacy SSE (/sse +
              /messages), progress streamed incrementally (not buffered), `: keepalive` comments passed on.
  HAProxy  -> two replicas: stickiness on Mcp-Session-Id keeps every request of a session on the replica
              that issued it (the other replica answers 404), `option httpchk GET /healthz` marks both up
              and takes a stopped replica out, and legacy SSE needs its own affinity.
"""

from __future__ import annotations

import asyncio
import re
import time
from types import SimpleNamespace

import pytest

import proxykit
from conftest import (
    FIXTURE_CMD, LegacyClient, RawSSE, mcp_session, post, raw_initialize, run_async, sse_session, text_of,
    wait_until,
)

SID_RE = re.compile(r"^[0-9a-f]{32}$")
SESSION_OPENED_RE = re.compile(r"(?:^|\s)msg=\"?session_opened\"?\s.*?\bsession=([0-9a-f]{32})\b")


# ---------------------------------------------------------------------------------------------
# Fixtures: every proxy is stopped at teardown, before the gateways (which depend on `switchyard`)
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def nginx(switchyard):
    """Factory: nginx(daemon) -> proxykit.Nginx forwarding /mcp, /sse, /messages to that daemon."""
    proxykit.require(proxykit.NGINX_BIN, "nginx")
    started: list[proxykit.Nginx] = []

    def factory(daemon) -> proxykit.Nginx:
        n = proxykit.Nginx(daemon.port, daemon.host)
        started.append(n)
        return n

    yield factory
    for n in started:
        n.close()


@pytest.fixture
def replicas(switchyard):
    """Two demo-server gateways behind one HAProxy: (haproxy, [d1, d2])."""
    proxykit.require(proxykit.HAPROXY_BIN, "haproxy")
    d1, d2 = switchyard(), switchyard()
    h = proxykit.HAProxy([(d1.host, d1.port), (d2.host, d2.port)])
    try:
        yield h, [d1, d2]
    finally:
        h.close()


def sessions_opened(daemon) -> set[str]:
    return {m.group(1) for ln in daemon.log_lines() if (m := SESSION_OPENED_RE.search(ln))}


def owner_of(sid: str, daemons) -> int:
    """Index of the replica whose log shows `sid` opened (exactly one must)."""
    owners = [i for i, d in enumerate(daemons) if sid in sessions_opened(d)]
    assert len(owners) == 1, f"session {sid} opened on replicas {owners} (expected exactly one)"
    return owners[0]


def echo_call(id_: int, text: str) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": text}}}


def wait_servers_checked_up(h: proxykit.HAProxy, names=("sy1", "sy2"), backend="switchyard", timeout=10.0):
    def ok():
        st = h.servers_stat(backend)
        good = all(n in st and st[n]["status"] == "UP" and st[n]["check_status"] == "L7OK"
                   and st[n]["check_code"] == "200" for n in names)
        return st if good else None

    try:
        return wait_until(ok, timeout, interval=0.1, what=f"HAProxy to check {names} up via GET /healthz")
    except AssertionError:
        st = h.servers_stat(backend)
        raise AssertionError(f"health checks not L7OK/200: "
                             f"{ {k: (v['status'], v['check_status'], v['check_code']) for k, v in st.items()} }; "
                             f"haproxy output:\n{h.output()}")


# ---------------------------------------------------------------------------------------------
# nginx
# ---------------------------------------------------------------------------------------------

def test_nginx_sdk_streamable_http_and_legacy_sse(switchyard, nginx):
    d = switchyard()  # the bundled demo server
    n = nginx(d)

    async def go():
        async with mcp_session(n.url) as (s, get_id):
            tools = {t.name for t in (await s.list_tools()).tools}
            assert {"echo", "add", "sleep"} <= tools, tools
            texts = [text_of(await s.call_tool("echo", {"text": f"via nginx {i} ✓"})) for i in range(3)]
            http_sid = get_id()
        async with sse_session(n.base + "/sse") as (s, info):
            legacy = text_of(await s.call_tool("echo", {"text": "legacy via nginx"}))
            legacy_sid = info.get("session_id")
        return texts, http_sid, legacy, legacy_sid

    texts, http_sid, legacy, legacy_sid = run_async(go, timeout=40)
    assert texts == [f"via nginx {i} ✓" for i in range(3)]
    assert legacy == "legacy via nginx"
    assert SID_RE.match(http_sid or ""), http_sid
    assert SID_RE.match(legacy_sid or ""), legacy_sid
    # both sessions really went through to this gateway
    assert {http_sid, legacy_sid} <= sessions_opened(d), d.log_tail()
    assert "/mcp" in (n.tmp / "access.log").read_text() and "/messages?sessionId=" in (n.tmp / "access.log").read_text()
    assert n.alive(), n.extra_log()
    d.assert_alive()


def test_nginx_streams_progress_incrementally(switchyard, nginx):
    """Progress notifications reach the client as they are sent, not in one lump with the result."""
    d = switchyard("--spares", "2", child=FIXTURE_CMD)
    n = nginx(d)
    seconds, steps = 3.0, 6  # one progress every 0.5 s

    async def call(open_session, url):
        arrivals: list[tuple[float, float]] = []

        async def on_progress(progress, total, message):
            arrivals.append((time.monotonic(), progress))

        async with open_session(url) as (s, _):
            t0 = time.monotonic()
            res = await s.call_tool("sleep", {"seconds": seconds, "steps": steps}, progress_callback=on_progress)
            t_result = time.monotonic()
            assert text_of(res) == "slept"
        return t0, arrivals, t_result

    async def go():
        # Streamable HTTP and legacy SSE side by side (same wall time)
        return await asyncio.gather(call(mcp_session, n.url), call(sse_session, n.base + "/sse"))

    for transport, (t0, arrivals, t_result) in zip(("streamable-http", "legacy-sse"), run_async(go, timeout=40)):
        assert [p for _, p in arrivals] == [float(i) for i in range(1, steps + 1)], (transport, arrivals)
        interval = seconds / steps
        ahead = [round(t_result - t, 2) for t, _ in arrivals]  # how long before the result each arrived
        # Sent at k*interval, the result right after the last: progress k arrives ~(steps-k)*interval
        # before the result. Buffered (or gzip-compressed) by the proxy, they arrive in a lump with it.
        assert ahead[0] >= 0.5 * seconds, (
            f"{transport}: first progress only {ahead[0]}s before the result: the proxy held the stream back")
        early = sum(1 for a in ahead if a >= interval / 2)
        assert early >= steps - 2, (
            f"{transport}: only {early} of {steps} progress notifications arrived >= {interval / 2}s before "
            f"the result (seconds ahead: {ahead}): the proxy batched the stream")
        assert arrivals[0][0] - t0 < seconds, (transport, arrivals[0][0] - t0)
    d.assert_alive()


def test_nginx_passes_sse_keepalive_comments(switchyard, nginx):
    d = switchyard("--sse-keepalive", "1s")
    n = nginx(d)
    sid, _ = raw_initialize(n.url)
    get = RawSSE("127.0.0.1", n.port, "/mcp", {"Accept": "text/event-stream", "Mcp-Session-Id": sid,
                                                "MCP-Protocol-Version": "2025-06-18"})
    legacy = LegacyClient(SimpleNamespace(host="127.0.0.1", port=n.port, base=n.base))
    try:
        assert get.read_head(10) == 200, get.headers
        assert (get.header("content-type") or "").startswith("text/event-stream"), get.headers
        legacy.open(10)
        for name, stream in (("GET /mcp", get), ("GET /sse", legacy.stream)):
            # Two 13-byte comments within seconds: a buffering proxy would hold them until its buffer
            # (4-8 KiB) filled, minutes away.
            stream.wait_comment(lambda c: c == "keepalive", timeout=5)
            k = len(stream.comments)
            stream.wait_comment(lambda c: c == "keepalive", timeout=5, start=k)
        # the legacy session still works through nginx after the keep-alives
        legacy.initialize()
        assert legacy.call_tool("echo", {"text": "still here"}, id_=5)["result"]["content"][0]["text"] == "still here"
    finally:
        get.close()
        legacy.close()
    d.assert_alive()


# ---------------------------------------------------------------------------------------------
# HAProxy with two replicas
# ---------------------------------------------------------------------------------------------

def test_haproxy_sticky_sessions_over_two_replicas(replicas):
    h, ds = replicas
    wait_servers_checked_up(h)
    n_sessions, n_calls = 20, 5

    async def one(i: int, gate: asyncio.Semaphore):
        async with gate:
            async with mcp_session(h.url) as (s, get_id):
                got = [text_of(await s.call_tool("echo", {"text": f"s{i}-c{j}"})) for j in range(n_calls)]
                return get_id(), got

    async def go():
        gate = asyncio.Semaphore(10)
        return await asyncio.gather(*(one(i, gate) for i in range(n_sessions)))

    results = run_async(go, timeout=60)
    sids = [sid for sid, _ in results]
    for i, (sid, got) in enumerate(results):
        assert got == [f"s{i}-c{j}" for j in range(n_calls)], (i, got)
        assert SID_RE.match(sid or ""), sid
    assert len(set(sids)) == n_sessions, "duplicate session ids"

    opened = [sessions_opened(d) & set(sids) for d in ds]
    assert not (opened[0] & opened[1]), f"sessions opened on both replicas: {opened[0] & opened[1]}"
    assert opened[0] | opened[1] == set(sids), "some sessions were opened on neither replica"
    # roundrobin spreads the initializes: both replicas hold sessions
    assert opened[0] and opened[1], f"sessions per replica: {[len(o) for o in opened]}"
    for d in ds:
        d.assert_alive()


def test_session_on_the_other_replica_is_404_so_stickiness_is_required(replicas):
    h, ds = replicas
    sid, _ = raw_initialize(h.url)
    own = owner_of(sid, ds)
    other = ds[1 - own]

    # Through HAProxy: every call follows the session.
    for i in range(4):
        r = post(h.url, echo_call(10 + i, f"sticky {i}"), session=sid)
        assert r.status == 200 and r.messages()[-1]["result"]["content"][0]["text"] == f"sticky {i}", r

    # Straight to the other replica (what a balancer without stickiness does half of the time): 404.
    r = post(other.url, echo_call(20, "lost"), session=sid)
    assert r.status == 404, r
    assert r.rpc_error_code() == -32001, r
    # Straight to the owner: fine.
    r = post(ds[own].url, echo_call(21, "home"), session=sid)
    assert r.status == 200 and r.messages()[-1]["result"]["content"][0]["text"] == "home", r

    # The same backend without the `stick` directives alternates replicas: the session breaks.
    statuses = [post(h.nostick_url, echo_call(30 + i, "x"), session=sid).status for i in range(4)]
    assert 404 in statuses and 200 in statuses, f"without stickiness: {statuses}"


def test_haproxy_health_check_marks_both_up_and_takes_a_stopped_replica_out(replicas):
    h, ds = replicas
    st = wait_servers_checked_up(h)
    assert set(st) == {"sy1", "sy2"}, st

    # traffic flows to both
    sids = [raw_initialize(h.url)[0] for _ in range(4)]
    owners = {owner_of(sid, ds) for sid in sids}
    assert owners == {0, 1}, f"initializes all went to replica(s) {owners}"
    st = h.servers_stat()
    assert int(st["sy1"]["stot"]) > 0 and int(st["sy2"]["stot"]) > 0, st

    # stop replica 2: the check takes it out, new sessions all land on replica 1
    assert ds[1].terminate() == 0
    wait_until(lambda: h.servers_stat()["sy2"]["status"].startswith("DOWN"), 10, interval=0.1,
               what="HAProxy to mark the stopped replica DOWN")
    assert h.servers_stat()["sy1"]["status"] == "UP"
    for _ in range(4):
        sid, _ = raw_initialize(h.url)
        assert sid in sessions_opened(ds[0])
    ds[0].assert_alive()


def test_haproxy_legacy_sse_follows_its_session(replicas):
    """Legacy clients send no Mcp-Session-Id header: the shipped backend learns the id from the GET /sse
    answer's header and pins POST /messages?sessionId= to the replica that holds the stream."""
    h, ds = replicas
    wait_servers_checked_up(h)

    shipped = LegacyClient(SimpleNamespace(host="127.0.0.1", port=h.shipped_port, base=h.shipped_base))
    try:
        shipped.open(10)
        statuses = [shipped.post({"jsonrpc": "2.0", "method": "notifications/initialized"}).status
                    for _ in range(6)]
        assert statuses == [202] * 6, f"legacy POSTs through the shipped backend: {statuses}"
    finally:
        shipped.close()

    # With the legacy paths on a source-affine backend: the official sse_client works.
    async def go():
        out = []
        for k in range(3):
            async with sse_session(h.base + "/sse") as (s, info):
                out.append((info.get("session_id"),
                            [text_of(await s.call_tool("echo", {"text": f"l{k}-{j}"})) for j in range(3)]))
        return out

    for k, (sid, texts) in enumerate(run_async(go, timeout=40)):
        assert texts == [f"l{k}-{j}" for j in range(3)], texts
        owner_of(sid, ds)

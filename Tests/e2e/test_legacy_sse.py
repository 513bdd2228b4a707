"""Legacy HTTP+SSE transport (MCP 2024-11-05) at /sse + /messages, driven by real clients.

docs/http-contract.md, "Legacy HTTP+SSE"; /work/shared/mcp-transports.md §3, scenarios 7, 8, 11.
Wire-level details (status codes, headers) are in test_legacy_sse_contract.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import tempfile
import time
from datetime import datetime, timezone

import anyio
import pytest

from conftest import (
    assert_utc_time_payload,
    E2E_DIR, FIXTURE_CMD, MARKER_FIXTURE_CMD, MCP2_PYTHON, MCP_SERVER_TIME, LegacyClient, curl, init_body,
    legacy_post, mcp_session, pid_alive, post, run_async, sse_session, text_of, tool_result_text, wait_until,
)

FIXTURE_TOOLS = {"echo", "sleep", "crash", "garbage", "flood_stderr", "whoami", "counter"}
HANDSHAKE_VERSIONS = {"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"}
SID_RE = re.compile(r"^[0-9a-f]{32}$")


# ---------------------------------------------------------------------------------------------
# SDK 1.x sse_client
# ---------------------------------------------------------------------------------------------

def test_sse_client_mcp_server_time(switchyard):
    d = switchyard(child=[MCP_SERVER_TIME])

    async def go():
        async with sse_session(d.base + "/sse") as (s, info):
            assert SID_RE.match(info.get("session_id") or ""), info
            tools = {t.name for t in (await s.list_tools()).tools}
            assert {"get_current_time", "convert_time"} <= tools, tools
            res = await s.call_tool("get_current_time", {"timezone": "UTC"})
            return json.loads(text_of(res))

    before = datetime.now(timezone.utc).replace(microsecond=0)
    payload = run_async(go, timeout=60)
    after = datetime.now(timezone.utc)
    assert_utc_time_payload(payload, before, after)
    d.assert_alive()


def test_sse_client_fixture_echo_progress_and_dedicated_child(fixture_daemon):
    d = fixture_daemon
    steps = 5

    async def go():
        events: list[tuple] = []

        async def on_progress(progress, total, message):
            events.append(("progress", progress, total, message))

        async with sse_session(d.base + "/sse") as (s, _):
            tools = {t.name for t in (await s.list_tools()).tools}
            assert FIXTURE_TOOLS <= tools, tools
            assert text_of(await s.call_tool("echo", {"text": "héllo wörld ✓ \"q\""})) == "héllo wörld ✓ \"q\""
            counts = [text_of(await s.call_tool("counter", {})) for _ in range(3)]
            assert counts == ["1", "2", "3"], counts  # one child for the whole session
            res = await s.call_tool("sleep", {"seconds": 1.0, "steps": steps}, progress_callback=on_progress)
            events.append(("result", text_of(res)))
        async with sse_session(d.base + "/sse") as (s2, _):
            assert text_of(await s2.call_tool("counter", {})) == "1"  # a new session, a fresh child
        return events

    events = run_async(go, timeout=60)
    expected = [("progress", float(i), float(steps), f"step {i}") for i in range(1, steps + 1)]
    expected.append(("result", "slept"))
    assert events == expected
    d.assert_alive()


def test_sse_client_trailing_slash_sse_path(fixture_daemon):
    # `/sse/`: the contract allows a trailing slash on named-server paths; the Python SDK's own
    # servers mount `/messages/`. The stream path with a slash must work the same.
    d = fixture_daemon

    async def go():
        async with sse_session(d.base + "/sse/") as (s, _):
            assert text_of(await s.call_tool("echo", {"text": "slash"})) == "slash"

    run_async(go, timeout=30)


# ---------------------------------------------------------------------------------------------
# SDK 2.x sse_client (subprocess)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_sdk2_sse_client(fixture_daemon, mode):
    d = fixture_daemon
    assert os.path.exists(MCP2_PYTHON), f"MCP2_PYTHON not found: {MCP2_PYTHON}"
    text = f"2.x over sse ({mode}) " + os.urandom(4).hex()
    cp = subprocess.run([MCP2_PYTHON, str(E2E_DIR / "client_mcp2_sse.py"), d.base + "/sse", text, mode],
                        capture_output=True, timeout=90)
    assert cp.returncode == 0, f"client_mcp2_sse failed ({cp.returncode}):\n{cp.stderr.decode()[-3000:]}"
    out = json.loads(cp.stdout.decode().strip().splitlines()[-1])
    assert out["echo"] == text, out
    assert FIXTURE_TOOLS <= set(out["tools"]), out
    assert out["negotiated"] == "initialize", out  # in auto mode: the discover probe was refused
    assert out["protocol_version"] in HANDSHAKE_VERSIONS, out
    assert SID_RE.match(out["session_id"] or ""), out
    d.assert_alive()


# ---------------------------------------------------------------------------------------------
# Both transports at once on one server
# ---------------------------------------------------------------------------------------------

def test_sse_and_streamable_clients_concurrently_see_only_their_answers(fixture_daemon):
    d = fixture_daemon
    n = 25

    async def worker(kind: str):
        cm = sse_session(d.base + "/sse") if kind == "sse" else mcp_session(d.url)
        async with cm as (s, _):
            pid = int(text_of(await s.call_tool("whoami", {})))
            got = []
            for i in range(n):
                text = f"{kind}-{i}-{os.urandom(4).hex()}"
                echoed = text_of(await s.call_tool("echo", {"text": text}))
                got.append((text, echoed))
                await asyncio.sleep(0)
            # a burst of concurrent calls in the same session too
            texts = [f"{kind}-burst-{i}-{os.urandom(4).hex()}" for i in range(10)]
            burst = await asyncio.gather(*(s.call_tool("echo", {"text": t}) for t in texts))
            got += [(t, text_of(r)) for t, r in zip(texts, burst)]
            return pid, got

    async def go():
        return await asyncio.gather(worker("sse"), worker("streamable"))

    (pid_a, got_a), (pid_b, got_b) = run_async(go, timeout=90)
    assert pid_a != pid_b, "the two sessions shared a child"
    for text, echoed in got_a + got_b:
        assert echoed == text, (text, echoed)
    d.assert_alive()


# ---------------------------------------------------------------------------------------------
# Dropping the stream ends the session (scenario 11)
# ---------------------------------------------------------------------------------------------

def _stdin_messages(log_dir: str, pid: int) -> list[dict]:
    path = os.path.join(log_dir, f"{pid}.log")
    if not os.path.exists(path):
        return []
    out = []
    for ln in open(path, "rb").read().decode("utf-8", "replace").splitlines():
        ln = ln.strip()
        if ln:
            try:
                out.append(json.loads(ln))
            except ValueError:
                pass
    return out


def test_dropped_sse_stream_cancels_in_flight_and_ends_session_and_child(switchyard):
    log_dir = tempfile.mkdtemp(prefix="switchyard-stdin-")
    marker = os.path.join(log_dir, "marker")
    d = switchyard("--spares", "1", child=[*MARKER_FIXTURE_CMD, "--stdin-log", log_dir])

    other = LegacyClient(d).open()   # a bystander session, open throughout
    a = LegacyClient(d).open()
    try:
        other.initialize()
        pid_other = int(tool_result_text(other.call_tool("whoami", {}, id_=1)))
        a.initialize()
        pid = int(tool_result_text(a.call_tool("whoami", {}, id_=1)))
        assert pid != pid_other and pid_alive(pid)

        # a slow request in flight at the child when the stream drops
        a.send({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "marked_sleep", "arguments": {"seconds": 8, "marker": marker}}})
        wait_until(lambda: os.path.exists(marker) and f"started {pid}" in open(marker).read(), 10,
                   what="marked_sleep to start in the child")
        old_url = a.messages_url
        t0 = time.monotonic()
        a.close()

        # the child goes away; meanwhile the bystander keeps working
        i = 100
        while pid_alive(pid):
            assert time.monotonic() - t0 < 10, "child of the dropped session still alive after 10s"
            i += 1
            assert tool_result_text(other.call_tool("echo", {"text": f"bystander {i}"}, id_=i)) == f"bystander {i}"
        # later POSTs for the session: 404 (-32001)
        r = wait_until(lambda: (lambda r: r if r.status == 404 else None)(
            legacy_post(old_url, {"jsonrpc": "2.0", "id": 9, "method": "ping"})), 10,
            what="POST to the dropped session's messages URL to get 404")
        assert (r.content_type or "").startswith("application/json"), r
        assert r.json()["error"]["code"] == -32001, r
        assert time.monotonic() - t0 < 10, "the drop was noticed too late (request would have finished)"

        # the child got notifications/cancelled for the in-flight request (child-side id)
        msgs = _stdin_messages(log_dir, pid)
        calls = [m for m in msgs if m.get("method") == "tools/call"
                 and m.get("params", {}).get("name") == "marked_sleep"]
        assert len(calls) == 1, f"child stdin: {msgs}"
        child_id = calls[0]["id"]
        cancels = [m for m in msgs if m.get("method") == "notifications/cancelled"]
        assert any(c.get("params", {}).get("requestId") == child_id for c in cancels), \
            f"no notifications/cancelled for child id {child_id!r}; child stdin: {msgs}"
        assert "finished" not in open(marker).read()

        # the bystander's own child is untouched, and nobody got the dropped request's answer
        assert pid_alive(pid_other)
        assert int(tool_result_text(other.call_tool("whoami", {}, id_=2))) == pid_other
        assert not any(m.get("id") == 7 for m in other.stream.messages), other.stream.messages
        d.assert_alive()
    finally:
        a.close()
        other.close()


def test_dropped_sse_stream_is_logged_as_client_gone(switchyard):
    # Not in the wire contract: the log line the gateway writes when a legacy stream goes away.
    d = switchyard(child=FIXTURE_CMD)
    a = LegacyClient(d).open()
    try:
        a.initialize()
        pid = int(tool_result_text(a.call_tool("whoami", {}, id_=1)))
    finally:
        a.close()
    wait_until(lambda: not pid_alive(pid), 10, what="child of dropped session to exit")
    wait_until(lambda: any("session_closed" in ln and "client_gone" in ln for ln in d.log_lines()), 5,
               what="a msg=session_closed reason=client_gone log line")
    line = next(ln for ln in d.log_lines() if "session_closed" in ln and "client_gone" in ln)
    assert a.session_id in line, f"log line does not name the session: {line}"


def test_sse_session_limit_503_then_room_after_stream_closes(switchyard):
    d = switchyard("--max-sessions", "2", child=FIXTURE_CMD)
    a = LegacyClient(d).open()
    b = LegacyClient(d).open()
    try:
        c = LegacyClient(d)
        try:
            st = c.stream.read_head(10)
            assert st == 503, f"third GET /sse: expected 503, got {st} {c.stream.headers}"
            assert c.stream.header("retry-after") == "1", c.stream.headers
        finally:
            c.close()
        # existing sessions unaffected
        a.initialize()
        assert tool_result_text(a.call_tool("echo", {"text": "a"}, id_=1)) == "a"
        b.close()

        def third():
            c = LegacyClient(d)
            st = c.stream.read_head(10)
            if st == 503:
                c.close()
                return None
            assert st == 200, c.stream.headers
            c.close()
            return True

        wait_until(third, 10, interval=0.1, what="room for a new /sse session after one stream closed")
    finally:
        a.close()
        b.close()


# ---------------------------------------------------------------------------------------------
# 100 concurrent SSE sessions
# ---------------------------------------------------------------------------------------------

@pytest.mark.timeout(180)
def test_hundred_concurrent_sse_sessions(switchyard):
    n = 100
    d = switchyard("--spares", "4", "--max-sessions", "128")  # bundled demo server: echo(text)

    async def one(i: int, ready: list, all_ready: asyncio.Event):
        text = f"sse-{i}-{os.urandom(6).hex()}"
        async with sse_session(d.base + "/sse") as (s, info):
            echoed = text_of(await s.call_tool("echo", {"text": text}))
            ready.append(i)
            if len(ready) == n:
                all_ready.set()
            await all_ready.wait()   # all n sessions are open at the same time
            echoed2 = text_of(await s.call_tool("echo", {"text": text + "+"}))
            return text, echoed, echoed2, info.get("session_id")

    async def go():
        ready: list = []
        ev = asyncio.Event()
        return await asyncio.wait_for(asyncio.gather(*(one(i, ready, ev) for i in range(n))), timeout=150)

    results = asyncio.run(go())
    assert len(results) == n
    for text, e1, e2, _ in results:
        assert e1 == text and e2 == text + "+", (text, e1, e2)
    sids = [r[3] for r in results]
    assert all(s and SID_RE.match(s) for s in sids), sids
    assert len(set(sids)) == n, "duplicate session ids"
    d.assert_alive()


# ---------------------------------------------------------------------------------------------
# More stream behaviour
# ---------------------------------------------------------------------------------------------

def test_sdk2_sse_client_on_named_path(switchyard):
    from conftest import write_config
    py, fixture = FIXTURE_CMD
    cfg = write_config(json.dumps({"mcpServers": {"fix": {"command": py, "args": [fixture]}}}), ".json")
    try:
        d = switchyard("--config", cfg)
        text = "2.x named " + os.urandom(4).hex()
        cp = subprocess.run([MCP2_PYTHON, str(E2E_DIR / "client_mcp2_sse.py"), d.base + "/servers/fix/sse", text],
                            capture_output=True, timeout=90)
        assert cp.returncode == 0, f"client_mcp2_sse failed ({cp.returncode}):\n{cp.stderr.decode()[-3000:]}"
        out = json.loads(cp.stdout.decode().strip().splitlines()[-1])
        assert out["echo"] == text and FIXTURE_TOOLS <= set(out["tools"]), out
    finally:
        os.unlink(cfg)


def test_server_message_without_request_reaches_the_legacy_stream(switchyard):
    d = switchyard(child=MARKER_FIXTURE_CMD)
    c = LegacyClient(d).open()
    try:
        c.initialize()
        n = len(c.stream.messages)
        res = c.call_tool("list_changed", {}, id_=3)
        assert tool_result_text(res) == "sent"
        if not any(m.get("method") == "notifications/tools/list_changed" for m in c.stream.messages[n:]):
            c.stream.wait_message(lambda m: m.get("method") == "notifications/tools/list_changed", 5)
        got = [m for m in c.stream.messages[n:] if m.get("method") == "notifications/tools/list_changed"]
        assert len(got) == 1, c.stream.messages[n:]
        assert "id" not in got[0], got[0]
    finally:
        c.close()


def test_large_message_on_the_legacy_stream_arrives_intact(fixture_daemon):
    d = fixture_daemon
    c = LegacyClient(d).open()
    try:
        c.initialize()
        text = ("0123456789abcdef" * 65536 * 2)[:-7] + "ü✓end"  # ~2 MiB, multi-byte at the end
        res = c.call_tool("echo", {"text": text}, id_=4, timeout=60)
        assert tool_result_text(res) == text
        # one `data:` line per message
        ev = [e for e in c.stream.events if e["event"] == "message" and '"id":4' in e["data"].replace(" ", "")]
        assert ev and "\n" not in ev[-1]["data"]
        assert tool_result_text(c.call_tool("echo", {"text": "after big"}, id_=5)) == "after big"
    finally:
        c.close()


def _children_of(pid: int) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(p))
    return out


def test_closed_sse_sessions_leave_only_spares(switchyard):
    spares = 2
    d = switchyard("--spares", str(spares), child=FIXTURE_CMD)
    clients = [LegacyClient(d).open() for _ in range(6)]
    pids = []
    try:
        for i, c in enumerate(clients):
            c.initialize()
            pids.append(int(tool_result_text(c.call_tool("whoami", {}, id_=1))))
        assert len(set(pids)) == 6
        assert set(pids) <= set(_children_of(d.proc.pid)), (pids, _children_of(d.proc.pid))
    finally:
        for c in clients:
            c.close()
    wait_until(lambda: not any(pid_alive(p) for p in pids), 15, what="children of closed SSE sessions to exit")
    wait_until(lambda: len(_children_of(d.proc.pid)) <= spares, 15,
               what=f"only {spares} spare children left, have {_children_of(d.proc.pid)}")


def test_sigterm_ends_legacy_streams_and_exits_0(switchyard):
    d = switchyard(child=FIXTURE_CMD)
    c = LegacyClient(d).open()
    idle = LegacyClient(d).open()   # never initialized: no child yet
    try:
        c.initialize()
        pid = int(tool_result_text(c.call_tool("whoami", {}, id_=1)))
        c.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "sleep", "arguments": {"seconds": 30, "steps": 0}}})
        t0 = time.monotonic()
        code = d.terminate(timeout=15)
        assert code == 0, f"exit {code}; log:\n{d.log_tail()}"
        assert time.monotonic() - t0 < 12
        # both streams were ended (cleanly or by the socket closing); nothing hangs
        c.stream.wait_end(5)
        idle.stream.wait_end(5)
        assert not pid_alive(pid)
    finally:
        c.close()
        idle.close()

"""End-to-end tests with the official MCP Python SDK clients (1.x in-process, 2.x as a subprocess)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from datetime import datetime, timezone

import anyio
import pytest
from mcp.shared.exceptions import McpError

from conftest import (
    assert_utc_time_payload,
    E2E_DIR, FIXTURE_CMD, MCP2_PYTHON, MCP_SERVER_TIME, curl, mcp_session, pid_alive, run_async,
    text_of, wait_until,
)

FIXTURE_TOOLS = {"echo", "sleep", "crash", "garbage", "flood_stderr", "whoami", "counter"}
HANDSHAKE_VERSIONS = {"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"}


# ---------------------------------------------------------------------------------------------
# Basic flows against real children
# ---------------------------------------------------------------------------------------------

def test_mcp_server_time_initialize_list_call(switchyard):
    d = switchyard(child=[MCP_SERVER_TIME])

    async def go():
        async with mcp_session(d.url) as (s, get_id):
            sid = get_id()
            assert sid and len(sid) == 32, sid
            tools = {t.name for t in (await s.list_tools()).tools}
            assert {"get_current_time", "convert_time"} <= tools, tools
            res = await s.call_tool("get_current_time", {"timezone": "UTC"})
            return json.loads(text_of(res))

    before = datetime.now(timezone.utc).replace(microsecond=0)
    payload = run_async(go, timeout=60)
    after = datetime.now(timezone.utc)
    assert_utc_time_payload(payload, before, after)
    d.assert_alive()


def test_fastmcp_initialize_list_echo_and_dedicated_child_state(fixture_daemon):
    d = fixture_daemon

    async def go():
        async with mcp_session(d.url) as (s, _):
            tools = {t.name for t in (await s.list_tools()).tools}
            assert FIXTURE_TOOLS <= tools, tools
            assert text_of(await s.call_tool("echo", {"text": "héllo wörld ✓"})) == "héllo wörld ✓"
            # counter lives in the child's memory: same child for the whole session
            counts = [text_of(await s.call_tool("counter", {})) for _ in range(3)]
            assert counts == ["1", "2", "3"], counts
        # a new session gets a fresh child: its counter starts over
        async with mcp_session(d.url) as (s2, _):
            assert text_of(await s2.call_tool("counter", {})) == "1"

    run_async(go, timeout=60)
    d.assert_alive()


def test_progress_notifications_arrive_in_order_before_result(fixture_daemon):
    d = fixture_daemon
    steps = 6

    async def go():
        events: list[tuple] = []

        async def on_progress(progress, total, message):
            events.append(("progress", progress, total, message))

        async with mcp_session(d.url) as (s, _):
            res = await s.call_tool("sleep", {"seconds": 1.2, "steps": steps}, progress_callback=on_progress)
            events.append(("result", text_of(res)))
        return events

    events = run_async(go, timeout=60)
    expected = [("progress", float(i), float(steps), f"step {i}") for i in range(1, steps + 1)]
    expected.append(("result", "slept"))
    assert events == expected


# ---------------------------------------------------------------------------------------------
# Concurrency: 50 sessions, each with its own child
# ---------------------------------------------------------------------------------------------

@pytest.mark.timeout(240)
def test_fifty_parallel_sessions_each_get_their_own_answer_and_child(switchyard):
    n = 50
    # 50 Python children starting at once on 2 cores can take longer than the 30 s default spawn_timeout.
    d = switchyard("--spares", "4", "--max-sessions", "64", "--spawn-timeout", "180s", child=FIXTURE_CMD)

    async def one(i: int, ready: list, all_ready: asyncio.Event):
        text = f"session-{i}-{os.urandom(6).hex()}"
        async with mcp_session(d.url) as (s, get_id):
            echoed = text_of(await s.call_tool("echo", {"text": text}))
            pid = int(text_of(await s.call_tool("whoami", {})))
            sid = get_id()
            # keep every session open until all 50 have answered: children must coexist
            ready.append(i)
            if len(ready) == n:
                all_ready.set()
            await all_ready.wait()
            # still our own child and our own answers after everyone else has worked
            echoed2 = text_of(await s.call_tool("echo", {"text": text + "-again"}))
            pid2 = int(text_of(await s.call_tool("whoami", {})))
            return text, echoed, echoed2, pid, pid2, sid

    async def go():
        ready: list = []
        all_ready = asyncio.Event()
        return await asyncio.wait_for(
            asyncio.gather(*(one(i, ready, all_ready) for i in range(n))), timeout=200)

    results = asyncio.run(go())
    assert len(results) == n
    for text, echoed, echoed2, pid, pid2, _ in results:
        assert echoed == text
        assert echoed2 == text + "-again"
        assert pid == pid2
    pids = [r[3] for r in results]
    sids = [r[5] for r in results]
    assert len(set(pids)) == n, f"children shared between sessions: {sorted(pids)}"
    assert len(set(sids)) == n, "duplicate session ids"
    # every session was DELETEd by the SDK on exit: its child must go away
    wait_until(lambda: not any(pid_alive(p) for p in pids), 30, what="children of closed sessions to exit")
    d.assert_alive()


# ---------------------------------------------------------------------------------------------
# Child failures
# ---------------------------------------------------------------------------------------------

def test_child_crash_fails_only_its_session(fixture_daemon):
    d = fixture_daemon

    async def go():
        async with mcp_session(d.url) as (a, _), mcp_session(d.url) as (b, _):
            pid_a = int(text_of(await a.call_tool("whoami", {})))
            pid_b = int(text_of(await b.call_tool("whoami", {})))
            assert pid_a != pid_b

            # b has a request in flight on its own child while a's child dies
            async with anyio.create_task_group() as tg:
                slow_result: list = []

                async def slow():
                    slow_result.append(text_of(await b.call_tool("sleep", {"seconds": 1.5, "steps": 3})))

                tg.start_soon(slow)
                t0 = time.monotonic()
                with anyio.fail_after(10):
                    with pytest.raises(McpError) as ei:
                        await a.call_tool("crash", {})
                crash_latency = time.monotonic() - t0
            assert slow_result == ["slept"]
            err = ei.value.error
            assert err.code == -32000, err
            assert "exit" in err.message.lower(), err
            assert crash_latency < 10

            wait_until(lambda: not pid_alive(pid_a), 10, what="crashed child to be gone")
            assert pid_alive(pid_b)

            # the healthy session keeps working on the same child
            assert text_of(await b.call_tool("echo", {"text": "still here"})) == "still here"
            assert int(text_of(await b.call_tool("whoami", {}))) == pid_b

            # the crashed session has ended: its next request fails (404 -> the SDK raises)
            with anyio.fail_after(10):
                with pytest.raises(McpError):
                    await a.list_tools()

            # and new sessions still work
            async with mcp_session(d.url) as (c, _):
                assert text_of(await c.call_tool("echo", {"text": "fresh"})) == "fresh"

    run_async(go, timeout=60)
    d.assert_alive()


def test_non_json_stdout_line_is_dropped(fixture_daemon):
    d = fixture_daemon

    async def go():
        async with mcp_session(d.url) as (s, _):
            pid = text_of(await s.call_tool("whoami", {}))
            assert text_of(await s.call_tool("garbage", {})) == "ok"
            # the same child keeps serving the session afterwards
            assert text_of(await s.call_tool("echo", {"text": "after garbage"})) == "after garbage"
            assert text_of(await s.call_tool("whoami", {})) == pid

    run_async(go, timeout=60)
    d.assert_alive()


@pytest.mark.timeout(180)
def test_stderr_flood_does_not_block_child_or_gateway(fixture_daemon):
    d = fixture_daemon

    async def go():
        async with mcp_session(d.url) as (s, _):
            with anyio.fail_after(90):
                assert text_of(await s.call_tool("flood_stderr", {"megabytes": 10})) == "flooded"
            assert text_of(await s.call_tool("echo", {"text": "after flood"})) == "after flood"
        async with mcp_session(d.url) as (s2, _):
            assert text_of(await s2.call_tool("echo", {"text": "other session"})) == "other session"

    run_async(go, timeout=150)
    d.assert_alive()
    assert any("msg=child_stderr" in ln for ln in d.log_lines()), \
        "child stderr lines were not forwarded to the gateway log with msg=child_stderr"


# ---------------------------------------------------------------------------------------------
# SDK 2.x client (subprocess; different protocol negotiation: server/discover probe first)
# ---------------------------------------------------------------------------------------------

def test_sdk2_client_connects_lists_and_calls(fixture_daemon):
    d = fixture_daemon
    assert os.path.exists(MCP2_PYTHON), f"MCP2_PYTHON not found: {MCP2_PYTHON}"
    text = "from the 2.x line " + os.urandom(4).hex()
    t0 = time.monotonic()
    cp = subprocess.run([MCP2_PYTHON, str(E2E_DIR / "client_mcp2.py"), d.url, text],
                        capture_output=True, timeout=90)
    elapsed = time.monotonic() - t0
    assert cp.returncode == 0, f"client_mcp2 failed ({cp.returncode}):\n{cp.stderr.decode()[-3000:]}"
    out = json.loads(cp.stdout.decode().strip().splitlines()[-1])
    assert out["echo"] == text, out
    assert FIXTURE_TOOLS <= set(out["tools"]), out
    # the discover probe must have been refused and the client fell back to initialize
    assert out["negotiated"] == "initialize", out
    assert out["protocol_version"] in HANDSHAKE_VERSIONS, out
    assert elapsed < 60, elapsed
    d.assert_alive()

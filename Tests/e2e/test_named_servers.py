"""Named servers: /servers/<name>/{mcp,sse,messages} (docs/http-contract.md, "Named servers").

One daemon for the module, from a YAML config with two servers: `time` (mcp-server-time) and `fix`
(the FastMCP fixture, also the default_server).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from datetime import datetime, timezone

import pytest

from conftest import (
    FIXTURE_CMD, MARKER_FIXTURE_CMD, pid_alive, wait_until, MCP_SERVER_TIME, PROTO, LegacyClient, curl, finish_daemon, init_body, legacy_post,
    mcp_session, post, raw_initialize, run_async, sse_session, start_daemon, text_of, tool_result_text,
    write_config,
)

FIXTURE_TOOLS = {"echo", "sleep", "whoami", "counter"}
TIME_TOOLS = {"get_current_time", "convert_time"}


@pytest.fixture(scope="module")
def daemon():
    py, fixture = FIXTURE_CMD
    cfg = write_config(f"""
listen:
  - address: "127.0.0.1:0"
servers:
  time:
    command: {json.dumps(MCP_SERVER_TIME)}
  fix:
    command: {json.dumps(py)}
    args: [{json.dumps(fixture)}]
default_server: fix
limits:
  sse_keepalive: 1s
""", ".yaml")
    try:
        d = start_daemon("--config", cfg)
        try:
            yield d
        finally:
            finish_daemon(d)
    finally:
        os.unlink(cfg)


@pytest.fixture
def d(daemon):
    yield daemon
    daemon.assert_alive()


def rpc(method, params=None, id_=1):
    m = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        m["params"] = params
    return m


def assert_unknown_server(r, name: str):
    assert r.status == 404, f"expected 404 for unknown server {name!r}: {r!r}"
    assert (r.content_type or "").lower().startswith("application/json"), r
    assert r.json() == {"error": "unknown server", "server": name}, r


def check_time(payload: dict):
    assert payload["timezone"] == "UTC", payload
    t = datetime.fromisoformat(payload["datetime"])
    assert t.utcoffset().total_seconds() == 0, payload
    assert abs(t.timestamp() - datetime.now(timezone.utc).timestamp()) < 30, payload


# ---------------------------------------------------------------------------------------------
# Each name reaches its own server, over both transports
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", ["sse", "sse/"])
def test_sse_client_per_named_server(d, suffix):
    async def go():
        async with sse_session(f"{d.base}/servers/time/{suffix}") as (s, _):
            tools_t = {t.name for t in (await s.list_tools()).tools}
            payload = json.loads(text_of(await s.call_tool("get_current_time", {"timezone": "UTC"})))
        async with sse_session(f"{d.base}/servers/fix/{suffix}") as (s, _):
            tools_f = {t.name for t in (await s.list_tools()).tools}
            echoed = text_of(await s.call_tool("echo", {"text": "named sse"}))
        return tools_t, payload, tools_f, echoed

    tools_t, payload, tools_f, echoed = run_async(go, timeout=60)
    assert TIME_TOOLS <= tools_t and not (FIXTURE_TOOLS & tools_t), tools_t
    assert FIXTURE_TOOLS <= tools_f and not (TIME_TOOLS & tools_f), tools_f
    check_time(payload)
    assert echoed == "named sse"


@pytest.mark.parametrize("suffix", ["mcp", "mcp/"])
def test_streamable_client_per_named_server(d, suffix):
    async def go():
        async with mcp_session(f"{d.base}/servers/time/{suffix}") as (s, _):
            tools_t = {t.name for t in (await s.list_tools()).tools}
            payload = json.loads(text_of(await s.call_tool("get_current_time", {"timezone": "UTC"})))
        async with mcp_session(f"{d.base}/servers/fix/{suffix}") as (s, _):
            tools_f = {t.name for t in (await s.list_tools()).tools}
            echoed = text_of(await s.call_tool("echo", {"text": "named mcp"}))
        return tools_t, payload, tools_f, echoed

    tools_t, payload, tools_f, echoed = run_async(go, timeout=60)
    assert TIME_TOOLS <= tools_t and not (FIXTURE_TOOLS & tools_t), tools_t
    assert FIXTURE_TOOLS <= tools_f and not (TIME_TOOLS & tools_f), tools_f
    check_time(payload)
    assert echoed == "named mcp"


def test_streamablehttp_client_alias_on_named_server(d):
    # the older spelling of the SDK's Streamable HTTP client (what many deployed clients import)
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def go():
        async with streamablehttp_client(f"{d.base}/servers/time/mcp") as (read, write, _):
            async with ClientSession(read, write) as s:
                await s.initialize()
                return json.loads(text_of(await s.call_tool("get_current_time", {"timezone": "UTC"})))

    check_time(run_async(go, timeout=60))


def test_default_server_is_at_the_root_paths(d):
    async def go():
        async with mcp_session(d.url) as (s, _):
            a = {t.name for t in (await s.list_tools()).tools}
        async with sse_session(d.base + "/sse") as (s, _):
            b = {t.name for t in (await s.list_tools()).tools}
        return a, b

    a, b = run_async(go, timeout=60)
    assert FIXTURE_TOOLS <= a and FIXTURE_TOOLS <= b, (a, b)


def test_named_endpoint_event_and_messages_path(d):
    for name in ("time", "fix"):
        c = LegacyClient(d, f"/servers/{name}/sse").open()
        try:
            assert c.endpoint.startswith(f"/servers/{name}/messages?sessionId="), c.endpoint
            c.initialize()
            tools = {t["name"] for t in c.request("tools/list", {}, id_=2)["result"]["tools"]}
            assert (TIME_TOOLS if name == "time" else FIXTURE_TOOLS) <= tools, tools
            # trailing slash on the named messages path
            r = legacy_post(f"{d.base}/servers/{name}/messages/?sessionId={c.session_id}", rpc("ping", id_=3))
            assert r.status == 202, r
            assert c.stream.response(3)["result"] == {}
        finally:
            c.close()


# ---------------------------------------------------------------------------------------------
# Unknown names, traversal, sessions bound to server and transport
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["nope", "TIME", "time2"])
def test_unknown_server_is_404_with_json_body(d, name):
    assert_unknown_server(post(f"{d.base}/servers/{name}/mcp", init_body(), proto=None), name)
    assert_unknown_server(curl("GET", f"{d.base}/servers/{name}/sse", headers={"Accept": "text/event-stream"},
                               timeout=10), name)
    assert_unknown_server(legacy_post(f"{d.base}/servers/{name}/messages?sessionId=" + "0" * 32, rpc("ping")),
                          name)
    assert_unknown_server(curl("GET", f"{d.base}/servers/{name}/mcp",
                               headers={"Accept": "text/event-stream", "Mcp-Session-Id": "0" * 32}, timeout=10),
                          name)


@pytest.mark.parametrize("path", ["/servers/../mcp", "/servers/./mcp", "/servers/%2e%2e/mcp",
                                  "/servers/../sse", "/servers//mcp", "/servers/fix/../time/mcp"])
def test_dot_names_and_traversal_are_not_served(d, path):
    r = curl("POST", d.base + path, body=json.dumps(init_body()),
             headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
             timeout=10, extra=["--path-as-is"])
    assert r.status == 404, f"{path}: {r!r}"
    assert not r.has_header("mcp-session-id"), r


def test_streamable_session_is_bound_to_its_server(d):
    sid, _ = raw_initialize(f"{d.base}/servers/fix/mcp")
    try:
        r = post(f"{d.base}/servers/time/mcp", rpc("tools/list", {}), session=sid)
        assert r.status == 404, r
        assert r.json()["error"]["code"] == -32001, r
        # still fine on its own server
        ok = post(f"{d.base}/servers/fix/mcp", rpc("tools/list", {}, id_=2), session=sid)
        assert ok.status == 200, ok
        # and not a legacy session on either server
        assert legacy_post(f"{d.base}/servers/fix/messages?sessionId={sid}", rpc("ping")).status == 404
    finally:
        curl("DELETE", f"{d.base}/servers/fix/mcp", headers={"Mcp-Session-Id": sid, "MCP-Protocol-Version": PROTO})


def test_streamable_session_of_default_server_works_on_root_and_named_path(d):
    # `fix` is the default_server: /mcp and /servers/fix/mcp are the same server and transport.
    sid, _ = raw_initialize(f"{d.base}/servers/fix/mcp")
    try:
        r = post(d.url, rpc("tools/list", {}, id_=2), session=sid)
        assert r.status == 200, r
    finally:
        curl("DELETE", f"{d.base}/servers/fix/mcp", headers={"Mcp-Session-Id": sid})


def test_legacy_session_is_bound_to_its_server_and_transport(d):
    c = LegacyClient(d, "/servers/fix/sse").open()
    try:
        c.initialize()
        r = legacy_post(f"{d.base}/servers/time/messages?sessionId={c.session_id}", rpc("ping"))
        assert r.status == 404, r
        r = post(f"{d.base}/servers/fix/mcp", rpc("tools/list", {}), session=c.session_id)
        assert r.status == 404, r
        r = post(d.url, rpc("tools/list", {}), session=c.session_id)
        assert r.status == 404, r
        # the session itself still works
        assert tool_result_text(c.call_tool("echo", {"text": "still mine"}, id_=9)) == "still mine"
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# Claude Desktop config with a disabled entry
# ---------------------------------------------------------------------------------------------

def test_claude_desktop_config_disabled_entry_is_not_exposed(switchyard):
    py, fixture = FIXTURE_CMD
    cfg = write_config(json.dumps({"mcpServers": {
        "on": {"command": py, "args": [fixture]},
        "off": {"command": MCP_SERVER_TIME, "disabled": True},
    }}), ".json")
    try:
        d = switchyard("--config", cfg)

        async def go():
            async with mcp_session(f"{d.base}/servers/on/mcp") as (s, _):
                a = text_of(await s.call_tool("echo", {"text": "enabled"}))
            async with sse_session(f"{d.base}/servers/on/sse") as (s, _):
                b = text_of(await s.call_tool("echo", {"text": "enabled sse"}))
            return a, b

        assert run_async(go, timeout=60) == ("enabled", "enabled sse")
        assert_unknown_server(post(f"{d.base}/servers/off/mcp", init_body(), proto=None), "off")
        assert_unknown_server(curl("GET", f"{d.base}/servers/off/sse", headers={"Accept": "text/event-stream"},
                                   timeout=10), "off")
        # the only enabled server is the default one
        sid, _ = raw_initialize(d.url)
        curl("DELETE", d.url, headers={"Mcp-Session-Id": sid})
    finally:
        os.unlink(cfg)


# ---------------------------------------------------------------------------------------------
# Ending a session cancels the child's in-flight requests ("Named servers", last bullet)
# ---------------------------------------------------------------------------------------------

def _stdin_messages(log_dir: str, pid: int) -> list[dict]:
    path = os.path.join(log_dir, f"{pid}.log")
    out = []
    if os.path.exists(path):
        for ln in open(path, "rb").read().decode("utf-8", "replace").splitlines():
            try:
                out.append(json.loads(ln))
            except ValueError:
                pass
    return out


def test_delete_on_named_server_cancels_in_flight_request(switchyard):
    log_dir = tempfile.mkdtemp(prefix="switchyard-stdin-")
    marker = os.path.join(log_dir, "marker")
    py, script = MARKER_FIXTURE_CMD
    cfg = write_config(json.dumps({"mcpServers": {"slow": {"command": py, "args": [script, "--stdin-log", log_dir]}}}),
                       ".json")
    try:
        d = switchyard("--config", cfg)
        url = f"{d.base}/servers/slow/mcp"
        sid, _ = raw_initialize(url)
        r = post(url, rpc("tools/call", {"name": "whoami", "arguments": {}}, id_=2), session=sid)
        pid = int(r.messages()[-1]["result"]["content"][0]["text"])
        answer: dict = {}

        def slow():
            answer["r"] = post(url, rpc("tools/call", {"name": "marked_sleep",
                                                       "arguments": {"seconds": 8, "marker": marker}}, id_=3),
                               session=sid, timeout=20)

        th = threading.Thread(target=slow, daemon=True)
        th.start()
        wait_until(lambda: os.path.exists(marker), 10, what="marked_sleep to start")
        t0 = time.monotonic()
        dr = curl("DELETE", url, headers={"Mcp-Session-Id": sid})
        assert dr.status == 200, dr
        wait_until(lambda: not pid_alive(pid), 10, what="child of deleted session to exit")
        th.join(15)
        assert not th.is_alive(), "the in-flight POST was not answered after DELETE"
        assert time.monotonic() - t0 < 8, "in-flight request outlived the DELETE"
        msgs = _stdin_messages(log_dir, pid)
        call = [m for m in msgs if m.get("method") == "tools/call" and m["params"]["name"] == "marked_sleep"]
        assert len(call) == 1, msgs
        cancels = [m for m in msgs if m.get("method") == "notifications/cancelled"]
        assert any(c["params"].get("requestId") == call[0]["id"] for c in cancels), msgs
        assert "finished" not in open(marker).read()
    finally:
        os.unlink(cfg)

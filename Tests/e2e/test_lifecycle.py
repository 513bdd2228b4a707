"""Daemon lifecycle: config files, demo server, limits, idle timeout, unstartable commands, shutdown."""

from __future__ import annotations

import json
import socket
import re
import os
import signal
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import (
    FIXTURE_CMD, MCP_SERVER_TIME, PROTO, SWITCHYARD_BIN, CurlStream, curl, init_body, mcp_session, pid_alive,
    post, raw_initialize, run_async, text_of, wait_until,
)


def rpc(method, params=None, id_=1):
    m = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        m["params"] = params
    return m


def tool_call(url, sid, name, args, id_=1, **kw):
    return post(url, rpc("tools/call", {"name": name, "arguments": args}, id_), session=sid, **kw)


def result_text(r) -> str:
    assert r.status == 200, r
    m = r.messages()[-1]
    assert "result" in m and not m["result"].get("isError"), m
    return "".join(c["text"] for c in m["result"]["content"] if c["type"] == "text")


def write_tmp(content: str, suffix: str) -> str:
    fd, path = tempfile.mkstemp(suffix=suffix, prefix="switchyard-e2e-")
    with os.fdopen(fd, "w") as f:
        f.write(content)
    return path


# ---------------------------------------------------------------------------------------------
# Startup variants
# ---------------------------------------------------------------------------------------------

def test_bundled_demo_server_when_no_command(switchyard):
    d = switchyard()

    async def go():
        async with mcp_session(d.url) as (s, _):
            tools = {t.name for t in (await s.list_tools()).tools}
            assert {"echo", "add", "sleep"} <= tools, tools
            assert text_of(await s.call_tool("echo", {"text": "demo"})) == "demo"

    run_async(go, timeout=30)


def test_exactly_one_listening_line_and_quiet_stdout(switchyard):
    d = switchyard(child=FIXTURE_CMD)
    s, _ = raw_initialize(d.url)
    assert result_text(tool_call(d.url, s, "echo", {"text": "x"})) == "x"
    lines = [ln for ln in d.log_lines() if re.search(r'(^|\s)msg="?listening"?(\s|$)', ln)]
    assert len(lines) == 1, lines
    assert f"address=127.0.0.1:{d.port}" in lines[0].replace('"', ""), lines[0]
    assert d.stdout_bytes() == b""
    # every log line is logfmt with ts= and level=
    for ln in d.log_lines():
        assert re.match(r"^ts=\S+ level=(debug|info|warn|error) ", ln), f"not logfmt: {ln[:200]!r}"


def test_yaml_config_with_named_servers_and_limits(switchyard):
    py, fixture = FIXTURE_CMD
    cfg = write_tmp(f"""
listen:
  - address: "127.0.0.1:0"
servers:
  fixture:
    command: {json.dumps(py)}
    args: [{json.dumps(fixture)}]
    env:
      SWITCHYARD_E2E_MARK: "from-config"
  time:
    command: {json.dumps(MCP_SERVER_TIME)}
default_server: fixture
limits:
  max_sessions: 3
  max_body_bytes: 64KiB
  session_idle_timeout: 30s
  sse_keepalive: 1s
""", ".yaml")
    try:
        d = switchyard("--config", cfg, port_args=False)
        assert d.host == "127.0.0.1" and d.port > 0
        s, _ = raw_initialize(d.url)
        assert result_text(tool_call(d.url, s, "echo", {"text": "cfg"})) == "cfg"
        # limits.max_sessions from the file: 3 live sessions, the 4th is refused
        s2, _ = raw_initialize(d.url)
        s3, _ = raw_initialize(d.url)
        r = post(d.url, init_body(), proto=None)
        assert r.status == 503, r
        assert r.header("retry-after") == "1", r
        assert r.json()["error"]["code"] == -32000, r
        # limits.max_body_bytes from the file
        big = tool_call(d.url, s, "echo", {"text": "z" * (100 * 1024)})
        assert big.status == 413, big
        assert result_text(tool_call(d.url, s, "echo", {"text": "y" * (60 * 1024)})) == "y" * (60 * 1024)
        # keep-alive from the file (1s) on a GET stream
        st = CurlStream(d.url, {"Accept": "text/event-stream", "Mcp-Session-Id": s})
        try:
            assert st.read_head(10) == 200
            st.wait_for(lambda ln: ln.startswith(":") and "keepalive" in ln, timeout=5)
        finally:
            st.close()
    finally:
        os.unlink(cfg)


def test_claude_desktop_json_config_is_accepted(switchyard):
    py, fixture = FIXTURE_CMD
    cfg = write_tmp(json.dumps({"mcpServers": {"fixture": {"command": py, "args": [fixture]}}}), ".json")
    try:
        d = switchyard("--config", cfg)  # --host/--port on the command line: ephemeral port

        async def go():
            async with mcp_session(d.url) as (s, _):
                assert text_of(await s.call_tool("echo", {"text": "claude"})) == "claude"

        run_async(go, timeout=30)
    finally:
        os.unlink(cfg)


@pytest.mark.parametrize("content,suffix,key", [
    ("servers:\n  a:\n    command: /bin/cat\nlimits:\n  max_sessions: lots\n", ".yaml", "limits.max_sessions"),
    ("servers:\n  a:\n    args: [x]\n", ".yaml", "servers.a.command"),
    ("default_server: nope\nservers:\n  a:\n    command: /bin/cat\n", ".yaml", "default_server"),
    ("servers:\n  a:\n    command: /bin/cat\nlimits:\n  max_body_byte: 1\n", ".yaml", "limits.max_body_byte"),
    ('{"mcpServers": {"a": {"command": "/bin/cat", "argz": []}}}', ".json", "mcpServers.a.argz"),
])
def test_bad_config_exits_78_naming_the_key(content, suffix, key):
    cfg = write_tmp(content, suffix)
    try:
        cp = subprocess.run([SWITCHYARD_BIN, "--config", cfg, "--host", "127.0.0.1", "--port", "0"],
                            capture_output=True, timeout=20)
    finally:
        os.unlink(cfg)
    err = cp.stderr.decode()
    assert cp.returncode == 78, f"exit {cp.returncode}, stderr: {err!r}"
    assert cp.stdout == b"", cp.stdout
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected exactly one stderr line: {err!r}"
    assert key in lines[0], f"the error line does not name {key!r}: {lines[0]!r}"


# ---------------------------------------------------------------------------------------------
# Limits and timeouts
# ---------------------------------------------------------------------------------------------

def test_max_sessions_503_then_room_after_delete(switchyard):
    d = switchyard("--max-sessions", "2", child=FIXTURE_CMD)
    a, _ = raw_initialize(d.url)
    b, _ = raw_initialize(d.url)
    r = post(d.url, init_body(), proto=None)
    assert r.status == 503, r
    assert r.header("retry-after") == "1", r
    assert r.json()["error"]["code"] == -32000, r
    assert r.json()["id"] is None, r
    # existing sessions unaffected
    assert result_text(tool_call(d.url, a, "echo", {"text": "a"})) == "a"
    assert curl("DELETE", d.url, headers={"Mcp-Session-Id": b}).status == 200
    c, _ = raw_initialize(d.url)
    assert result_text(tool_call(d.url, c, "echo", {"text": "c"})) == "c"


def test_idle_session_times_out_and_child_exits(switchyard):
    d = switchyard("--session-idle-timeout", "2s", child=FIXTURE_CMD)
    s, _ = raw_initialize(d.url)
    keep, _ = raw_initialize(d.url)
    pid = int(result_text(tool_call(d.url, s, "whoami", {})))
    t0 = time.monotonic()
    # keep the other session busy; the idle one must expire (we do not touch it while waiting)
    busy = threading.Event()

    def keep_alive():
        while not busy.is_set():
            tool_call(d.url, keep, "echo", {"text": "busy"})
            busy.wait(0.5)

    th = threading.Thread(target=keep_alive, daemon=True)
    th.start()
    try:
        wait_until(lambda: not pid_alive(pid), 20, interval=0.1, what="idle session's child to exit")
    finally:
        busy.set()
        th.join(10)
    assert time.monotonic() - t0 >= 1.5, "session expired before its idle timeout"
    r = post(d.url, rpc("ping"), session=s)
    assert r.status == 404 and r.json()["error"]["code"] == -32001, r
    # the active session was not expired
    assert result_text(tool_call(d.url, keep, "echo", {"text": "alive"})) == "alive"


def test_unstartable_command_fails_fast_with_errno(switchyard):
    missing = "/nonexistent/switchyard-e2e-no-such-command"
    d = switchyard(child=[missing, "--flag"])
    for attempt in range(3):
        r = post(d.url, init_body(), proto=None)
        assert r.status == 200, r
        m = r.messages()[-1]
        assert m.get("id") == 1 and "error" in m, m
        assert m["error"]["code"] == -32000, m
        msg = m["error"]["message"]
        assert missing in msg, msg
        assert ("No such file" in msg) or ("ENOENT" in msg), f"errno not named: {msg!r}"
    # Back-off: the three answers came from one failed spawn (and at most a retry), not one spawn each.
    assert d.log_text().count("msg=spawn_failed") <= 2, d.log_tail(20)
    d.assert_alive()


def _raw_request(d, method: str, headers: dict, body: bytes = b""):
    """Sends one request on a raw socket (curl -i holds headers back until body bytes arrive)."""
    so = socket.create_connection((d.host, d.port), timeout=10)
    head = f"{method} /mcp HTTP/1.1\r\nHost: {d.host}:{d.port}\r\n"
    for k, v in headers.items():
        head += f"{k}: {v}\r\n"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    so.sendall(head.encode() + b"\r\n" + body)
    return so


def _read_head(so, timeout: float) -> tuple[str, float]:
    so.settimeout(timeout)
    t0 = time.monotonic()
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = so.recv(65536)
        assert chunk, f"connection closed before headers: {data!r}"
        data += chunk
    return data.split(b"\r\n\r\n", 1)[0].decode("iso-8859-1"), time.monotonic() - t0


def test_sse_response_headers_are_sent_promptly(switchyard):
    """With the default 15s keep-alive, a GET stream and a silent tools/call stream must still get
    their status line and headers at once, not with the first event (checked on a raw socket)."""
    d = switchyard(child=FIXTURE_CMD)
    s, _ = raw_initialize(d.url)
    get = _raw_request(d, "GET", {"Accept": "text/event-stream", "Mcp-Session-Id": s, "MCP-Protocol-Version": PROTO})
    body = json.dumps(rpc("tools/call", {"name": "sleep", "arguments": {"seconds": 6, "steps": 0}})).encode()
    call = _raw_request(d, "POST", {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
                                    "Mcp-Session-Id": s, "MCP-Protocol-Version": PROTO}, body)
    try:
        head, waited = _read_head(get, 3)
        assert head.startswith("HTTP/1.1 200"), head
        assert re.search(r"(?im)^content-type:\s*text/event-stream", head), head
        assert waited < 3
        head, waited = _read_head(call, 3)
        assert head.startswith("HTTP/1.1 200"), head
        assert re.search(r"(?im)^content-type:\s*text/event-stream", head), head
        assert waited < 3
        call.settimeout(15)
        rest = b""
        while b"0\r\n\r\n" not in rest:
            chunk = call.recv(65536)
            assert chunk, rest
            rest += chunk
        assert b'"slept"' in rest, rest
    finally:
        get.close()
        call.close()


# ---------------------------------------------------------------------------------------------
# Shutdown
# ---------------------------------------------------------------------------------------------

def test_sigterm_ends_streams_kills_children_and_exits_0(switchyard):
    d = switchyard("--spares", "1", "--sse-keepalive", "1s", child=FIXTURE_CMD)
    s1, _ = raw_initialize(d.url)
    s2, _ = raw_initialize(d.url)
    pids = [int(result_text(tool_call(d.url, s, "whoami", {}))) for s in (s1, s2)]
    assert len(set(pids)) == 2 and all(pid_alive(p) for p in pids)
    st = CurlStream(d.url, {"Accept": "text/event-stream", "Mcp-Session-Id": s1, "MCP-Protocol-Version": PROTO})
    # a long request in flight at shutdown
    inflight = CurlStream(d.url, {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
                                  "Mcp-Session-Id": s2, "MCP-Protocol-Version": PROTO}, method="POST",
                          body=json.dumps(rpc("tools/call", {"name": "sleep",
                                                             "arguments": {"seconds": 60, "steps": 60}})).encode())
    try:
        assert st.read_head(10) == 200
        assert inflight.read_head(10) == 200
        code = d.terminate(timeout=15)
        assert code == 0, f"exit code {code}; log:\n{d.log_tail()}"
        st.wait_eof(timeout=5)
        inflight.wait_eof(timeout=5)
    finally:
        st.close()
        inflight.close()
    wait_until(lambda: not any(pid_alive(p) for p in pids), 10, what="children to exit after shutdown")


@pytest.mark.parametrize("sig", [signal.SIGINT])
def test_sigint_also_exits_0(switchyard, sig):
    d = switchyard(child=FIXTURE_CMD)
    s, _ = raw_initialize(d.url)
    pid = int(result_text(tool_call(d.url, s, "whoami", {})))
    assert d.signal_and_wait(sig) == 0, d.log_tail()
    wait_until(lambda: not pid_alive(pid), 10, what="child to exit after SIGINT")

"""Shared machinery for the Switchyard end-to-end tests.

The suite drives the real daemon binary ($SWITCHYARD_BIN) over real sockets, with real stdio
children (the FastMCP fixture in Tests/Fixtures and the published `mcp-server-time`).

Environment:
  SWITCHYARD_BIN  absolute path of the daemon (default: <repo>/.build/release/switchyard)
  MCP2_PYTHON     python of the venv holding the MCP SDK 2.x line (default: <repo>/.venv/mcp2/bin/python)
The tests themselves run under the python of the SDK 1.x venv (sys.executable).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import queue
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Callable, Iterable

import pytest

E2E_DIR = Path(__file__).resolve().parent
REPO = E2E_DIR.parent.parent
FIXTURE_SERVER = REPO / "Tests" / "Fixtures" / "fastmcp_server.py"

# Do not resolve symlinks: the venv's python is a symlink and resolving it would leave the venv.
PY1 = os.path.abspath(sys.executable)
PY1_BIN = os.path.dirname(PY1)
MCP_SERVER_TIME = os.path.join(PY1_BIN, "mcp-server-time")

SWITCHYARD_BIN = os.environ.get("SWITCHYARD_BIN") or str(REPO / ".build" / "release" / "switchyard")
MCP2_PYTHON = os.environ.get("MCP2_PYTHON") or str(REPO / ".venv" / "mcp2" / "bin" / "python")

FIXTURE_CMD = [PY1, str(FIXTURE_SERVER)]

STARTUP_TIMEOUT = 20.0
SHUTDOWN_TIMEOUT = 15.0  # shutdown_grace defaults to 5s; leave room on a loaded 2-core box

MSG_LISTENING_RE = re.compile(r'(?:^|\s)msg="?listening"?(?:\s|$)')
ADDRESS_RE = re.compile(r'(?:^|\s)address="?(\[[^\]]+\]|[^\s":]+):(\d+)"?(?:\s|$)')


def wait_until(pred: Callable[[], object], timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll `pred` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    # state is the field after the ")" that closes comm
    state = stat[stat.rindex(")") + 2:].split()[0]
    return state != "Z"


class Daemon:
    """One running switchyard process."""

    def __init__(self, args: list[str], name: str = "switchyard"):
        if not os.path.isfile(SWITCHYARD_BIN) or not os.access(SWITCHYARD_BIN, os.X_OK):
            pytest.fail(f"switchyard binary not found or not executable: {SWITCHYARD_BIN} "
                        f"(set SWITCHYARD_BIN or run `make build`)")
        self.args = [SWITCHYARD_BIN, *args]
        self.tmp = tempfile.TemporaryDirectory(prefix=f"{name}-")
        self.stderr_path = Path(self.tmp.name) / "stderr.log"
        self.stdout_path = Path(self.tmp.name) / "stdout.log"
        self._stderr = open(self.stderr_path, "wb")
        self._stdout = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=self._stdout, stderr=self._stderr,
            start_new_session=True, cwd=str(REPO),
        )
        self.host: str | None = None
        self.port: int | None = None
        self.addresses: list[tuple[str, int]] = []
        self.exit_code: int | None = None

    # -- startup -------------------------------------------------------------------------------
    def wait_listening(self, count: int = 1, timeout: float = STARTUP_TIMEOUT) -> "Daemon":
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"switchyard exited with {self.proc.returncode} before listening; stderr:\n{self.log_tail()}")
            found = []
            for line in self.log_lines():
                if not MSG_LISTENING_RE.search(line):
                    continue
                m = ADDRESS_RE.search(line)
                if m:
                    found.append((m.group(1), int(m.group(2))))
            return found if len(found) >= count else None

        try:
            self.addresses = wait_until(ready, timeout, what="msg=listening log line")
        except AssertionError:
            self.kill()
            raise
        self.host, self.port = self.addresses[0]
        return self

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return self.base + "/mcp"

    # -- logs ------------------------------------------------------------------------------------
    def log_text(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_bytes().decode("utf-8", "replace")

    def log_lines(self) -> list[str]:
        return self.log_text().splitlines()

    def log_tail(self, n: int = 60) -> str:
        lines = [ln if len(ln) < 400 else ln[:400] + "…" for ln in self.log_lines()[-n:]]
        return "\n".join(lines)

    def stdout_bytes(self) -> bytes:
        return self.stdout_path.read_bytes()

    # -- liveness / shutdown -------------------------------------------------------------------
    def alive(self) -> bool:
        return self.proc.poll() is None

    def assert_alive(self):
        assert self.alive(), (f"switchyard died (exit {self.proc.returncode}); stderr tail:\n{self.log_tail()}")

    def terminate(self, timeout: float = SHUTDOWN_TIMEOUT) -> int:
        """SIGTERM, wait; returns the exit code (kills the process group and fails on a hang)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"switchyard did not exit within {timeout}s of SIGTERM; "
                                     f"stderr tail:\n{self.log_tail()}")
        self.exit_code = self.proc.returncode
        return self.exit_code

    def signal_and_wait(self, sig: int, timeout: float = SHUTDOWN_TIMEOUT) -> int:
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"switchyard did not exit within {timeout}s of signal {sig}; "
                                 f"stderr tail:\n{self.log_tail()}")
        self.exit_code = self.proc.returncode
        return self.exit_code

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)

    def close(self):
        self.kill()
        self._stderr.close()
        self._stdout.close()
        self.tmp.cleanup()


def start_daemon(*args: str, listeners: int = 1, name: str = "switchyard") -> Daemon:
    d = Daemon(list(args), name=name)
    try:
        return d.wait_listening(count=listeners)
    except BaseException:
        d.close()
        raise


def cli_args(*extra: str, child: Iterable[str] | None = None, port_args: bool = True) -> list[str]:
    a: list[str] = []
    if port_args:
        a += ["--host", "127.0.0.1", "--port", "0"]
    a += list(extra)
    if child is not None:
        a += ["--", *child]
    return a


def finish_daemon(d: Daemon):
    """Teardown: SIGTERM, wait, assert a clean exit 0 and an empty stdout."""
    try:
        stopped_by_test = d.exit_code is not None  # the test itself stopped it (and checked it)
        was_alive = d.alive()
        code = d.terminate()
        if not stopped_by_test:
            assert was_alive, f"switchyard had already exited ({code}) before teardown; stderr:\n{d.log_tail()}"
        assert code == 0, f"switchyard exited {code} after SIGTERM; stderr tail:\n{d.log_tail()}"
        out = d.stdout_bytes()
        assert out == b"", f"switchyard wrote to stdout (logs belong on stderr): {out[:300]!r}"
    finally:
        d.close()


@pytest.fixture
def switchyard():
    """Factory: switchyard(*args, child=[...]) starts a daemon (ephemeral port) and returns it.

    Every daemon started is SIGTERMed at teardown and must exit 0.
    """
    started: list[Daemon] = []

    def factory(*extra: str, child: Iterable[str] | None = None, port_args: bool = True,
                listeners: int = 1) -> Daemon:
        d = start_daemon(*cli_args(*extra, child=child, port_args=port_args), listeners=listeners)
        started.append(d)
        return d

    yield factory
    errors = []
    for d in started:
        try:
            finish_daemon(d)
        except AssertionError as e:  # report all, fail once
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors))


@pytest.fixture
def fixture_daemon(switchyard):
    """A daemon serving the FastMCP fixture with two warm spares."""
    return switchyard("--spares", "2", child=FIXTURE_CMD)


# ---------------------------------------------------------------------------------------------
# MCP SDK 1.x helpers
# ---------------------------------------------------------------------------------------------

@asynccontextmanager
async def mcp_session(url: str, **session_kwargs):
    """An initialized official-SDK (1.x) ClientSession over Streamable HTTP.

    Yields (session, get_session_id).
    """
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(url) as (read, write, get_session_id):
        async with ClientSession(read, write, **session_kwargs) as session:
            await session.initialize()
            yield session, get_session_id


def text_of(result) -> str:
    """Concatenated text content of a CallToolResult; fails on isError."""
    assert not result.isError, f"tool returned an error: {result.content}"
    return "".join(c.text for c in result.content if getattr(c, "type", None) == "text")


def run_async(fn, *args, timeout: float = 60.0):
    """Run `fn(*args)` (an async function) in a fresh event loop, bounded by `timeout`."""
    import anyio

    async def bounded():
        with anyio.fail_after(timeout):
            return await fn(*args)

    return anyio.run(bounded)


# ---------------------------------------------------------------------------------------------
# Raw HTTP via curl
# ---------------------------------------------------------------------------------------------

PROTO = "2025-06-18"
ACCEPT_BOTH = "application/json, text/event-stream"


class HttpResponse:
    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes,
                 elapsed: float, statuses: list[int]):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.elapsed = elapsed
        self.statuses = statuses  # every status line curl saw (1xx included)

    def header(self, name: str) -> str | None:
        vals = self.header_all(name)
        return vals[-1] if vals else None

    def header_all(self, name: str) -> list[str]:
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def has_header(self, name: str) -> bool:
        return bool(self.header_all(name))

    @property
    def content_type(self) -> str | None:
        return self.header("content-type")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def messages(self) -> list[dict]:
        """JSON-RPC messages in the body, whether it is JSON or SSE."""
        return [json.loads(d) for d in self.message_texts()]

    def message_texts(self) -> list[str]:
        """Raw JSON text of each message (SSE `data:` payloads, or the whole JSON body)."""
        ct = (self.content_type or "").lower()
        if ct.startswith("text/event-stream"):
            return [e["data"] for e in parse_sse(self.text) if e.get("data")]
        return [self.text]

    def rpc_error_code(self):
        msgs = self.messages()
        assert len(msgs) == 1, f"expected one JSON-RPC message, got {self.body[:500]!r}"
        m = msgs[0]
        assert "error" in m, f"expected a JSON-RPC error, got {m}"
        return m["error"]["code"]

    def __repr__(self):
        return (f"<HTTP {self.status} {self.reason} headers={self.headers} "
                f"body={self.body[:600]!r}>")


def recv_once(sock, deadline: float) -> bytes | None:
    """One recv before `deadline` (monotonic): the bytes, b"" on EOF or reset, None when the deadline passed."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return None
    sock.settimeout(remaining)
    try:
        return sock.recv(65536)
    except socket.timeout:
        return None
    except OSError:
        return b""


def parse_sse(text: str) -> list[dict]:
    """Parse an SSE body into events: dicts with event, data, id, and comments (list)."""
    events = []
    cur: dict = {"comments": []}
    data_lines: list[str] = []
    for line in re.split(r"\r\n|\r|\n", text):
        if line == "":
            if data_lines or cur.get("event") or cur.get("id") or cur["comments"]:
                cur["data"] = "\n".join(data_lines)
                events.append(cur)
            cur = {"comments": []}
            data_lines = []
            continue
        if line.startswith(":"):
            cur["comments"].append(line[1:].lstrip())
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data_lines.append(value)
        elif field in ("event", "id", "retry"):
            cur[field] = value
    if data_lines:
        cur["data"] = "\n".join(data_lines)
        events.append(cur)
    return events


def _parse_head_blocks(raw: bytes):
    """Split curl's -D output into header blocks; return the last (final) one and all statuses."""
    text = raw.decode("iso-8859-1")
    blocks = [b for b in re.split(r"\r?\n\r?\n", text) if b.strip()]
    statuses = []
    final = None
    for b in blocks:
        lines = re.split(r"\r?\n", b.strip("\r\n"))
        m = re.match(r"HTTP/\S+\s+(\d{3})\s*(.*)", lines[0])
        if not m:
            continue
        statuses.append(int(m.group(1)))
        hdrs = []
        for ln in lines[1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                hdrs.append((k.strip(), v.strip()))
        final = (int(m.group(1)), m.group(2), hdrs)
    assert final is not None, f"no HTTP status line in curl output: {raw[:500]!r}"
    return final, statuses


def curl(method: str, url: str, body: bytes | str | None = None, headers: dict | None = None,
         timeout: float = 20.0, extra: list[str] | None = None) -> HttpResponse:
    """One HTTP exchange with curl. Header value None removes curl's default for that header.

    Curl's default Content-Type/Accept are removed unless given, so every header is explicit.
    """
    hdrs = {"Accept": None, "Content-Type": None, "User-Agent": "switchyard-e2e"}
    if headers:
        for k, v in headers.items():
            for existing in list(hdrs):
                if existing.lower() == k.lower():
                    del hdrs[existing]
            hdrs[k] = v
    with tempfile.TemporaryDirectory(prefix="curl-") as td:
        head_f = os.path.join(td, "head")
        body_f = os.path.join(td, "body")
        # HEAD must be sent with -I, or curl waits for a body the server never sends
        method_args = ["-I"] if method == "HEAD" else ["-X", method]
        cmd = ["curl", "-s", "-S", "--http1.1", *method_args, "-D", head_f, "-o", body_f,
               "--max-time", str(timeout)]
        for k, v in hdrs.items():
            cmd += ["-H", f"{k}:" if v is None else f"{k}: {v}"]
        if body is not None:
            if isinstance(body, str):
                body = body.encode()
            req_f = os.path.join(td, "req")
            with open(req_f, "wb") as f:
                f.write(body)
            cmd += ["--data-binary", "@" + req_f]
        cmd += extra or []
        cmd.append(url)
        t0 = time.monotonic()
        cp = subprocess.run(cmd, capture_output=True, timeout=timeout + 10)
        elapsed = time.monotonic() - t0
        raw_head = open(head_f, "rb").read() if os.path.exists(head_f) else b""
        raw_body = open(body_f, "rb").read() if os.path.exists(body_f) else b""
    if not raw_head:
        raise AssertionError(f"curl got no response (rc={cp.returncode}): {cp.stderr.decode()!r} cmd={cmd}")
    (status, reason, hdr_list), statuses = _parse_head_blocks(raw_head)
    return HttpResponse(status, reason, hdr_list, raw_body, elapsed, statuses)


def post(url: str, body, session: str | None = None, proto: str | None = PROTO,
         accept: str | None = ACCEPT_BOTH, content_type: str | None = "application/json",
         headers: dict | None = None, **kw) -> HttpResponse:
    h = {}
    if accept is not None:
        h["Accept"] = accept
    if content_type is not None:
        h["Content-Type"] = content_type
    if session is not None:
        h["Mcp-Session-Id"] = session
    if proto is not None:
        h["MCP-Protocol-Version"] = proto
    h.update(headers or {})
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    return curl("POST", url, body, h, **kw)


def init_body(proto: str = PROTO, id_=1, name: str = "curl") -> dict:
    return {"jsonrpc": "2.0", "id": id_, "method": "initialize",
            "params": {"protocolVersion": proto, "capabilities": {},
                       "clientInfo": {"name": name, "version": "0"}}}


def raw_initialize(url: str, proto: str = PROTO, send_initialized: bool = True,
                   headers: dict | None = None) -> tuple[str, HttpResponse]:
    """initialize + notifications/initialized with curl; returns (session_id, initialize response)."""
    r = post(url, init_body(proto), proto=None, headers=headers)
    assert r.status == 200, f"initialize failed: {r!r}"
    sid = r.header("mcp-session-id")
    assert sid, f"initialize answer lacks Mcp-Session-Id: {r!r}"
    msgs = r.messages()
    assert msgs and msgs[-1].get("id") == 1 and "result" in msgs[-1], f"bad initialize answer: {r!r}"
    if send_initialized:
        n = post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session=sid, proto=proto,
                 headers=headers)
        assert n.status == 202, f"notifications/initialized: {n!r}"
    return sid, r


# ---------------------------------------------------------------------------------------------
# Long-lived streams (GET SSE) via curl -N, read incrementally
# ---------------------------------------------------------------------------------------------

class CurlStream:
    """`curl -N -i` in the background; lines are read by a thread into a queue."""

    def __init__(self, url: str, headers: dict, method: str = "GET", body: bytes | None = None):
        cmd = ["curl", "-s", "-S", "-N", "-i", "--http1.1", "-X", method, "-H", "Accept:",
               "-H", "User-Agent: switchyard-e2e"]
        for k, v in headers.items():
            cmd += ["-H", f"{k}: {v}"]
        if body is not None:
            cmd += ["--data-binary", "@-"]
        cmd.append(url)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if body is not None else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if body is not None:
            self.proc.stdin.write(body)
            self.proc.stdin.close()
        self.lines: "queue.Queue[bytes | None]" = queue.Queue()
        self.all: list[bytes] = []
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self._t = threading.Thread(target=self._pump, daemon=True)
        self._t.start()

    def _pump(self):
        for line in iter(self.proc.stdout.readline, b""):
            self.lines.put(line)
        self.lines.put(None)

    def next_line(self, timeout: float) -> bytes | None:
        """Next raw line, None at EOF; AssertionError on timeout."""
        try:
            ln = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line from stream within {timeout}s; so far: {b''.join(self.all)[-800:]!r}")
        if ln is not None:
            self.all.append(ln)
        return ln

    def read_head(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            ln = self.next_line(max(0.01, deadline - time.monotonic()))
            assert ln is not None, f"stream ended before headers: {b''.join(self.all)!r}"
            s = ln.decode("iso-8859-1").rstrip("\r\n")
            m = re.match(r"HTTP/\S+\s+(\d{3})", s)
            if m:
                self.status = int(m.group(1))
                self.headers = []
                continue
            if s == "":
                if self.status is not None and self.status >= 200:
                    return self.status
                continue
            if ":" in s:
                k, v = s.split(":", 1)
                self.headers.append((k.strip(), v.strip()))

    def header(self, name: str) -> str | None:
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return vals[-1] if vals else None

    def wait_for(self, pred: Callable[[str], bool], timeout: float) -> str:
        """Read lines until pred(line) is true; returns that line (decoded, no EOL)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"stream: condition not met within {timeout}s; "
                                     f"tail: {b''.join(self.all)[-800:]!r}")
            ln = self.next_line(remaining)
            if ln is None:
                raise AssertionError(f"stream ended before condition; tail: {b''.join(self.all)[-800:]!r}")
            s = ln.decode("utf-8", "replace").rstrip("\r\n")
            if pred(s):
                return s

    def wait_eof(self, timeout: float) -> int:
        """Drain to EOF; return curl's exit code (0 = the server ended the response cleanly)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"stream did not end within {timeout}s; tail: {b''.join(self.all)[-500:]!r}")
            if self.next_line(remaining) is None:
                break
        return self.proc.wait(max(0.1, deadline - time.monotonic()) + 2)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# ---------------------------------------------------------------------------------------------
# Legacy HTTP+SSE (2024-11-05) and named servers
# ---------------------------------------------------------------------------------------------

import socket  # noqa: E402
from urllib.parse import urljoin, urlsplit  # noqa: E402

# The fixture plus `marked_sleep`, with `--stdin-log DIR` recording what each child got on stdin.
MARKER_FIXTURE = E2E_DIR / "fixture_marker_server.py"
MARKER_FIXTURE_CMD = [PY1, str(MARKER_FIXTURE)]
LEGACY_ENDPOINT_RE = re.compile(r"^(/servers/[A-Za-z0-9._-]+)?/messages\?sessionId=([0-9a-f]{32})$")


def write_config(content: str, suffix: str) -> str:
    """A temporary config file (the caller unlinks it)."""
    fd, path = tempfile.mkstemp(suffix=suffix, prefix="switchyard-e2e-")
    with os.fdopen(fd, "w") as f:
        f.write(content)
    return path


@asynccontextmanager
async def sse_session(url: str, **session_kwargs):
    """An initialized official-SDK (1.x) ClientSession over the legacy HTTP+SSE transport.

    Yields (session, info) where info["session_id"] is the id taken from the endpoint event.
    """
    from mcp import ClientSession
    from mcp.client.sse import sse_client

    info: dict = {}
    async with sse_client(url, timeout=10, sse_read_timeout=60,
                          on_session_created=lambda sid: info.__setitem__("session_id", sid)) as (read, write):
        async with ClientSession(read, write, **session_kwargs) as session:
            await session.initialize()
            yield session, info


def legacy_post(messages_url: str, body, content_type: str | None = "application/json",
                headers: dict | None = None, **kw) -> HttpResponse:
    """POST one message to a legacy messages URL (no MCP headers, no Accept)."""
    return post(messages_url, body, proto=None, accept=None, content_type=content_type, headers=headers, **kw)


class RawSSE:
    """A GET (or other method) over a raw socket; headers arrive as soon as the server sends them.

    Decodes chunked transfer encoding and SSE incrementally. `messages` collects every JSON `data`
    of `message` events seen so far (in order); `comments` every comment line.
    """

    def __init__(self, host: str, port: int, path: str, headers: dict | None = None, method: str = "GET",
                 connect_timeout: float = 10.0):
        self.host, self.port, self.path = host, port, path
        self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        h = {"Host": f"{host}:{port}", "User-Agent": "switchyard-e2e"}
        h.update(headers or {})
        req = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
        self.sock.sendall(req.encode("latin-1"))
        self.raw = b""          # undecoded bytes after the head
        self.body = b""         # decoded body bytes not yet split into lines
        self.all_body = b""     # everything decoded so far (for messages in assertions)
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.chunked = False
        self.length: int | None = None
        self.eof = False
        self.events: list[dict] = []       # every dispatched event (event, data)
        self.comments: list[str] = []
        self.messages: list[dict] = []
        self._pending: list[dict] = []     # events not yet returned by next_event
        self._cur_event: str | None = None
        self._cur_data: list[str] = []
        self._body_done = False

    # -- low level ---------------------------------------------------------------------------------
    def _recv(self, deadline: float) -> bool:
        data = recv_once(self.sock, deadline)
        if data is None:
            return False
        if not data:
            self.eof = True
            return True
        self.raw += data
        return True

    def read_head(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.raw:
            if self.eof:
                raise AssertionError(f"connection closed before the response head: {self.raw[:500]!r}")
            if not self._recv(deadline):
                raise AssertionError(f"no response head within {timeout}s for {self.path}: {self.raw[:500]!r}")
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/\S+\s+(\d{3})", lines[0])
        assert m, f"bad status line {lines[0]!r}"
        self.status = int(m.group(1))
        for ln in lines[1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                self.headers.append((k.strip(), v.strip()))
        self.chunked = "chunked" in (self.header("transfer-encoding") or "").lower()
        cl = self.header("content-length")
        self.length = int(cl) if cl is not None and not self.chunked else None
        self._decode()
        return self.status

    def header(self, name: str) -> str | None:
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return vals[-1] if vals else None

    def _decode(self):
        if self.status is None:
            return
        if not self.chunked:
            self.body += self.raw
            self.all_body += self.raw
            self.raw = b""
            if self.length is not None and len(self.all_body) >= self.length:
                self._body_done = True
        else:
            while True:
                i = self.raw.find(b"\r\n")
                if i < 0:
                    break
                size = int(self.raw[:i].split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self._body_done = True
                    self.raw = b""
                    break
                if len(self.raw) < i + 2 + size + 2:
                    break
                chunk = self.raw[i + 2:i + 2 + size]
                self.raw = self.raw[i + 2 + size + 2:]
                self.body += chunk
                self.all_body += chunk
        self._lines()

    def _lines(self):
        while b"\n" in self.body:
            line, self.body = self.body.split(b"\n", 1)
            s = line.decode("utf-8", "replace").rstrip("\r")
            if s == "":
                if self._cur_data or self._cur_event is not None:
                    ev = {"event": self._cur_event or "message", "data": "\n".join(self._cur_data)}
                    self.events.append(ev)
                    self._pending.append(ev)
                    if ev["event"] == "message" and ev["data"]:
                        try:
                            self.messages.append(json.loads(ev["data"]))
                        except ValueError:
                            pass
                self._cur_event, self._cur_data = None, []
            elif s.startswith(":"):
                self.comments.append(s[1:].strip())
            else:
                field, _, value = s.partition(":")
                if value.startswith(" "):
                    value = value[1:]
                if field == "event":
                    self._cur_event = value
                elif field == "data":
                    self._cur_data.append(value)

    def _pump(self, deadline: float) -> bool:
        """Read more; False on timeout. Sets eof at the end of the response."""
        if self.eof or self._body_done:
            self.eof = True
            return True
        ok = self._recv(deadline)
        self._decode()
        return ok

    @property
    def ended(self) -> bool:
        return self.eof or self._body_done

    # -- high level --------------------------------------------------------------------------------
    def next_event(self, timeout: float = 10.0) -> dict:
        """Next dispatched SSE event (comments are not events)."""
        deadline = time.monotonic() + timeout
        while not self._pending:
            if self.ended:
                raise AssertionError(f"stream ended; body so far: {self.all_body[-800:]!r}")
            if not self._pump(deadline):
                raise AssertionError(f"no SSE event within {timeout}s; body so far: {self.all_body[-800:]!r}")
        return self._pending.pop(0)

    def wait_message(self, pred: Callable[[dict], bool], timeout: float = 10.0) -> dict:
        """First `message` event (from now on, including already buffered ones) whose JSON matches."""
        deadline = time.monotonic() + timeout
        while True:
            while self._pending:
                ev = self._pending.pop(0)
                if ev["event"] == "message" and ev["data"]:
                    m = json.loads(ev["data"])
                    if pred(m):
                        return m
            if self.ended:
                raise AssertionError(f"stream ended before the expected message; body: {self.all_body[-800:]!r}")
            if not self._pump(deadline):
                raise AssertionError(f"expected message not seen within {timeout}s; "
                                     f"body so far: {self.all_body[-1200:]!r}")

    def response(self, id_, timeout: float = 10.0) -> dict:
        return self.wait_message(lambda m: m.get("id") == id_ and ("result" in m or "error" in m), timeout)

    def wait_comment(self, pred: Callable[[str], bool], timeout: float, start: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for c in self.comments[start:]:
                if pred(c):
                    return c
            if self.ended:
                raise AssertionError(f"stream ended before the comment; body: {self.all_body[-800:]!r}")
            if not self._pump(deadline):
                raise AssertionError(f"no matching comment within {timeout}s; body: {self.all_body[-800:]!r}")

    def wait_end(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.ended:
            if not self._pump(deadline):
                raise AssertionError(f"stream did not end within {timeout}s; body: {self.all_body[-500:]!r}")

    def read_all(self, timeout: float = 10.0) -> bytes:
        """For a finite (non-stream) answer: the whole body."""
        self.wait_end(timeout)
        return self.all_body

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class LegacyClient:
    """A hand-driven legacy session: RawSSE stream + POSTs to the advertised messages URL."""

    def __init__(self, daemon, sse_path: str = "/sse", headers: dict | None = None):
        self.daemon = daemon
        h = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        h.update(headers or {})
        self.stream = RawSSE(daemon.host, daemon.port, sse_path, h)
        self.sse_path = sse_path
        self.endpoint: str | None = None
        self.session_id: str | None = None
        self.messages_url: str | None = None

    def open(self, timeout: float = 10.0) -> "LegacyClient":
        st = self.stream.read_head(timeout)
        assert st == 200, f"GET {self.sse_path}: HTTP {st} {self.stream.headers} {self.stream.raw[:300]!r}"
        ev = self.stream.next_event(timeout)
        assert ev["event"] == "endpoint", f"first event must be `endpoint`, got {ev}"
        self.endpoint = ev["data"]
        m = LEGACY_ENDPOINT_RE.match(self.endpoint)
        assert m, f"endpoint data is not /messages?sessionId=<32 hex>: {self.endpoint!r}"
        self.session_id = m.group(2)
        self.messages_url = urljoin(self.daemon.base + self.sse_path, self.endpoint)
        return self

    def post(self, body, **kw) -> HttpResponse:
        return legacy_post(self.messages_url, body, **kw)

    def send(self, body, **kw) -> HttpResponse:
        r = self.post(body, **kw)
        assert r.status == 202, f"POST {self.messages_url} {str(body)[:200]}: expected 202, got {r!r}"
        return r

    def request(self, method: str, params: dict | None = None, id_=1, timeout: float = 15.0) -> dict:
        m = {"jsonrpc": "2.0", "id": id_, "method": method}
        if params is not None:
            m["params"] = params
        self.send(m)
        return self.stream.response(id_, timeout)

    def initialize(self, proto: str = "2024-11-05", id_=0) -> dict:
        res = self.request("initialize", {"protocolVersion": proto, "capabilities": {},
                                          "clientInfo": {"name": "raw-legacy", "version": "0"}}, id_=id_)
        assert "result" in res, f"initialize failed: {res}"
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return res

    def call_tool(self, name: str, args: dict, id_, meta: dict | None = None, timeout: float = 15.0) -> dict:
        params = {"name": name, "arguments": args}
        if meta:
            params["_meta"] = meta
        return self.request("tools/call", params, id_=id_, timeout=timeout)

    def close(self):
        self.stream.close()


def tool_result_text(msg: dict) -> str:
    assert "result" in msg and not msg["result"].get("isError"), f"tool call failed: {msg}"
    return "".join(c.get("text", "") for c in msg["result"]["content"] if c.get("type") == "text")


def assert_utc_time_payload(payload: dict, before, after):
    """mcp-server-time's get_current_time(UTC) answer: UTC, and between the two wall-clock readings."""
    from datetime import datetime
    assert payload["timezone"] == "UTC", payload
    t = datetime.fromisoformat(payload["datetime"])
    assert t.utcoffset().total_seconds() == 0, payload
    assert before.timestamp() - 1 <= t.timestamp() <= after.timestamp() + 1, (before, t, after)

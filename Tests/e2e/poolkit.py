"""Helpers for the child-pool end-to-end tests (test_pool_*.py).

- `pool_daemon(switchyard, servers)` starts a daemon from a JSON config with an admin listener and
  returns (daemon, Admin).
- `Admin` reads /pools, /children, /sessions from the admin listener (its port comes from the
  `msg=admin_listening address=…` log line).
- `McpHttp` is a small raw Streamable-HTTP client on http.client (thread-safe per instance use):
  initialize / notify / request, the answer parsed from JSON or SSE.
- `StreamPost` is a POST whose (SSE) answer is read incrementally (RawSSE from conftest).
- `Recording` reads the file that Tests/Fixtures/recording_child.py appends received lines to.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import tempfile
import time
from pathlib import Path

from conftest import (
    PROTO, PY1, REPO, SWITCHYARD_BIN, RawSSE, parse_sse, wait_until, write_config,
)

RECORDING_CHILD = REPO / "Tests" / "Fixtures" / "recording_child.py"
FASTMCP_FIXTURE = REPO / "Tests" / "Fixtures" / "fastmcp_server.py"
ADMIN_RE = re.compile(r'msg="?admin_listening"?.*?\baddress="?(127\.0\.0\.1|\[::1\]|::1):(\d+)')


def demo_server() -> dict:
    return {"command": SWITCHYARD_BIN, "args": ["demo-server"]}


def fastmcp_server() -> dict:
    return {"command": PY1, "args": [str(FASTMCP_FIXTURE)]}


def recording_server(record_file: str) -> dict:
    return {"command": PY1, "args": [str(RECORDING_CHILD)], "env": {"RECORD_FILE": record_file}}


def pool_daemon(switchyard, servers: dict, default: str | None = None, limits: dict | None = None):
    """Start a daemon serving `servers` (name -> server mapping incl. `pool`), admin on 127.0.0.1:0."""
    cfg = {"listen": [{"address": "127.0.0.1:0"}], "admin": {"address": "127.0.0.1:0"}, "servers": servers}
    if default:
        cfg["default_server"] = default
    if limits:
        cfg["limits"] = limits
    path = write_config(json.dumps(cfg), ".json")
    try:
        d = switchyard("--config", path, port_args=False)
    finally:
        os.unlink(path)
    return d, Admin(d)


class Admin:
    def __init__(self, daemon):
        self.daemon = daemon

        def find():
            m = ADMIN_RE.search(daemon.log_text())
            return m and (m.group(1).strip("[]"), int(m.group(2)))

        self.host, self.port = wait_until(find, 10, what="msg=admin_listening log line")

    def get(self, path: str):
        c = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            assert r.status == 200, f"admin GET {path}: {r.status} {body[:300]!r}"
            return json.loads(body)
        finally:
            c.close()

    def pool(self, server: str) -> dict:
        pools = self.get("/pools")["pools"]
        for p in pools:
            if p["server"] == server:
                return p
        raise AssertionError(f"no pool {server!r} in /pools: {pools}")

    def children(self, server: str | None = None, live_only: bool = True) -> list[dict]:
        rows = self.get("/children")["children"]
        if server is not None:
            rows = [r for r in rows if r["server"] == server]
        if live_only:
            rows = [r for r in rows if r["state"] not in ("exiting",)]
        return rows

    def sessions(self, server: str | None = None) -> list[dict]:
        rows = self.get("/sessions")["sessions"]
        if server is not None:
            rows = [r for r in rows if r["server"] == server]
        return rows

    def session(self, sid: str) -> dict | None:
        for r in self.get("/sessions")["sessions"]:
            if r["id"] == sid:
                return r
        return None


def _messages_of(content_type: str, body: bytes) -> list[dict]:
    ct = (content_type or "").lower()
    if ct.startswith("text/event-stream"):
        return [json.loads(e["data"]) for e in parse_sse(body.decode("utf-8", "replace")) if e.get("data")]
    if not body.strip():
        return []
    v = json.loads(body)
    return v if isinstance(v, list) else [v]


class Reply:
    def __init__(self, status: int, headers, body: bytes, elapsed: float):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed
        self.content_type = headers.get("content-type", "")
        self.messages = _messages_of(self.content_type, body) if status != 202 else []

    def answer(self, id_=None) -> dict:
        """The (last) response message; with id_, the response whose id equals it."""
        rs = [m for m in self.messages if ("result" in m or "error" in m)]
        assert rs, f"no JSON-RPC response in HTTP {self.status} {self.body[:500]!r}"
        if id_ is not None:
            rs = [m for m in rs if m.get("id") == id_]
            assert rs, f"no response with id {id_!r} in {self.body[:500]!r}"
        return rs[-1]

    def notifications(self) -> list[dict]:
        return [m for m in self.messages if "method" in m and "id" not in m]

    def __repr__(self):
        return f"<Reply {self.status} {self.content_type} {self.body[:400]!r} in {self.elapsed:.2f}s>"


class McpHttp:
    """A raw Streamable-HTTP client session (one HTTP connection per exchange)."""

    def __init__(self, daemon, path: str = "/mcp", timeout: float = 30.0):
        self.host, self.port = daemon.host, daemon.port
        self.path = path
        self.timeout = timeout
        self.sid: str | None = None
        self.init_result: dict | None = None
        self.proto = PROTO

    def exchange(self, method: str, body: bytes | None = None, headers: dict | None = None,
                 timeout: float | None = None) -> Reply:
        h = {"Accept": "application/json, text/event-stream", "User-Agent": "switchyard-e2e-pool"}
        if body is not None:
            h["Content-Type"] = "application/json"
        if self.sid:
            h["Mcp-Session-Id"] = self.sid
            h["MCP-Protocol-Version"] = self.proto
        h.update(headers or {})
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout)
        t0 = time.monotonic()
        try:
            c.request(method, self.path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            return Reply(r.status, hdrs, data, time.monotonic() - t0)
        finally:
            c.close()

    def post(self, msg, **kw) -> Reply:
        return self.exchange("POST", json.dumps(msg).encode(), **kw)

    def initialize(self, id_=1, name: str = "pool-e2e", send_initialized: bool = True, proto: str = PROTO,
                   **kw) -> Reply:
        self.proto = proto
        r = self.post({"jsonrpc": "2.0", "id": id_, "method": "initialize",
                       "params": {"protocolVersion": proto, "capabilities": {},
                                  "clientInfo": {"name": name, "version": "0"}}}, **kw)
        if r.status == 200 and r.headers.get("mcp-session-id"):
            a = r.answer()
            if "result" in a:
                self.sid = r.headers["mcp-session-id"]
                self.init_result = a["result"]
                if send_initialized:
                    n = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
                    assert n.status == 202, f"notifications/initialized: {n!r}"
        return r

    def must_initialize(self, **kw) -> "McpHttp":
        r = self.initialize(**kw)
        assert self.sid, f"initialize failed: {r!r}"
        return self

    def notify(self, method: str, params: dict | None = None) -> Reply:
        m = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            m["params"] = params
        r = self.post(m)
        assert r.status == 202, f"{method}: expected 202, got {r!r}"
        return r

    def request(self, method: str, params: dict | None = None, id_=1, **kw) -> Reply:
        m = {"jsonrpc": "2.0", "id": id_, "method": method}
        if params is not None:
            m["params"] = params
        return self.post(m, **kw)

    def call(self, name: str, args: dict, id_=1, meta: dict | None = None, **kw) -> Reply:
        p = {"name": name, "arguments": args}
        if meta is not None:
            p["_meta"] = meta
        return self.request("tools/call", p, id_=id_, **kw)

    def delete(self) -> Reply:
        return self.exchange("DELETE")

    def open_get(self) -> RawSSE:
        s = RawSSE(self.host, self.port, self.path,
                   {"Accept": "text/event-stream", "Mcp-Session-Id": self.sid, "MCP-Protocol-Version": PROTO})
        st = s.read_head(10)
        assert st == 200, f"GET stream: HTTP {st} {s.headers} {s.raw[:300]!r}"
        return s

    def start_post(self, msg: dict) -> "StreamPost":
        return StreamPost(self.host, self.port, self.path, msg, self.sid)


def result_text(msg: dict) -> str:
    assert "result" in msg and not msg["result"].get("isError"), f"tool call failed: {msg}"
    return "".join(c.get("text", "") for c in msg["result"]["content"] if c.get("type") == "text")


class StreamPost(RawSSE):
    """A POST whose answer is read incrementally (SSE or JSON) with RawSSE's machinery."""

    def __init__(self, host: str, port: int, path: str, msg: dict, sid: str | None, connect_timeout: float = 10.0):
        body = json.dumps(msg).encode()
        # Build the object like RawSSE without sending its GET.
        self.host, self.port, self.path = host, port, path
        self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        h = {"Host": f"{host}:{port}", "User-Agent": "switchyard-e2e-pool", "Content-Type": "application/json",
             "Accept": "application/json, text/event-stream", "Content-Length": str(len(body))}
        if sid:
            h["Mcp-Session-Id"] = sid
            h["MCP-Protocol-Version"] = PROTO
        req = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
        self.sock.sendall(req.encode("latin-1") + body)
        self.raw = b""
        self.body = b""
        self.all_body = b""
        self.status = None
        self.headers = []
        self.chunked = False
        self.length = None
        self.eof = False
        self.events = []
        self.comments = []
        self.messages = []
        self._pending = []
        self._cur_event = None
        self._cur_data = []
        self._body_done = False
        self.t0 = time.monotonic()

    def all_messages(self, timeout: float = 10.0) -> list[dict]:
        """Whole answer (JSON or SSE) as messages, once it ended."""
        self.wait_end(timeout)
        ct = (self.header("content-type") or "").lower()
        if ct.startswith("text/event-stream"):
            return list(self.messages)
        return _messages_of(ct, self.all_body)


class Recording:
    """Lines received by recording_child.py children: list of (pid, raw_line, parsed)."""

    def __init__(self, path: str):
        self.path = path

    def entries(self) -> list[tuple[int, str, dict]]:
        try:
            data = Path(self.path).read_text()
        except FileNotFoundError:
            return []
        out = []
        for ln in data.splitlines():
            pid, _, raw = ln.partition("\t")
            try:
                out.append((int(pid), raw, json.loads(raw)))
            except ValueError:
                out.append((int(pid), raw, {}))
        return out

    def msgs(self, method: str | None = None, pid: int | None = None) -> list[dict]:
        return [m for p, _, m in self.entries()
                if (method is None or m.get("method") == method) and (pid is None or p == pid)]

    def tool_calls(self, name: str) -> list[dict]:
        return [m for m in self.msgs("tools/call") if (m.get("params") or {}).get("name") == name]


def tmp_record_file(tmp_path) -> str:
    return str(tmp_path / "record.jsonl")

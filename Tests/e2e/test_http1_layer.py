"""End-to-end tests of the HTTP/1.1 server layer (SwitchyardIO HTTPConnection/HTTPExchange/HTTPServer and
the sans-IO parser SwitchyardCore/HTTP/HTTP1.swift) that replaced libevent's evhttp.

The rest of the suite mostly talks to the gateway through curl and the MCP SDKs, one request per
connection; what those never exercise is the connection-level behaviour the new layer now owns itself:

  * pipelining (answers in request order, one request at a time) and keep-alive reuse;
  * `Expect: 100-continue` (the interim answer, and no interim answer for a refused body);
  * chunked request bodies (split chunks, extensions, trailers, the body limit -> 413 and close);
  * empty lines before a request line (RFC 9112 §2.2);
  * HTTP/1.0: close by default, `Connection: keep-alive` opt-in, unframed SSE that ends by closing;
  * the idle / read timeout (`limits.http_timeout`), which must not cut pending requests or streams;
  * a client that leaves while its request is pending;
  * `Date` and exact `Content-Length` on every answer, and body-less HEAD answers;
  * hundreds of concurrent keep-alive connections, and every descriptor given back afterwards.

Everything here goes over raw sockets (plus real curl where the brief is "a real client does this"), with
a deadline on every read: a daemon that neither answers nor closes fails a test instead of hanging it.
No test asserts speed; the deadlines are generous hang guards only.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import struct
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import pytest

from badkit import exchange, request
from conftest import (
    PROTO, SWITCHYARD_BIN, cli_args, curl, finish_daemon, parse_sse, post, raw_initialize,
    recv_once, start_daemon, wait_until, write_config,
)

MAX_BODY = 8 * 1024          # limits.max_body_bytes of the shared daemon
HANG = 10.0                  # generous deadline for anything that should happen "now"
SSE_FIELD_RE = re.compile(r"^(:|event:|data:|id:|retry:)")


# ---------------------------------------------------------------------------------------------
# Raw HTTP/1.x client with deadlines
# ---------------------------------------------------------------------------------------------

@dataclass
class Resp:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw_head: bytes

    def header(self, name: str) -> str | None:
        vals = self.header_all(name)
        return vals[-1] if vals else None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def messages(self) -> list[dict]:
        ct = (self.header("content-type") or "").lower()
        if ct.startswith("text/event-stream"):
            return [json.loads(e["data"]) for e in parse_sse(self.body.decode()) if e.get("data")]
        return [json.loads(self.body)]

    def __repr__(self):
        return f"<{self.version} {self.status} {self.reason!r} {self.headers} body={self.body[:300]!r}>"


class Conn:
    """One client connection. Responses are framed strictly by the headers (Content-Length or chunked),
    so a wrong Content-Length shows up as garbage at the start of the next response."""

    def __init__(self, daemon, timeout: float = HANG):
        self.sock = socket.create_connection((daemon.host, daemon.port), timeout=timeout)
        self.buf = b""
        self.eof = False

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        """Read once; False on deadline. Sets eof on EOF or reset."""
        data = recv_once(self.sock, deadline)
        if data is None:
            return False
        if not data:
            self.eof = True
        self.buf += data
        return True

    def read_head(self, timeout: float = HANG) -> Resp:
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            assert not self.eof, f"connection closed before a response head; got {self.buf[:400]!r}"
            assert self._fill(deadline), f"no response head within {timeout}s; got {self.buf[:400]!r}"
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("iso-8859-1").split("\r\n")
        m = re.match(r"(HTTP/\d\.\d) (\d{3}) ?(.*)$", lines[0])
        assert m, f"bad status line {lines[0]!r} (framing of the previous answer wrong?) in {head[:400]!r}"
        hdrs = []
        for ln in lines[1:]:
            assert ":" in ln, f"bad header line {ln!r}"
            k, v = ln.split(":", 1)
            hdrs.append((k.strip(), v.strip()))
        return Resp(m.group(1), int(m.group(2)), m.group(3), hdrs, b"", head + b"\r\n\r\n")

    def read_exact(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            assert not self.eof, f"EOF after {len(self.buf)} of {n} body bytes: {self.buf[:300]!r}"
            assert self._fill(deadline), f"body: {len(self.buf)} of {n} bytes before the deadline"
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_line(self, deadline: float) -> bytes:
        while b"\r\n" not in self.buf:
            assert not self.eof, f"EOF inside a chunked body: {self.buf[:300]!r}"
            assert self._fill(deadline), f"chunked body: no line before the deadline: {self.buf[:300]!r}"
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_response(self, timeout: float = HANG, head_only: bool = False, allow_interim: bool = False) -> Resp:
        """The next response. 1xx interim answers fail the read unless `allow_interim`."""
        deadline = time.monotonic() + timeout
        r = self.read_head(timeout)
        if 100 <= r.status < 200:
            assert allow_interim, f"unexpected interim response {r!r}"
            assert r.header("content-length") is None and r.header("transfer-encoding") is None, r
            return r
        if head_only or r.status in (204, 304):
            return r
        te = (r.header("transfer-encoding") or "").lower()
        cl = r.header_all("content-length")
        if "chunked" in te:
            assert not cl, f"both Transfer-Encoding and Content-Length: {r!r}"
            body = b""
            while True:
                size = int(self.read_line(deadline).split(b";")[0], 16)
                if size == 0:
                    assert self.read_line(deadline) == b"", "trailers in a response"
                    break
                body += self.read_exact(size, deadline)
                assert self.read_exact(2, deadline) == b"\r\n", "chunk not followed by CRLF"
            r.body = body
            return r
        assert len(cl) == 1, f"a complete answer needs exactly one Content-Length: {r!r}"
        r.body = self.read_exact(int(cl[0]), deadline)
        return r

    def nothing_more(self, linger: float = 0.3):
        """Nothing else arrives for `linger` seconds, and the connection stays open."""
        deadline = time.monotonic() + linger
        while self._fill(deadline):
            assert not self.eof, f"connection closed unexpectedly; pending bytes {self.buf[:300]!r}"
        assert self.buf == b"", f"unexpected extra bytes: {self.buf[:400]!r}"

    def wait_closed(self, timeout: float = HANG) -> bytes:
        """Reads until the server closes; returns whatever came before the EOF. Fails on the deadline."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            assert self._fill(deadline), (f"server did not close the connection within {timeout}s; "
                                          f"got {self.buf[:300]!r}")
        return self.buf

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


JSON_ONLY = "application/json"
BOTH = "application/json, text/event-stream"


def mcp_request(host: str, body: bytes | dict, sid: str | None = None, version: str = "HTTP/1.1",
                extra: list[tuple[str, str]] | None = None, method: str = "POST", path: str = "/mcp",
                content_length: bool = True, accept: str = JSON_ONLY) -> bytes:
    """A POST to /mcp. With Accept: application/json alone every answer is one Content-Length JSON body;
    with both types tools/call is answered as an SSE stream (chunked on HTTP/1.1)."""
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    h = [("Host", host), ("Accept", accept), ("Content-Type", "application/json"),
         ("MCP-Protocol-Version", PROTO)]
    if sid:
        h.append(("Mcp-Session-Id", sid))
    h += extra or []
    return request(method, path, h, body, version=version, content_length=content_length)


def echo_call(id_, text: str) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": text}}}


def sleep_call(id_, ms: int) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "method": "tools/call",
            "params": {"name": "sleep", "arguments": {"ms": ms}}}


def ping(id_) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "method": "ping"}


def tool_text(msg: dict) -> str:
    assert "result" in msg and not msg["result"].get("isError"), f"tool call failed: {msg}"
    return "".join(c.get("text", "") for c in msg["result"]["content"] if c.get("type") == "text")


def assert_echo(r: Resp, id_, text: str):
    assert r.status == 200, r
    msgs = r.messages()
    assert len(msgs) == 1, f"expected exactly one message, got {msgs}"
    assert msgs[0].get("id") == id_, f"answer for the wrong request: expected id {id_!r}, got {msgs[0]}"
    assert tool_text(msgs[0]) == text, msgs[0]


def assert_pong(r: Resp, id_):
    assert r.status == 200, r
    msgs = r.messages()
    assert msgs == [{"jsonrpc": "2.0", "id": id_, "result": {}}], r


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def config_text(**limits) -> str:
    lines = ["servers:", "  demo:", f"    command: {json.dumps(SWITCHYARD_BIN)}", "    args: [demo-server]",
             "    spares: 1", "limits:"]
    lines += [f"  {k}: {v}" for k, v in limits.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------

@dataclass
class GW:
    d: object
    host: str
    port: int
    hosthdr: str
    sid: str

    def req(self, body, sid: str | None = "default", **kw) -> bytes:
        return mcp_request(self.hosthdr, body, self.sid if sid == "default" else sid, **kw)

    def conn(self) -> Conn:
        return Conn(self.d)


@pytest.fixture(scope="module")
def gw():
    """The shared daemon: demo server, an 8 KiB body limit, a 10 s HTTP timeout, 500 ms SSE keep-alive."""
    cfg = write_config(config_text(max_body_bytes=MAX_BODY, http_timeout="10s", sse_keepalive="500ms"), ".yaml")
    try:
        d = start_daemon(*cli_args("--config", cfg), name="http1")
    finally:
        os.unlink(cfg)
    try:
        sid, _ = raw_initialize(d.url)
        yield GW(d, d.host, d.port, f"{d.host}:{d.port}", sid)
        d.assert_alive()
    finally:
        finish_daemon(d)


@pytest.fixture
def alive(gw):
    yield gw
    gw.d.assert_alive()


def new_session(gw: GW) -> str:
    sid, _ = raw_initialize(gw.d.url)
    return sid


# ---------------------------------------------------------------------------------------------
# 1. Pipelining
# ---------------------------------------------------------------------------------------------

def test_pipelined_requests_are_answered_in_order_on_a_kept_connection(alive):
    gw = alive
    c = gw.conn()
    try:
        # two complete requests in one write
        c.send(gw.req(echo_call("p-1", "first \u2460")) + gw.req(echo_call("p-2", "second, a bit longer \u2461")))
        assert_echo(c.read_response(), "p-1", "first \u2460")
        assert_echo(c.read_response(), "p-2", "second, a bit longer \u2461")
        c.nothing_more()
        # keep-alive: a third request on the same connection
        c.send(gw.req(echo_call("p-3", "third")))
        assert_echo(c.read_response(), "p-3", "third")
        # a slow request followed by a fast one in the same write: answers still in request order
        c.send(gw.req(sleep_call("p-slow", 400)) + gw.req(ping("p-fast")))
        r1 = c.read_response()
        assert r1.status == 200 and r1.messages()[0].get("id") == "p-slow", f"first answer must be p-slow: {r1!r}"
        assert tool_text(r1.messages()[0]) == "slept 400ms"
        assert_pong(c.read_response(), "p-fast")
        # three requests, the last one split across two writes
        three = gw.req(ping(41)) + gw.req(echo_call(42, "mid")) + gw.req(ping(43))
        cut = len(three) - 20
        c.send(three[:cut])
        time.sleep(0.05)
        c.send(three[cut:])
        assert_pong(c.read_response(), 41)
        assert_echo(c.read_response(), 42, "mid")
        assert_pong(c.read_response(), 43)
        # streamed (chunked SSE) answers in the pipeline: each stream ends before the next answer starts
        c.send(gw.req(echo_call("s-1", "streamed one"), accept=BOTH) + gw.req(ping("s-2"))
               + gw.req(echo_call("s-3", "streamed three"), accept=BOTH))
        r = c.read_response()
        assert (r.header("transfer-encoding") or "").lower() == "chunked", r
        assert_echo(r, "s-1", "streamed one")
        assert_pong(c.read_response(), "s-2")
        r = c.read_response()
        assert (r.header("content-type") or "").startswith("text/event-stream"), r
        assert_echo(r, "s-3", "streamed three")
        c.nothing_more()
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# 2. Expect: 100-continue
# ---------------------------------------------------------------------------------------------

def test_expect_100_continue_raw_socket(alive):
    gw = alive
    body = json.dumps(echo_call("e-1", "after the interim answer")).encode()
    c = gw.conn()
    try:
        full = gw.req(body, extra=[("Expect", "100-continue")])
        head = full[:-len(body)]
        assert b"Content-Length: %d\r\n" % len(body) in head
        c.send(head)
        interim = c.read_response(allow_interim=True)
        assert (interim.version, interim.status) == ("HTTP/1.1", 100), interim
        assert interim.raw_head == b"HTTP/1.1 100 Continue\r\n\r\n", interim.raw_head
        c.nothing_more()  # the final answer waits for the body
        c.send(body)
        assert_echo(c.read_response(), "e-1", "after the interim answer")
        # keep-alive after an Expect exchange; head and body in one write: a 100 is optional, the answer is not
        c.send(gw.req(echo_call("e-2", "same write"), extra=[("Expect", "100-continue")]))
        r = c.read_response(allow_interim=True)
        if r.status == 100:
            r = c.read_response()
        assert_echo(r, "e-2", "same write")
        c.nothing_more()
    finally:
        c.close()
    # HTTP/1.0 has no 1xx answers: the expectation is ignored and the server simply waits for the body
    body = json.dumps(echo_call("e-10", "one-oh expects")).encode()
    c = gw.conn()
    try:
        full = gw.req(body, version="HTTP/1.0", extra=[("Expect", "100-continue"), ("Connection", "keep-alive")])
        c.send(full[:-len(body)])
        c.nothing_more()
        c.send(body)
        r = c.read_response()  # fails on an interim answer
        assert r.version == "HTTP/1.0", r
        assert_echo(r, "e-10", "one-oh expects")
    finally:
        c.close()


def test_expect_100_continue_with_oversized_body_is_refused_without_interim_answer(alive):
    gw = alive
    c = gw.conn()
    try:
        c.send(gw.req(b"", extra=[("Expect", "100-continue"), ("Content-Length", str(MAX_BODY * 4))]))
        r = c.read_response()  # a 100 here would invite the client to upload the body we refuse
        assert r.status == 413, r
        assert "close" in (r.header("connection") or "").lower(), r
        assert c.wait_closed() == b""
    finally:
        c.close()


def test_expect_100_continue_with_curl(alive):
    gw = alive
    text = "x" * 2000  # > 1 KiB body, under the 8 KiB limit
    r = post(gw.d.url, echo_call("curl-e", text), session=gw.sid, headers={"Expect": "100-continue"})
    assert r.statuses == [100, 200], f"curl must see 100 Continue then 200: {r.statuses} {r!r}"
    msgs = r.messages()
    assert len(msgs) == 1 and msgs[0]["id"] == "curl-e" and tool_text(msgs[0]) == text, r


# ---------------------------------------------------------------------------------------------
# 3. Chunked request bodies
# ---------------------------------------------------------------------------------------------

def chunked(body: bytes, sizes: list[int], ext: bool = False, trailer: bytes = b"") -> bytes:
    out, i = b"", 0
    for n in sizes:
        part = body[i:i + n]
        i += n
        if not part:
            break
        out += b"%x%s\r\n" % (len(part), b";note=yes" if ext and i == n else b"") + part + b"\r\n"
    assert i >= len(body), "sizes do not cover the body"
    return out + b"0\r\n" + trailer + b"\r\n"


def test_chunked_body_is_answered_like_content_length(alive):
    gw = alive
    body = json.dumps(echo_call("c-1", "chunked \u00e9 body " + "y" * 300)).encode()
    c = gw.conn()
    try:
        c.send(gw.req(body))
        ref = c.read_response()
        assert_echo(ref, "c-1", "chunked \u00e9 body " + "y" * 300)

        head = gw.req(b"", extra=[("Transfer-Encoding", "chunked")])
        enc = chunked(body, [7, 13, 1, 100, 10_000], ext=True)
        # head, then the chunks in several writes (split inside size lines and inside data)
        pieces = [head, enc[:3], enc[3:25], enc[25:26], enc[26:200], enc[200:]]
        for p in pieces:
            c.send(p)
            time.sleep(0.02)
        r = c.read_response()
        assert (r.status, r.header("content-type"), r.header("mcp-session-id")) == \
               (ref.status, ref.header("content-type"), ref.header("mcp-session-id")), (r, ref)
        assert r.json() == ref.json(), (r, ref)
        assert r.body == ref.body, (r, ref)

        # with a trailer section, and a pipelined request behind it: the trailer is not a request
        enc2 = chunked(body, [50, 10_000], trailer=b"X-Checksum: abc\r\nX-Other: 1\r\n")
        c.send(head + enc2 + gw.req(ping("after-trailer")))
        r2 = c.read_response()
        assert r2.body == ref.body, r2
        assert_pong(c.read_response(), "after-trailer")
        c.nothing_more()
    finally:
        c.close()


def test_chunked_body_with_curl(alive):
    gw = alive
    msg = echo_call("c-curl", "curl chunked " + "z" * 3000)
    ref = post(gw.d.url, msg, session=gw.sid, accept=JSON_ONLY)
    r = post(gw.d.url, msg, session=gw.sid, accept=JSON_ONLY, headers={"Transfer-Encoding": "chunked"})
    assert ref.status == 200, ref
    assert (r.status, r.content_type) == (ref.status, ref.content_type), (r, ref)
    assert r.body == ref.body, (r, ref)
    assert r.json()["id"] == "c-curl" and tool_text(r.json()) == "curl chunked " + "z" * 3000


def test_chunked_body_over_the_limit_gets_413_and_close(alive):
    gw = alive
    head = gw.req(b"", extra=[("Transfer-Encoding", "chunked")])
    blob = b"a" * 3000
    # 3 x 3000 = 9000 bytes > 8 KiB, announced chunk by chunk
    ex = exchange(gw.host, gw.port, [head, b"bb8\r\n" + blob + b"\r\n", b"bb8\r\n" + blob + b"\r\n",
                                     b"bb8\r\n" + blob + b"\r\n", b"0\r\n\r\n"], timeout=HANG)
    assert len(ex.responses) == 1, ex
    assert ex.first.status == 413, ex
    assert ex.closed and not ex.timed_out, f"the connection must close after 413: {ex!r}"
    # one chunk announcing more than the limit: 413 before its data arrives
    c = gw.conn()
    try:
        c.send(head + b"%x\r\n" % (MAX_BODY + 1) + b"0123456789")
        r = c.read_response()
        assert r.status == 413, r
        assert "close" in (r.header("connection") or "").lower(), r
        c.wait_closed()
    finally:
        c.close()
    # exactly the limit is fine
    text_len = MAX_BODY - len(json.dumps(echo_call("lim", "")).encode())
    body = json.dumps(echo_call("lim", "q" * text_len)).encode()
    assert len(body) == MAX_BODY
    c = gw.conn()
    try:
        c.send(head + chunked(body, [1000] * 9))
        assert_echo(c.read_response(), "lim", "q" * text_len)
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# 4. Empty lines before the request line
# ---------------------------------------------------------------------------------------------

def test_leading_empty_lines_are_ignored(alive):
    gw = alive
    c = gw.conn()
    try:
        c.send(b"\r\n\r\n" + gw.req(echo_call("l-1", "after blank lines")))
        assert_echo(c.read_response(), "l-1", "after blank lines")
        # a stray CRLF after a body, and bare LFs, in front of a pipelined request
        c.send(gw.req(ping("l-2")) + b"\r\n" + b"\n\r\n" + gw.req(ping("l-3")))
        assert_pong(c.read_response(), "l-2")
        assert_pong(c.read_response(), "l-3")
        # empty lines arriving in their own write before the request
        c.send(b"\r\n")
        time.sleep(0.05)
        c.send(b"\r\n" + gw.req(ping("l-4")))
        assert_pong(c.read_response(), "l-4")
        c.nothing_more()
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# 5. HTTP/1.0
# ---------------------------------------------------------------------------------------------

def test_http10_without_keep_alive_is_answered_then_closed(alive):
    gw = alive
    c = gw.conn()
    try:
        # a second request pipelined behind it is never answered: the connection ends with the first answer
        c.send(gw.req(echo_call("h10", "one-oh"), version="HTTP/1.0") + gw.req(ping("h10-behind")))
        r = c.read_response()
        assert r.version == "HTTP/1.0", r
        assert_echo(r, "h10", "one-oh")
        assert "keep-alive" not in (r.header("connection") or "").lower(), r
        assert c.wait_closed() == b"", "nothing may follow the answer"
    finally:
        c.close()
    # HTTP/1.1 with Connection: close behaves the same
    c = gw.conn()
    try:
        c.send(gw.req(ping("h11c"), extra=[("Connection", "close")]))
        r = c.read_response()
        assert_pong(r, "h11c")
        assert (r.header("connection") or "").lower() == "close", r
        assert c.wait_closed() == b""
    finally:
        c.close()


def test_http10_keep_alive(alive):
    gw = alive
    ka = [("Connection", "keep-alive")]
    c = gw.conn()
    try:
        c.send(gw.req(echo_call("k-1", "kept"), version="HTTP/1.0", extra=ka))
        r = c.read_response()
        assert r.version == "HTTP/1.0", r
        assert (r.header("connection") or "").lower() == "keep-alive", r
        assert_echo(r, "k-1", "kept")
        c.send(gw.req(echo_call("k-2", "kept again"), version="HTTP/1.0", extra=ka))
        r = c.read_response()
        assert (r.header("connection") or "").lower() == "keep-alive", r
        assert_echo(r, "k-2", "kept again")
        c.nothing_more(1.0)  # still open (the daemon's HTTP timeout is 10 s)
        # a third request without keep-alive ends the connection
        c.send(gw.req(ping("k-3"), version="HTTP/1.0"))
        assert_pong(c.read_response(), "k-3")
        assert c.wait_closed() == b""
    finally:
        c.close()
    # a streamed (SSE) answer cannot be framed in HTTP/1.0: even with keep-alive asked for, the answer says
    # Connection: close, is not chunked, and ends when the server closes
    c = gw.conn()
    try:
        c.send(gw.req(echo_call("k-sse", "streamed on 1.0"), version="HTTP/1.0", extra=ka, accept=BOTH))
        r = c.read_response(head_only=True)
        assert r.version == "HTTP/1.0" and r.status == 200, r
        assert (r.header("content-type") or "").startswith("text/event-stream"), r
        assert r.header("transfer-encoding") is None and r.header("content-length") is None, r
        assert (r.header("connection") or "").lower() == "close", r
        r.body = c.wait_closed()
        assert_echo(r, "k-sse", "streamed on 1.0")
    finally:
        c.close()


def test_http10_chunked_request_is_refused(alive):
    gw = alive
    ex = exchange(gw.host, gw.port, gw.req(b"", version="HTTP/1.0", extra=[("Transfer-Encoding", "chunked")])
                  + b"5\r\nhello\r\n0\r\n\r\n", timeout=HANG)
    assert ex.first.status == 400, ex
    assert ex.closed and len(ex.responses) == 1, ex


def test_http10_sse_stream_is_not_chunked_and_ends_with_close(alive):
    gw = alive
    sid = new_session(gw)
    get = request("GET", "/mcp", [("Host", gw.hosthdr), ("Accept", "text/event-stream"), ("Mcp-Session-Id", sid),
                                  ("MCP-Protocol-Version", PROTO)], version="HTTP/1.0")
    c = gw.conn()
    try:
        c.send(get)
        r = c.read_response(head_only=True)
        assert r.status == 200, r
        assert r.version == "HTTP/1.0", r
        assert (r.header("content-type") or "").startswith("text/event-stream"), r
        assert r.header("transfer-encoding") is None, f"HTTP/1.0 has no chunked coding: {r!r}"
        assert r.header("content-length") is None, r
        assert (r.header("connection") or "").lower() == "close", r
        # keep-alive comments (every 500 ms) arrive as bare SSE lines, no chunk-size lines
        deadline = time.monotonic() + HANG
        while c.buf.count(b"keepalive") < 2:
            assert not c.eof, f"stream closed early: {c.buf!r}"
            assert c._fill(deadline), f"no keep-alive comments within {HANG}s: {c.buf!r}"
        body = c.buf
        assert body.startswith(b":"), f"stream body must start with an SSE line, got {body[:80]!r}"
        for line in body.split(b"\n"):
            line = line.rstrip(b"\r")
            if line:
                assert SSE_FIELD_RE.match(line.decode()), f"not an SSE line (chunk framing?): {line!r} in {body!r}"
        # ending the session ends the stream: an unframed HTTP/1.0 body ends by closing the connection
        d = curl("DELETE", gw.d.url, headers={"Mcp-Session-Id": sid, "MCP-Protocol-Version": PROTO})
        assert d.status == 200, d
        c.wait_closed()
        assert b"0\r\n\r\n" not in c.buf, c.buf
    finally:
        c.close()
    # the same stream over HTTP/1.1 is chunked (contrast: the difference comes from the version)
    sid2 = new_session(gw)
    c = gw.conn()
    try:
        c.send(get.replace(b"HTTP/1.0", b"HTTP/1.1", 1).replace(sid.encode(), sid2.encode()))
        r = c.read_response(head_only=True)
        assert r.status == 200 and (r.header("transfer-encoding") or "").lower() == "chunked", r
    finally:
        c.close()
        curl("DELETE", gw.d.url, headers={"Mcp-Session-Id": sid2, "MCP-Protocol-Version": PROTO})


# ---------------------------------------------------------------------------------------------
# 6. Idle / read timeout
# ---------------------------------------------------------------------------------------------

def test_http_timeout_closes_idle_and_stalled_connections(switchyard, tmp_path):
    cfg = tmp_path / "short-timeout.yaml"
    cfg.write_text(config_text(http_timeout="500ms", sse_keepalive="300ms"))
    d = switchyard("--config", str(cfg))
    sid, _ = raw_initialize(d.url)
    hosthdr = f"{d.host}:{d.port}"

    # an idle keep-alive connection (after one answer) is closed
    idle = Conn(d)
    # a connection that sent half a request head is closed
    half = Conn(d)
    # a connection that never sent a byte is closed
    silent = Conn(d)
    # a connection that sent a head and part of its body is closed
    part = Conn(d)
    # a request that takes longer than http_timeout is still answered: the timeout is not a request timeout
    slow = Conn(d)
    try:
        idle.send(mcp_request(hosthdr, ping("idle"), sid))
        assert_pong(idle.read_response(), "idle")
        half.send(b"POST /mcp HTTP/1.1\r\nHost: " + hosthdr.encode() + b"\r\nContent-Type: appl")
        part.send(mcp_request(hosthdr, ping("part"), sid)[:-10])
        slow.send(mcp_request(hosthdr, sleep_call("slow", 1500), sid))

        assert idle.wait_closed() == b"", f"idle connection got bytes: {idle.buf!r}"
        # closed, silently or after a 408 (both are fine; a hang is not)
        half_rest = half.wait_closed()
        assert half_rest == b"" or half_rest.startswith(b"HTTP/1.1 408"), half_rest
        silent_rest = silent.wait_closed()
        assert silent_rest == b"" or silent_rest.startswith(b"HTTP/1.1 408"), silent_rest
        part_rest = part.wait_closed()
        assert part_rest == b"" or part_rest.startswith(b"HTTP/1.1 408"), part_rest

        r = slow.read_response()
        assert r.status == 200 and tool_text(r.messages()[0]) == "slept 1500ms", r
        # and the slow connection is itself idle-closed afterwards
        slow.wait_closed()

        # a GET stream outlives http_timeout (keep-alive comments every 300 ms, for > 3 timeouts)
        st = Conn(d)
        try:
            st.send(request("GET", "/mcp", [("Host", hosthdr), ("Accept", "text/event-stream"),
                                            ("Mcp-Session-Id", sid), ("MCP-Protocol-Version", PROTO)]))
            h = st.read_response(head_only=True)
            assert h.status == 200, h
            deadline = time.monotonic() + HANG
            while st.buf.count(b"keepalive") < 6:
                assert not st.eof, f"stream closed by the HTTP timeout: {st.buf!r}"
                assert st._fill(deadline), f"keep-alive comments stopped: {st.buf!r}"
        finally:
            st.close()
    finally:
        for c in (idle, half, silent, part, slow):
            c.close()
    # the daemon still serves
    r = post(d.url, ping("after-timeouts"), session=sid)
    assert r.status == 200 and r.json() == {"jsonrpc": "2.0", "id": "after-timeouts", "result": {}}, r


# ---------------------------------------------------------------------------------------------
# 7. A client that leaves while its request is pending
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["fin", "rst"])
def test_client_leaving_during_a_pending_request(alive, how):
    gw = alive
    sid = new_session(gw)
    # a kept connection on the same session, used before and after, must only ever see its own answers
    other = gw.conn()
    gone = gw.conn()
    try:
        other.send(gw.req(ping("o-1"), sid=sid))
        assert_pong(other.read_response(), "o-1")
        gone.send(gw.req(sleep_call("gone", 1500), sid=sid))
        time.sleep(0.3)  # let the request reach the child
        if how == "rst":
            gone.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        gone.close()

        # the same session, on a new connection
        c = gw.conn()
        try:
            c.send(gw.req(echo_call("after-1", "same session, new connection"), sid=sid))
            assert_echo(c.read_response(timeout=HANG), "after-1", "same session, new connection")
        finally:
            c.close()
        # a new session on a new connection
        sid2 = new_session(gw)
        r = post(gw.d.url, echo_call("after-2", "new session"), session=sid2, accept=JSON_ONLY)
        assert r.status == 200 and r.json()["id"] == "after-2" and tool_text(r.json()) == "new session", r
        # well past the end of the abandoned sleep: the kept connection gets exactly its own answer
        time.sleep(1.5)
        other.send(gw.req(echo_call("o-2", "still mine"), sid=sid))
        assert_echo(other.read_response(), "o-2", "still mine")
        other.nothing_more()
        gw.d.assert_alive()
    finally:
        other.close()
        gone.close()


def test_half_closed_client_still_gets_its_pending_answer(alive):
    """A client that sends its request and then shuts down its sending side (FIN) while the answer is
    pending gets the answer, then the server closes; the EOF is not taken for a client that left."""
    gw = alive
    sid = new_session(gw)
    c = gw.conn()
    try:
        c.send(gw.req(sleep_call("half", 300), sid=sid))
        c.sock.shutdown(socket.SHUT_WR)
        r = c.read_response()
        assert r.status == 200 and r.json()["id"] == "half", r
        c.wait_closed()
    finally:
        c.close()
    gw.d.assert_alive()


# ---------------------------------------------------------------------------------------------
# 8. Date, Content-Length, HEAD
# ---------------------------------------------------------------------------------------------

def assert_date(r: Resp):
    dates = [v for k, v in r.headers if k.lower() == "date"]
    assert len(dates) == 1, f"exactly one Date header expected: {r!r}"
    assert re.fullmatch(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                        r"\d{4} \d\d:\d\d:\d\d GMT", dates[0]), f"not an IMF-fixdate: {dates[0]!r}"
    skew = abs(parsedate_to_datetime(dates[0]).timestamp() - time.time())
    assert skew < 300, f"Date header {dates[0]!r} is {skew:.0f}s off the wall clock"


def test_date_and_exact_content_length_on_every_answer(alive):
    gw = alive
    unknown = request("GET", "/no/such/path", [("Host", gw.hosthdr)])
    health = request("GET", "/healthz", [("Host", gw.hosthdr)])
    wrong_method = request("PUT", "/mcp", [("Host", gw.hosthdr)], b"{}")
    notif = gw.req({"jsonrpc": "2.0", "method": "notifications/progress",
                    "params": {"progressToken": "t", "progress": 1}})
    bad_session = gw.req(ping("bs"), sid="0" * 32)
    reqs = [gw.req(echo_call("d-1", "\u00fcnicode \u2603 text")), health, unknown, wrong_method, notif,
            bad_session, gw.req(ping("d-last"))]
    c = gw.conn()
    try:
        # all in one write: each answer must be framed exactly, or the next status line is garbage
        c.send(b"".join(reqs))
        got = [c.read_response() for _ in reqs]
        c.nothing_more()
    finally:
        c.close()
    for r in got:
        assert_date(r)
        cl = r.header_all("content-length")
        assert len(cl) == 1 and int(cl[0]) == len(r.body), r
        assert r.header("transfer-encoding") is None, r
        if r.body:
            json.loads(r.body)  # every body here is complete JSON: not cut short, nothing extra
    assert_echo(got[0], "d-1", "\u00fcnicode \u2603 text")
    assert (got[1].status, got[1].json()) == (200, {"status": "ok"}), got[1]
    assert got[2].status == 404, got[2]
    assert got[3].status == 405, got[3]
    assert got[4].status == 202 and got[4].body == b"" and got[4].header("content-length") == "0", got[4]
    assert got[5].status == 404, got[5]
    assert_pong(got[6], "d-last")


def test_layer_refusals_carry_date_and_exact_content_length(alive):
    """The 4xx answers the HTTP layer gives itself (unreadable requests) are 4xx responses like any other:
    RFC 9110 §6.6.1 requires an origin server with a clock to send Date on every 2xx/3xx/4xx answer
    (evhttp did). Each must also be framed exactly and close the connection."""
    gw = alive
    big = 70 * 1024  # over the default 64 KiB max_header_bytes
    cases = [
        (400, b"GET /mcp HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n"),
        (413, b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY * 2)),
        (417, b"POST /mcp HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\n{}"),
        (431, b"GET /mcp HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * big + b"\r\n\r\n"),
        (414, b"GET /" + b"a" * big + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
    ]
    missing = []
    for status, data in cases:
        ex = exchange(gw.host, gw.port, data, timeout=HANG)
        r = ex.first
        assert r.status == status, (status, ex)
        assert ex.closed and len(ex.responses) == 1 and ex.leftover == b"", (status, ex)
        assert r.header("content-length") is not None and int(r.header("content-length")) == len(r.body), r
        json.loads(r.body)
        if r.header("date") is None:
            missing.append(f"{r.status} {r.reason}: headers {r.headers}")
        else:
            assert_date(r)
    assert not missing, "HTTP-layer refusals without a Date header:\n  " + "\n  ".join(missing)


def test_head_requests_get_no_body(alive):
    gw = alive
    targets = ["/healthz", "/mcp", "/no/such/path"]
    c = gw.conn()
    try:
        gets = []
        for t in targets:
            c.send(request("GET", t, [("Host", gw.hosthdr)]))
            gets.append(c.read_response())
        # HEAD then a pipelined GET /healthz: the GET's status line must follow the HEAD's head directly
        for t, g in zip(targets, gets):
            c.send(request("HEAD", t, [("Host", gw.hosthdr)]) + request("GET", "/healthz", [("Host", gw.hosthdr)]))
            h = c.read_response(head_only=True)
            assert_date(h)
            if h.status == g.status and h.header("content-length") is not None:
                # same answer as GET: the length of the body GET got
                assert int(h.header("content-length")) == len(g.body), (t, h, g)
            assert c.buf == b"" or c.buf.startswith(b"HTTP/1.1 200"), f"HEAD {t} sent a body: {c.buf[:200]!r}"
            follow = c.read_response()
            assert (follow.status, follow.json()) == (200, {"status": "ok"}), f"after HEAD {t}: {follow!r}"
        c.nothing_more()
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# 9. Many concurrent keep-alive connections
# ---------------------------------------------------------------------------------------------

N_CONN = 300
ROUNDS = 3


async def _read_one(reader: asyncio.StreamReader) -> tuple[int, dict]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    status = int(lines[0].split()[1])
    cl = [ln.split(":", 1)[1].strip() for ln in lines[1:] if ln.lower().startswith("content-length:")]
    assert len(cl) == 1, head
    body = await reader.readexactly(int(cl[0]))
    return status, json.loads(body)


async def _many(gw: GW, pid: int, before: int):
    conns = await asyncio.gather(*(asyncio.open_connection(gw.host, gw.port) for _ in range(N_CONN)))
    try:
        # all connections are held by the daemon at once
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while fd_count(pid) < before + N_CONN:
            assert loop.time() < deadline, f"daemon holds {fd_count(pid)} fds, expected >= {before + N_CONN}"
            await asyncio.sleep(0.05)

        async def client(i: int, reader, writer):
            for k in range(ROUNDS):
                id_ = f"m-{i}-{k}"
                text = f"conn {i} round {k} " + "w" * (i % 50)
                writer.write(gw.req(echo_call(id_, text)))
                await writer.drain()
                status, msg = await _read_one(reader)
                assert status == 200, (id_, status, msg)
                assert msg.get("id") == id_, f"connection {i} got an answer for another request: {msg}"
                assert tool_text(msg) == text, msg
            return i

        done = await asyncio.wait_for(
            asyncio.gather(*(client(i, r, w) for i, (r, w) in enumerate(conns))), timeout=45)
        assert sorted(done) == list(range(N_CONN))
    finally:
        for _, w in conns:
            w.close()
        for _, w in conns:
            try:
                await w.wait_closed()
            except OSError:
                pass


def test_many_concurrent_keep_alive_connections_and_fds_return(alive):
    gw = alive
    pid = gw.d.proc.pid
    # warm up: the session's child exists, one connection was opened and closed
    r = post(gw.d.url, ping("warm"), session=gw.sid)
    assert r.status == 200, r
    time.sleep(0.2)
    before = wait_until(lambda: fd_count(pid), 5, what="fd count")
    asyncio.run(_many(gw, pid, before))
    wait_until(lambda: fd_count(pid) <= before + 3, 15,
               what=f"daemon fd count back near {before} (now {fd_count(pid)})")
    gw.d.assert_alive()
    r = post(gw.d.url, echo_call("after-many", "fine"), session=gw.sid, accept=JSON_ONLY)
    assert r.status == 200 and tool_text(r.json()) == "fine", r


# ---------------------------------------------------------------------------------------------
# 10. limits.max_connections
# ---------------------------------------------------------------------------------------------

def test_max_connections_pauses_accepting_until_one_closes(switchyard, tmp_path):
    """At the cap the gateway stops accepting: a further client waits (its request is not read, nothing is
    answered) instead of being served or refused; when a connection closes, the waiting client is served.
    The warning is logged once."""
    cfg = tmp_path / "cap.yaml"
    cfg.write_text(config_text(max_connections=3))
    d = switchyard("--config", str(cfg))
    sid, _ = raw_initialize(d.url)
    hosthdr = f"{d.host}:{d.port}"
    held = [Conn(d) for _ in range(3)]
    waiting = None
    try:
        for k, c in enumerate(held):
            c.send(mcp_request(hosthdr, ping(f"held-{k}"), sid))
            assert_pong(c.read_response(), f"held-{k}")
        # the TCP connect succeeds (listen backlog) but the gateway does not accept it yet
        waiting = Conn(d)
        waiting.send(mcp_request(hosthdr, ping("waiting"), sid))
        assert not waiting._fill(time.monotonic() + 1.0), f"served over the cap: {waiting.buf[:200]!r}"
        # the held connections keep working at the cap
        held[0].send(mcp_request(hosthdr, ping("held-again"), sid))
        assert_pong(held[0].read_response(), "held-again")
        # one leaves: the waiting client is accepted and answered
        held[2].close()
        assert_pong(waiting.read_response(), "waiting")
        wait_until(lambda: "connection_limit" in d.log_text(), 5, what="connection_limit warning")
        assert d.log_text().count("connection_limit") == 1, d.log_tail()
    finally:
        for c in held + ([waiting] if waiting else []):
            c.close()
    d.assert_alive()


def test_admin_connections_counts_open_cap_and_close_reasons(switchyard, tmp_path):
    """GET /connections on the admin listener: open client connections (the admin's own not counted), the
    cap and how often it was reached, accepted, and closes by reason (client_closed, timeout, ...)."""
    from poolkit import Admin

    cfg = tmp_path / "admin.yaml"
    cfg.write_text(config_text(max_connections=2, http_timeout="500ms") + 'admin: {address: "127.0.0.1:0"}\n')
    d = switchyard("--config", str(cfg))
    admin = Admin(d)
    sid, _ = raw_initialize(d.url)
    hosthdr = f"{d.host}:{d.port}"
    wait_until(lambda: admin.get("/connections")["open"] == 0, 5, what="initialize connection closed")
    a, b = Conn(d), Conn(d)
    try:
        for k, c in enumerate((a, b)):
            c.send(mcp_request(hosthdr, ping(f"c{k}"), sid))
            assert_pong(c.read_response(), f"c{k}")
        st = admin.get("/connections")
        assert st["open"] == 2 and st["max_connections"] == 2 and st["times_full"] == 1, st
        a.close()  # the client leaves
        b.wait_closed()  # the server times the idle one out
        st = wait_until(lambda: (s := admin.get("/connections"))["open"] == 0 and s, 5, what="all closed")
        assert st["closed"]["client_closed"] >= 1 and st["closed"]["timeout"] >= 1, st
        assert st["accepted"] == sum(st["closed"].values()) + st["open"], st
        assert set(st["closed"]) == {"done", "client_closed", "timeout", "error", "shutdown"}, st
    finally:
        a.close()
        b.close()
    d.assert_alive()

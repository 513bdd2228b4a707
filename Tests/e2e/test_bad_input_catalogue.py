"""A catalogue of bad inputs: HTTP framing, paths, JSON-RPC, MCP, auth and config.

Each bad input is its own test case. The HTTP/JSON-RPC/MCP/auth cases share one daemon (bundled demo
server child, auth keys `alice` and `bob`) and a healthy session opened before the catalogue, with its
GET stream open throughout. After every input the daemon must still be running and the healthy session
must still answer `tools/call echo` with its own text; at the end its stream must have received nothing
that belongs to another client. Config cases start their own short-lived process: exit 78, exactly one
stderr line naming the problem, nothing on stdout.

Malformed HTTP goes over raw sockets (badkit.exchange): every read has a deadline, so a daemon that
neither answers nor closes fails the case instead of hanging it. The HTTP layer's own 400/413/414/431/501
answers are accepted for malformed HTTP; for those the connection must be closed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Callable

import pytest

from badkit import RawExchange, RawResponse, exchange, request
from conftest import (
    PROTO, SWITCHYARD_BIN, HttpResponse, RawSSE, cli_args, curl, finish_daemon, init_body, post,
    raw_initialize, start_daemon, write_config,
)

ALICE_SECRET = "alice-catalogue-secret-7f3a"
BOB_SECRET = "bob-catalogue-secret-91c2"
ALICE = {"Authorization": f"Bearer {ALICE_SECRET}"}
BOB = {"Authorization": f"Bearer {BOB_SECRET}"}
RAW_TIMEOUT = 5.0
CONFIG_TIMEOUT = 10.0
PING = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'


def hash_key(secret: str) -> str:
    cp = subprocess.run([SWITCHYARD_BIN, "hash-key"], input=secret.encode() + b"\n", capture_output=True,
                        timeout=10)
    assert cp.returncode == 0, cp
    h = cp.stdout.decode().strip()
    assert len(h) == 64, h
    return h


# ---------------------------------------------------------------------------------------------
# The shared daemon and the healthy session
# ---------------------------------------------------------------------------------------------

class Gateway:
    def __init__(self, daemon):
        self.d = daemon
        self.url = daemon.url
        self.host, self.port = daemon.host, daemon.port
        self.healthy: str = ""
        self.probe: str = ""        # alice's session the session-bound bad inputs are sent to
        self.bob: str = ""          # bob's session (another key)
        self.stream: RawSSE | None = None
        self.checks = 0

    # -- the healthy session ---------------------------------------------------------------------
    def check_healthy(self, tag: str):
        self.d.assert_alive()
        self.checks += 1
        text = f"healthy #{self.checks} after {tag} \u2713 \"q\""
        id_ = f"h-{self.checks}"
        body = {"jsonrpc": "2.0", "id": id_, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": text}}}
        r = post(self.url, body, session=self.healthy, headers=ALICE, timeout=10)
        assert r.status == 200, f"healthy session broken after {tag}: {r!r}\nlog tail:\n{self.d.log_tail()}"
        assert r.header("mcp-session-id") == self.healthy, r
        msgs = r.messages()
        assert len(msgs) == 1, f"healthy session got extra messages after {tag}: {msgs}"
        m = msgs[0]
        assert m.get("id") == id_ and "result" in m, f"healthy session: wrong answer after {tag}: {m}"
        got = "".join(c.get("text", "") for c in m["result"]["content"])
        assert got == text, f"healthy session got someone else's text after {tag}: {got!r} != {text!r}"

    def probe_still_works(self):
        r = post(self.url, PING, session=self.probe, headers=ALICE)
        assert r.status == 200 and r.json().get("result") == {}, f"probe session broken: {r!r}"


@pytest.fixture(scope="module")
def gw():
    cfg = write_config(
        "servers:\n"
        "  demo:\n"
        f"    command: {json.dumps(SWITCHYARD_BIN)}\n"
        "    args: [demo-server]\n"
        "    spares: 2\n"
        "auth:\n"
        "  keys:\n"
        f"    - {{label: alice, sha256: {hash_key(ALICE_SECRET)}}}\n"
        f"    - {{label: bob, sha256: {hash_key(BOB_SECRET)}}}\n"
        "limits:\n"
        "  http_timeout: 10s\n", ".yaml")
    try:
        d = start_daemon(*cli_args("--config", cfg), name="badinput")
    finally:
        os.unlink(cfg)
    g = Gateway(d)
    try:
        g.healthy, _ = raw_initialize(d.url, headers=ALICE)
        g.stream = RawSSE(d.host, d.port, "/mcp", {**ALICE, "Accept": "text/event-stream",
                                                    "Mcp-Session-Id": g.healthy, "MCP-Protocol-Version": PROTO})
        assert g.stream.read_head(10) == 200, g.stream.headers
        g.probe, _ = raw_initialize(d.url, headers=ALICE)
        g.bob, _ = raw_initialize(d.url, headers=BOB)
        g.check_healthy("setup")
        yield g
    finally:
        if g.stream:
            g.stream.close()
        finish_daemon(d)


# ---------------------------------------------------------------------------------------------
# Assertions
# ---------------------------------------------------------------------------------------------

def assert_rpc_error_body(status: int, reason: str, ctype: str | None, body: bytes, exp_status, code, what=""):
    statuses = exp_status if isinstance(exp_status, (set, tuple, list)) else {exp_status}
    assert status in statuses, f"{what}expected HTTP {sorted(statuses)}, got {status} {reason!r} {body[:400]!r}"
    assert reason, f"{what}status line without a reason phrase"
    if code is None:
        return None
    assert (ctype or "").lower().startswith("application/json"), f"{what}error body not JSON ({ctype}): {body[:300]!r}"
    b = json.loads(body)
    assert b.get("jsonrpc") == "2.0" and "id" in b and b["id"] is None, f"{what}not a JSON-RPC error: {b}"
    codes = code if isinstance(code, (set, tuple, list)) else {code}
    assert b["error"]["code"] in codes, f"{what}expected code {sorted(codes)}: {b}"
    assert isinstance(b["error"].get("message"), str) and b["error"]["message"], b
    return b


def rpc_error(r: HttpResponse, status, code):
    return assert_rpc_error_body(r.status, r.reason, r.content_type, r.body, status, code)


def raw_rpc_error(resp: RawResponse, status, code):
    return assert_rpc_error_body(resp.status, resp.reason, resp.header("content-type"), resp.body, status, code)


def libevent_refusal(ex: RawExchange, statuses: set[int]):
    """A malformed request: one 4xx/501 answer, and the connection closes (no hang, nothing after it)."""
    r = ex.first
    assert r.status in statuses, f"expected HTTP {sorted(statuses)}, got {ex!r}"
    assert r.reason, ex
    assert len(ex.responses) == 1, f"more than one answer to one malformed request: {ex!r}"
    assert ex.closed and not ex.timed_out, f"connection not closed after HTTP {r.status}: {ex!r}"


def one_answer(ex: RawExchange) -> RawResponse:
    """A well-framed request: exactly one answer, within the deadline, nothing pipelined after it."""
    r = ex.first
    assert not ex.timed_out, ex
    assert len(ex.responses) == 1, f"expected one answer, got {len(ex.responses)}: {ex!r}"
    return r


def no_route(ex: RawExchange, server: str | None = None):
    r = one_answer(ex)
    assert r.status == 404 and r.reason, ex
    assert r.content_type.startswith("application/json"), ex
    b = r.json()
    assert b.get("error") in ("unknown server", "not found"), b
    if server is not None:
        assert b.get("error") == "unknown server" and b.get("server") == server, b


# ---------------------------------------------------------------------------------------------
# The catalogue
# ---------------------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    run: Callable[[Gateway], None]


CASES: list[Case] = []


def case(id_: str):
    def deco(fn):
        CASES.append(Case(id_, fn))
        return fn
    return deco


def hdrs(g: Gateway, session: str | None = "probe", proto: str | None = PROTO, auth: bool = True,
         close: bool = False, extra: list | None = None) -> list:
    h = [("Host", f"{g.host}:{g.port}")]
    if auth:
        h.append(("Authorization", ALICE["Authorization"]))
    h += [("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")]
    if session == "probe":
        session = g.probe
    if session is not None:
        h.append(("Mcp-Session-Id", session))
    if proto is not None:
        h.append(("MCP-Protocol-Version", proto))
    if close:
        h.append(("Connection", "close"))
    return h + list(extra or [])


def raw(g: Gateway, data, **kw) -> RawExchange:
    return exchange(g.host, g.port, data, timeout=kw.pop("timeout", RAW_TIMEOUT), **kw)


def simple_libevent(id_: str, data: bytes, statuses: set[int]):
    @case(id_)
    def _(g):
        libevent_refusal(raw(g, data), statuses)


# -- HTTP: request line ------------------------------------------------------------------------
simple_libevent("http-garbage-request-line", b"GARBAGE\r\n\r\n", {400})
simple_libevent("http-request-line-without-version", b"GET /mcp\r\n\r\n", {400})
simple_libevent("http-request-line-tab-separated", b"GET\t/mcp\tHTTP/1.1\r\nHost: x\r\n\r\n", {400})
simple_libevent("http-version-lowercase", b"GET /mcp http/1.1\r\nHost: x\r\n\r\n", {400})
simple_libevent("http-version-2.0-over-http1", b"GET /mcp HTTP/2.0\r\nHost: x\r\n\r\n", {400, 505})
simple_libevent("http-empty-request-target", b"GET  HTTP/1.1\r\nHost: x\r\n\r\n", {400})
simple_libevent("http-lowercase-method", b"post /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", {501})
simple_libevent("http-unknown-method-PROPFIND", b"PROPFIND /mcp HTTP/1.1\r\nHost: x\r\n\r\n", {501})

# -- HTTP: headers -----------------------------------------------------------------------------
simple_libevent("http-header-line-without-colon",
                b"POST /mcp HTTP/1.1\r\nHost: x\r\nNoColonHere\r\nContent-Length: 0\r\n\r\n", {400})
simple_libevent("http-huge-header-100KiB",
                b"GET /mcp HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", {400, 413, 431})
simple_libevent("http-10000-headers",
                b"GET /mcp HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(10_000)) + b"\r\n",
                {400, 413, 431})


@case("http-space-before-colon-in-content-length")
def _(g):
    # RFC 9112 5.1: whitespace between field name and colon must be rejected with 400.
    h = hdrs(g) + [("Content-Length ", str(len(PING)))]
    ex = raw(g, request("POST", "/mcp", h, PING, content_length=False))
    assert ex.responses, ex
    assert ex.first.status == 400, ex
    assert all(400 <= r.status < 500 for r in ex.responses), f"a request with a bad header was served: {ex!r}"


@case("http-invalid-utf8-in-mcp-session-id")
def _(g):
    ex = raw(g, request("POST", "/mcp", hdrs(g, session=None) + [("Mcp-Session-Id", b"\xff\xfe\xc3\x28")], PING))
    raw_rpc_error(one_answer(ex), {400, 404}, {-32000, -32001, -32600})


@case("http-invalid-utf8-in-protocol-version")
def _(g):
    ex = raw(g, request("POST", "/mcp", hdrs(g, proto=None) + [("MCP-Protocol-Version", b"2025-06-18\xff")], PING))
    raw_rpc_error(one_answer(ex), 400, -32000)


@case("http-invalid-utf8-in-authorization")
def _(g):
    h = [x for x in hdrs(g) if x[0] != "Authorization"] + [("Authorization", b"Bearer \xff\xfe\xc0\xaf")]
    r = one_answer(raw(g, request("POST", "/mcp", h, PING)))
    raw_rpc_error(r, 401, -32000)
    assert r.header("www-authenticate") == 'Bearer realm="switchyard"', r


# -- HTTP: Content-Length and chunking ----------------------------------------------------------
@case("http-duplicate-content-length-differing")
def _(g):
    # Two different Content-Length values make the framing invalid (RFC 9112 6.3): 400 and close.
    # Reading either one and serving the rest as a second request is request smuggling.
    smuggled = request("POST", "/mcp", hdrs(g), b'{"jsonrpc":"2.0","id":666,"method":"ping"}')
    h = hdrs(g) + [("Content-Length", str(len(PING))), ("Content-Length", str(len(PING) + len(smuggled)))]
    ex = raw(g, request("POST", "/mcp", h, PING + smuggled, content_length=False), linger=0.5)
    assert ex.responses, ex
    served = [r for r in ex.responses if r.status < 400]
    assert not served, (f"duplicate, differing Content-Length was served (expected 400 + close): "
                        f"{[(r.status, r.body[:120]) for r in ex.responses]}")
    libevent_refusal(ex, {400})


@case("http-content-length-list")
def _(g):
    h = hdrs(g) + [("Content-Length", f"{len(PING)}, {len(PING)}")]
    libevent_refusal(raw(g, request("POST", "/mcp", h, PING, content_length=False)), {400})


@case("http-negative-content-length")
def _(g):
    h = hdrs(g) + [("Content-Length", "-1")]
    libevent_refusal(raw(g, request("POST", "/mcp", h, PING, content_length=False)), {400})


@case("http-non-numeric-content-length")
def _(g):
    h = hdrs(g) + [("Content-Length", "abc")]
    libevent_refusal(raw(g, request("POST", "/mcp", h, PING, content_length=False)), {400})


@case("http-content-length-overflow")
def _(g):
    h = hdrs(g) + [("Content-Length", "9" * 30)]
    libevent_refusal(raw(g, request("POST", "/mcp", h, PING, content_length=False)), {400, 413})


@case("http-content-length-over-max-body")
def _(g):
    h = hdrs(g) + [("Content-Length", str(8 << 20))]  # declared 8 MiB > limits.max_body_bytes (4 MiB)
    libevent_refusal(raw(g, request("POST", "/mcp", h, PING, content_length=False)), {413})


@case("http-transfer-encoding-and-content-length")
def _(g):
    h = hdrs(g) + [("Content-Length", "3"), ("Transfer-Encoding", "chunked")]
    libevent_refusal(raw(g, request("POST", "/mcp", h, b"0\r\n\r\n", content_length=False)), {400})


@case("http-unknown-transfer-coding")
def _(g):
    h = hdrs(g) + [("Transfer-Encoding", "bogus"), ("Content-Length", str(len(PING)))]
    libevent_refusal(raw(g, request("POST", "/mcp", h, PING, content_length=False)), {400, 501})


def chunked_case(id_: str, chunked_body: bytes):
    @case(id_)
    def _(g):
        h = hdrs(g) + [("Transfer-Encoding", "chunked")]
        libevent_refusal(raw(g, request("POST", "/mcp", h, chunked_body, content_length=False)), {400, 413})


chunked_case("http-chunk-size-not-hex", b"ZZ\r\n" + PING + b"\r\n0\r\n\r\n")
chunked_case("http-chunk-data-without-crlf", b"%x\r\n" % len(PING) + PING + b"XX0\r\n\r\n")
chunked_case("http-chunk-size-overflow", b"ffffffffffffffffff\r\n" + PING + b"\r\n0\r\n\r\n")
chunked_case("http-chunk-size-negative", b"-5\r\n" + PING + b"\r\n0\r\n\r\n")


@case("http-body-shorter-than-content-length-then-eof")
def _(g):
    h = hdrs(g) + [("Content-Length", "100")]
    ex = raw(g, request("POST", "/mcp", h, PING, content_length=False), half_close=True)
    assert not ex.timed_out and ex.closed, f"truncated body: connection neither answered nor closed: {ex!r}"
    for r in ex.responses:
        assert 400 <= r.status < 500, f"a truncated request was served: {ex!r}"


# -- HTTP: paths ---------------------------------------------------------------------------------
def path_case(id_: str, target: str | bytes, server: str | None = None, statuses=None):
    @case(id_)
    def _(g):
        t = target if isinstance(target, bytes) else target.encode()
        data = request("POST", "X", hdrs(g), PING).replace(b"POST X ", b"POST " + t + b" ", 1)
        ex = raw(g, data)
        if statuses:
            libevent_refusal(ex, statuses)
        else:
            no_route(ex, server)


path_case("path-servers-dotdot-mcp", "/servers/../mcp", server="..")
path_case("path-servers-pct2e-pct2e-mcp", "/servers/%2e%2e/mcp", server="%2e%2e")
path_case("path-servers-demo-dotdot-dotdot-mcp", "/servers/demo/../../mcp")
path_case("path-encoded-slash", "/servers/demo%2fmcp")
path_case("path-encoded-nul", "/mcp%00")
path_case("path-control-char", b"/mcp\x01")
path_case("path-relative-target", "mcp")
path_case("path-absolute-form-dotdot", "http://evil.example/servers/../mcp", server="..")
path_case("path-absolute-form-bad-port", "http://user:pw@evil.example:99999/mcp", statuses={400})
path_case("path-overlong-uri-100KiB", "/mcp?x=" + "a" * 100_000, statuses={400, 414})


# -- JSON-RPC --------------------------------------------------------------------------------------
def jsonrpc_case(id_: str, body: bytes, status: int, code: int):
    @case(id_)
    def _(g):
        rpc_error(post(g.url, body, session=g.probe, headers=ALICE), status, code)


def deep(n: int) -> bytes:
    return (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x","n":'
            + b"[" * n + b"]" * n + b"}}}")


for _id, _body, _st, _code in [
    ("json-truncated", b'{"jsonrpc":"2.0","id":1,"method":"pi', 400, -32700),
    ("json-empty-body", b"", 400, -32700),
    ("json-whitespace-only", b"  \r\n\t ", 400, -32700),
    ("json-utf8-bom", b"\xef\xbb\xbf" + PING, 400, -32700),
    ("json-trailing-garbage", PING + b"garbage", 400, -32700),
    ("json-two-concatenated-objects", PING + PING, 400, -32700),
    ("json-trailing-nul", PING + b"\x00", 400, -32700),
    ("json-invalid-utf8-in-string",
     b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"a\xff\xfeb"}}}',
     400, -32700),
    ("json-overlong-utf8-in-string",
     b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"\xc0\xaf"}}}',
     400, -32700),
    ("json-invalid-utf8-in-key", b'{"jsonrpc":"2.0","id":1,"method":"ping","\xed\xa0\x80":1}', 400, -32700),
    ("json-bad-escape", b'{"jsonrpc":"2.0","id":1,"method":"pi\\qng"}', 400, -32700),
    ("json-raw-control-char-in-string", b'{"jsonrpc":"2.0","id":1,"method":"pi\x01ng"}', 400, -32700),
    ("json-single-quotes", b"{'jsonrpc':'2.0','id':1,'method':'ping'}", 400, -32700),
    ("json-trailing-comma", b'{"jsonrpc":"2.0","id":1,"method":"ping",}', 400, -32700),
    ("json-NaN-id", b'{"jsonrpc":"2.0","id":NaN,"method":"ping"}', 400, -32700),
    ("json-unclosed-100000-brackets", b"[" * 100_000, 400, -32700),
    ("jsonrpc-id-object", b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', 400, -32600),
    ("jsonrpc-id-float", b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}', 400, -32600),
    ("jsonrpc-id-bool", b'{"jsonrpc":"2.0","id":true,"method":"ping"}', 400, -32600),
    ("jsonrpc-id-array", b'{"jsonrpc":"2.0","id":[1],"method":"ping"}', 400, -32600),
    ("jsonrpc-null-id-on-request", b'{"jsonrpc":"2.0","id":null,"method":"ping"}', 400, -32600),
    ("jsonrpc-method-number", b'{"jsonrpc":"2.0","id":1,"method":42}', 400, -32600),
    ("jsonrpc-method-null", b'{"jsonrpc":"2.0","id":1,"method":null}', 400, -32600),
    ("jsonrpc-version-1.0", b'{"jsonrpc":"1.0","id":1,"method":"ping"}', 400, -32600),
    ("jsonrpc-version-missing", b'{"id":1,"method":"ping"}', 400, -32600),
    ("jsonrpc-body-is-string", b'"ping"', 400, -32600),
    ("jsonrpc-body-is-number", b"42", 400, -32600),
    ("jsonrpc-body-is-null", b"null", 400, -32600),
    ("jsonrpc-method-and-result", b'{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}', 400, -32600),
]:
    jsonrpc_case(_id, _body, _st, _code)


@case("json-deep-nesting-1000-in-params")
def _(g):
    # Valid JSON, but nesting this deep must be refused cleanly (not a stack overflow in a parser).
    rpc_error(post(g.url, deep(1000), session=g.probe, headers=ALICE), 400, {-32700, -32600})


@case("json-deep-nesting-1000-arrays-body")
def _(g):
    rpc_error(post(g.url, b"[" * 1000 + b"]" * 1000, session=g.probe, headers=ALICE), 400, {-32700, -32600})


def answered_or_refused(g: Gateway, body: bytes, id_text: str):
    """Valid-but-odd JSON: either a clear 400 (-32700/-32600) or the child's answer for the same id."""
    r = post(g.url, body, session=g.probe, headers=ALICE)
    if r.status == 400:
        rpc_error(r, 400, {-32700, -32600})
        return None
    assert r.status == 200, r
    texts = r.message_texts()
    assert len(texts) == 1, r
    m = json.loads(texts[0])
    assert "result" in m or "error" in m, m
    assert f'"id":{id_text}' in texts[0].replace(" ", ""), f"id not restored exactly ({id_text}): {texts[0][:300]}"
    return m


@case("json-huge-integer-id")
def _(g):
    big = "123456789012345678901234567890"
    answered_or_refused(g, b'{"jsonrpc":"2.0","id":%s,"method":"ping"}' % big.encode(), big)


@case("json-huge-number-in-params")
def _(g):
    answered_or_refused(g, b'{"jsonrpc":"2.0","id":1,"method":"tools/call",'
                           b'"params":{"name":"add","arguments":{"a":1e999999,"b":-1e999999}}}', "1")


@case("json-lone-high-surrogate-escape")
def _(g):
    answered_or_refused(g, b'{"jsonrpc":"2.0","id":1,"method":"tools/call",'
                           b'"params":{"name":"echo","arguments":{"text":"a\\ud800b"}}}', "1")


@case("json-lone-low-surrogate-escape")
def _(g):
    answered_or_refused(g, b'{"jsonrpc":"2.0","id":1,"method":"tools/call",'
                           b'"params":{"name":"echo","arguments":{"text":"\\udc00"}}}', "1")


# -- MCP ---------------------------------------------------------------------------------------------
@case("mcp-request-before-initialize")
def _(g):
    rpc_error(post(g.url, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=ALICE), 400, -32000)


@case("mcp-tools-call-before-initialize")
def _(g):
    b = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}}
    rpc_error(post(g.url, b, headers=ALICE), 400, -32000)


@case("mcp-unknown-method-reaches-child")
def _(g):
    r = post(g.url, {"jsonrpc": "2.0", "id": "u-7", "method": "no/such/method"}, session=g.probe, headers=ALICE)
    assert r.status == 200, r
    msgs = r.messages()
    assert len(msgs) == 1 and msgs[0].get("id") == "u-7", r
    err = msgs[0].get("error")
    assert err and err["code"] == -32601 and "no/such/method" in err["message"], msgs[0]


@case("mcp-unsupported-protocol-version-header")
def _(g):
    rpc_error(post(g.url, PING, session=g.probe, proto="1999-01-01", headers=ALICE), 400, -32000)


@case("mcp-garbage-protocol-version-header")
def _(g):
    rpc_error(post(g.url, PING, session=g.probe, proto="latest; drop table", headers=ALICE), 400, -32000)


@case("mcp-initialize-with-live-session-id")
def _(g):
    rpc_error(post(g.url, init_body(), session=g.probe, proto=None, headers=ALICE), 400, -32600)
    g.probe_still_works()


@case("mcp-initialize-with-unknown-session-id")
def _(g):
    rpc_error(post(g.url, init_body(), session="0" * 32, proto=None, headers=ALICE), 404, -32001)


@case("mcp-unknown-session-id")
def _(g):
    rpc_error(post(g.url, PING, session="f" * 32, headers=ALICE), 404, -32001)


@case("mcp-malformed-session-id-2000-chars")
def _(g):
    rpc_error(post(g.url, PING, session="z!" * 1000, headers=ALICE), {400, 404}, {-32000, -32001})


@case("mcp-batch-in-2025-06-18-session")
def _(g):
    b = b"[" + PING + b"," + PING.replace(b'"id":1', b'"id":2') + b"]"
    rpc_error(post(g.url, b, session=g.probe, headers=ALICE), 400, -32600)


@case("mcp-empty-batch")
def _(g):
    rpc_error(post(g.url, b"[]", session=g.probe, headers=ALICE), 400, -32600)


def accepted_notification(g: Gateway, body: dict):
    r = post(g.url, body, session=g.probe, headers=ALICE)
    assert r.status == 202 and r.body == b"" and not r.has_header("content-type"), r
    g.probe_still_works()


@case("mcp-cancelled-for-unknown-request-id")
def _(g):
    accepted_notification(g, {"jsonrpc": "2.0", "method": "notifications/cancelled",
                              "params": {"requestId": 987654, "reason": "never sent"}})


@case("mcp-cancelled-with-object-request-id")
def _(g):
    accepted_notification(g, {"jsonrpc": "2.0", "method": "notifications/cancelled",
                              "params": {"requestId": {"x": 1}}})


@case("mcp-response-to-unknown-request")
def _(g):
    accepted_notification(g, {"jsonrpc": "2.0", "id": "never-asked", "result": {}})


@case("mcp-get-stream-unknown-session")
def _(g):
    r = curl("GET", g.url, headers={**ALICE, "Accept": "text/event-stream", "Mcp-Session-Id": "e" * 32}, timeout=5)
    rpc_error(r, 404, -32001)


@case("mcp-delete-unknown-session")
def _(g):
    rpc_error(curl("DELETE", g.url, headers={**ALICE, "Mcp-Session-Id": "d" * 32}), 404, -32001)


# -- auth ---------------------------------------------------------------------------------------------
def unauthorized(r: HttpResponse):
    rpc_error(r, 401, -32000)
    assert r.header("www-authenticate") == 'Bearer realm="switchyard"', r
    assert not r.has_header("mcp-session-id"), r


@case("auth-missing")
def _(g):
    unauthorized(post(g.url, init_body(), proto=None))


@case("auth-wrong-key")
def _(g):
    unauthorized(post(g.url, init_body(), proto=None, headers={"Authorization": "Bearer not-a-key"}))


@case("auth-basic-scheme")
def _(g):
    unauthorized(post(g.url, init_body(), proto=None, headers={"Authorization": "Basic YWxpY2U6c2VjcmV0"}))


@case("auth-bearer-without-token")
def _(g):
    unauthorized(post(g.url, init_body(), proto=None, headers={"Authorization": "Bearer "}))


@case("auth-missing-on-legacy-sse")
def _(g):
    unauthorized(curl("GET", g.d.base + "/sse", headers={"Accept": "text/event-stream"}, timeout=5))


@case("auth-duplicate-authorization-header")
def _(g):
    r = post(g.url, init_body(), proto=None, headers=ALICE, extra=["-H", f"Authorization: Bearer {ALICE_SECRET}"])
    rpc_error(r, 400, -32000)
    assert not r.has_header("mcp-session-id"), r


@case("auth-secret-in-query-token")
def _(g):
    r = post(g.url + "?token=x", init_body(), proto=None, headers=ALICE)
    rpc_error(r, 400, -32000)
    assert not r.has_header("mcp-session-id"), r


@case("auth-secret-in-query-only")
def _(g):
    r = post(g.url + f"?access_token={ALICE_SECRET}", init_body(), proto=None)
    rpc_error(r, {400, 401}, -32000)
    assert not r.has_header("mcp-session-id"), r


@case("auth-other-keys-session-post")
def _(g):
    rpc_error(post(g.url, PING, session=g.bob, headers=ALICE), 404, -32001)


@case("auth-other-keys-session-get")
def _(g):
    r = curl("GET", g.url, headers={**ALICE, "Accept": "text/event-stream", "Mcp-Session-Id": g.bob}, timeout=5)
    rpc_error(r, 404, -32001)


@case("auth-other-keys-session-delete")
def _(g):
    rpc_error(curl("DELETE", g.url, headers={**ALICE, "Mcp-Session-Id": g.bob}), 404, -32001)
    r = post(g.url, PING, session=g.bob, headers=BOB)
    assert r.status == 200 and r.json().get("result") == {}, f"bob's session was harmed by alice's DELETE: {r!r}"


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(gw, c):
    try:
        c.run(gw)
    finally:
        gw.check_healthy(c.id)


# ---------------------------------------------------------------------------------------------
# Config: exit 78 and exactly one line on stderr
# ---------------------------------------------------------------------------------------------

LOOP = 'listen: ["127.0.0.1:0"]\n'
SRV = "servers:\n  demo:\n    command: /bin/cat\n"
BAD_HASH = "0" * 64


def run_config(args: list[str]) -> tuple[int, bytes, str]:
    p = subprocess.Popen([SWITCHYARD_BIN, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = p.communicate(timeout=CONFIG_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate(5)
        raise AssertionError(f"switchyard {args} did not exit within {CONFIG_TIMEOUT}s (it should refuse the "
                             f"config); stderr: {err.decode(errors='replace')[:600]}")
    return p.returncode, out, err.decode("utf-8", "replace")


@dataclass
class ConfigCase:
    id: str
    content: str | None      # None: `path` is used as it is
    key: str                 # text the one error line must contain
    suffix: str = ".yaml"
    path: str | None = None
    extra: tuple = ()
    mode: int | None = None


CONFIG_CASES = [
    ConfigCase("unknown-top-level-key", LOOP + SRV + "bogus_key: 1\n", "bogus_key"),
    ConfigCase("unknown-server-key", LOOP + SRV + "    comand: /bin/cat\n", "servers.demo.comand"),
    ConfigCase("bad-duration", LOOP + SRV + "limits:\n  session_idle_timeout: 5 parsecs\n",
               "limits.session_idle_timeout"),
    ConfigCase("negative-duration", LOOP + SRV + "limits:\n  http_timeout: -5s\n", "limits.http_timeout"),
    ConfigCase("negative-number", LOOP + SRV + "limits:\n  max_sessions: -3\n", "limits.max_sessions"),
    ConfigCase("negative-spares", LOOP + SRV + "    spares: -1\n", "servers.demo.spares"),
    ConfigCase("missing-command", LOOP + "servers:\n  demo:\n    args: [x]\n", "servers.demo.command"),
    ConfigCase("server-name-with-slash", LOOP + 'servers:\n  "a/b":\n    command: /bin/cat\n', "a/b"),
    ConfigCase("server-name-dotdot", LOOP + 'servers:\n  "..":\n    command: /bin/cat\n', "invalid server name"),
    ConfigCase("no-servers", LOOP + "servers: {}\n", "servers"),
    ConfigCase("invalid-yaml", LOOP + "servers: {demo: [unclosed\n", "not valid"),
    ConfigCase("invalid-json", '{"servers": {"demo": {"command": "/bin/cat"}', "not valid", suffix=".json"),
    ConfigCase("empty-file", "", "empty"),
    ConfigCase("top-level-list", "- a\n- b\n", "mapping"),
    ConfigCase("invalid-utf8-file", LOOP + 'servers:\n  demo:\n    command: "/bin/c\udcffat"\n', "cannot read"),
    ConfigCase("missing-file", None, "cannot read", path="/nonexistent/switchyard-e2e.yaml"),
    ConfigCase("file-is-a-directory", None, "cannot read", path="/tmp"),
    ConfigCase("unreadable-file", LOOP + SRV, "cannot read", mode=0),
    ConfigCase("bad-sha256", LOOP + SRV + "auth:\n  keys:\n    - {label: a, sha256: xyz}\n",
               "auth.keys[0].sha256"),
    ConfigCase("port-out-of-range", SRV + 'listen: ["127.0.0.1:99999"]\n', "listen[0].address"),
    ConfigCase("non-loopback-without-tls-and-keys", SRV + 'listen: ["0.0.0.0:0"]\n', "listen[0]"),
    ConfigCase("non-loopback-with-keys-without-tls",
               SRV + 'listen: ["0.0.0.0:0"]\n' + f"auth:\n  keys:\n    - {{label: a, sha256: {BAD_HASH}}}\n",
               "listen[0]"),
    ConfigCase("tls-cert-file-missing",
               SRV + 'listen:\n  - address: "127.0.0.1:0"\n    tls: {cert: /nonexistent/cert.pem, key: /nonexistent/key.pem}\n',
               "/nonexistent/cert.pem"),
    ConfigCase("tls-cert-not-pem",
               SRV + 'listen:\n  - address: "127.0.0.1:0"\n    tls: {cert: /etc/hostname, key: /etc/hostname}\n',
               "/etc/hostname"),
    ConfigCase("cli-bad-session-idle-timeout", None, "--session-idle-timeout", path="",
               extra=("--host", "127.0.0.1", "--port", "0", "--session-idle-timeout", "soon", "--", "/bin/cat")),
]


@pytest.mark.parametrize("c", CONFIG_CASES, ids=[f"config-{c.id}" for c in CONFIG_CASES])
def test_bad_config_exits_78_with_one_line(gw, c):
    tmp = None
    try:
        if c.content is not None:
            tmp = write_config("", c.suffix)
            with open(tmp, "wb") as f:
                f.write(c.content.encode("utf-8", "surrogateescape"))
            if c.mode is not None:
                os.chmod(tmp, c.mode)
            path = tmp
        else:
            path = c.path
        if c.mode is not None and os.geteuid() == 0:
            # root reads any mode: use a file that opens but cannot be read (EIO) instead
            path = "/proc/self/mem"
        args = (["--config", path] if path else []) + list(c.extra)
        code, out, err = run_config(args)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 78, (f"config {c.id}: expected exit 78 with one line, got exit {code}; "
                            f"stderr ({len(lines)} lines): {err[:800]!r}")
        assert out == b"", f"stdout must stay empty: {out[:300]!r}"
        assert len(lines) == 1, f"expected exactly one stderr line, got {len(lines)}: {err[:800]!r}"
        assert c.key in lines[0], f"the error line does not name {c.key!r}: {lines[0]!r}"
    finally:
        if tmp:
            os.unlink(tmp)
        gw.check_healthy(f"config-{c.id}")


# ---------------------------------------------------------------------------------------------
# At the end
# ---------------------------------------------------------------------------------------------

def test_zz_healthy_session_unaffected_at_end(gw):
    gw.check_healthy("the whole catalogue")
    # The healthy session's GET stream is still open and carried nothing (the demo server sends no
    # notifications): no other client's data leaked into it.
    s = gw.stream
    s._pump(time.monotonic() + 0.3)
    assert not s.ended, f"the healthy session's GET stream ended: {s.all_body[-400:]!r}"
    assert s.messages == [], f"foreign messages on the healthy session's stream: {s.messages}"
    # bob's session (another key) still works with bob's key
    r = post(gw.url, PING, session=gw.bob, headers=BOB)
    assert r.status == 200 and r.json().get("result") == {}, r
    log = gw.d.log_text()
    for bad in ("Fatal error", "Program crashed", "double free", "Segmentation"):
        assert bad not in log, f"{bad!r} in the daemon log:\n{gw.d.log_tail()}"
    assert len(CASES) + len(CONFIG_CASES) >= 40

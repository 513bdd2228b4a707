"""Wire-level tests (curl / raw streams) for every row of docs/http-contract.md.

All tests in this module share one daemon (FastMCP fixture child, 2 spares, 1s SSE keep-alive) and a
"healthy" session opened before any bad input; the last test checks that session still works.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time

import pytest

from conftest import (
    ACCEPT_BOTH, FIXTURE_CMD, PROTO, CurlStream, HttpResponse, cli_args, curl, finish_daemon, init_body,
    parse_sse, pid_alive, post, raw_initialize, start_daemon, wait_until,
)

SESSION_RE = re.compile(r"^[0-9a-f]{32}$")
ALL_VERSIONS = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"]


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def daemon():
    d = start_daemon(*cli_args("--spares", "2", "--sse-keepalive", "1s", child=FIXTURE_CMD))
    yield d
    finish_daemon(d)


@pytest.fixture(scope="module")
def healthy(daemon):
    """A session opened before all the bad input of this module, checked at the end."""
    sid, _ = raw_initialize(daemon.url)
    r = call_tool(daemon.url, sid, "whoami", {}, id_=1)
    pid = int(tool_text(r))
    return sid, pid


@pytest.fixture
def url(daemon, healthy):
    yield daemon.url
    daemon.assert_alive()


@pytest.fixture
def sid(url):
    """A fresh, fully initialized 2025-06-18 session; DELETEd afterwards."""
    s, _ = raw_initialize(url)
    yield s
    curl("DELETE", url, headers={"Mcp-Session-Id": s, "MCP-Protocol-Version": PROTO})


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

def rpc(method: str, params: dict | None = None, id_=1) -> dict:
    m = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        m["params"] = params
    return m


def call_tool(url, sid, name, args, id_=1, meta: dict | None = None, **kw) -> HttpResponse:
    params = {"name": name, "arguments": args}
    if meta is not None:
        params["_meta"] = meta
    return post(url, rpc("tools/call", params, id_), session=sid, **kw)


def final_message(r: HttpResponse) -> dict:
    msgs = r.messages()
    assert msgs, f"no JSON-RPC message in answer: {r!r}"
    return msgs[-1]


def tool_text(r: HttpResponse) -> str:
    assert r.status == 200, r
    m = final_message(r)
    assert "result" in m, m
    assert not m["result"].get("isError"), m
    return "".join(c["text"] for c in m["result"]["content"] if c["type"] == "text")


def assert_rpc_error(r: HttpResponse, status: int, code: int | None):
    """Status, JSON content type, and a JSON-RPC error body with id null and the given code."""
    assert r.status == status, f"expected HTTP {status}, got {r!r}"
    if code is None:
        return
    ct = (r.content_type or "").lower()
    assert ct.startswith("application/json"), f"error body must be application/json: {r!r}"
    body = r.json()
    assert body.get("jsonrpc") == "2.0", body
    assert "id" in body and body["id"] is None, f"error id must be null: {body}"
    assert body["error"]["code"] == code, f"expected code {code}: {body}"
    assert isinstance(body["error"].get("message"), str) and body["error"]["message"], body


def top_level_member_text(msg_text: str, key: str) -> str | None:
    """The exact source text of a top-level member's value in a JSON object text."""
    dec = json.JSONDecoder()
    i = msg_text.index("{") + 1
    n = len(msg_text)

    def ws(j):
        while j < n and msg_text[j] in " \t\r\n":
            j += 1
        return j

    i = ws(i)
    while i < n and msg_text[i] != "}":
        k, i = dec.raw_decode(msg_text, i)
        i = ws(i)
        assert msg_text[i] == ":", msg_text
        i = ws(i + 1)
        _, end = dec.raw_decode(msg_text, i)
        if k == key:
            return msg_text[i:end]
        i = ws(end)
        if i < n and msg_text[i] == ",":
            i = ws(i + 1)
    return None


def child_pid(url, sid) -> int:
    return int(tool_text(call_tool(url, sid, "whoami", {}, id_=900)))


# ---------------------------------------------------------------------------------------------
# Origin / methods / CORS
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("origin", ["https://evil.example", "http://localhost.evil.example",
                                    "null", "http://127.0.0.2:80"])
def test_foreign_origin_is_403(url, origin):
    r = post(url, init_body(), proto=None, headers={"Origin": origin})
    assert_rpc_error(r, 403, -32000)
    assert not r.has_header("mcp-session-id"), r


def test_origin_checked_before_anything_else(url, sid):
    evil = {"Origin": "https://evil.example"}
    # malformed JSON, unknown session, GET, DELETE: still 403 first
    assert_rpc_error(post(url, b"{not json", proto=None, headers=evil), 403, -32000)
    assert_rpc_error(post(url, rpc("ping"), session="0" * 32, headers=evil), 403, -32000)
    assert_rpc_error(curl("GET", url, headers={**evil, "Accept": "text/event-stream", "Mcp-Session-Id": sid}),
                     403, -32000)
    assert_rpc_error(curl("DELETE", url, headers={**evil, "Mcp-Session-Id": sid}), 403, -32000)
    # ...and the session was not deleted by the refused DELETE
    assert post(url, rpc("ping"), session=sid).status == 200


@pytest.mark.parametrize("origin", ["http://localhost:5173", "https://localhost", "http://127.0.0.1:9",
                                    "http://[::1]:8080"])
def test_local_origins_are_allowed(url, origin):
    r = post(url, init_body(), proto=None, headers={"Origin": origin})
    assert r.status == 200, r
    s = r.header("mcp-session-id")
    assert s and SESSION_RE.match(s), r
    d = curl("DELETE", url, headers={"Mcp-Session-Id": s, "Origin": origin})
    assert d.status == 200, d


@pytest.mark.parametrize("method,extra", [("PUT", {}), ("PATCH", {"Mcp-Session-Id": "0" * 32}),
                                          ("TRACE", {}), ("HEAD", {})])
def test_other_methods_are_405_with_allow(url, method, extra):
    body = None if method in ("HEAD", "TRACE", "CONNECT") else json.dumps(rpc("ping"))
    r = curl(method, url, body=body, headers={"Content-Type": "application/json", **extra})
    # HEAD answers carry no body, so there is no JSON-RPC error to check
    assert_rpc_error(r, 405, None if method == "HEAD" else -32000)
    allow = r.header("allow")
    assert allow is not None, r
    assert [x.strip() for x in allow.split(",")] == ["GET", "POST", "DELETE", "OPTIONS"], allow


def test_connect_to_endpoint_is_405(daemon, url):
    # curl sends CONNECT in authority form; send origin form for /mcp over a raw socket. The client asks for
    # keep-alive: the gateway must still close after the 405 (nothing after a CONNECT is HTTP).
    import socket
    with socket.create_connection((daemon.host, daemon.port), timeout=10) as so:
        so.sendall(f"CONNECT /mcp HTTP/1.1\r\nHost: {daemon.host}:{daemon.port}\r\n\r\n".encode())
        data = b""
        while True:  # until the server closes (the socket timeout fails a hang)
            chunk = so.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("iso-8859-1")
    assert head.startswith("HTTP/1.1 405"), data[:500]
    assert re.search(r"(?im)^allow:\s*GET, POST, DELETE, OPTIONS\s*$", head), head
    assert len(re.findall(r"(?im)^connection:\s*close\s*$", head)) == 1, head


def test_method_unknown_to_libevent_is_501(url):
    r = curl("PROPFIND", url, body=json.dumps(rpc("ping")), headers={"Content-Type": "application/json"})
    assert r.status == 501, r


def test_options_preflight(url):
    r = curl("OPTIONS", url, headers={
        "Origin": "http://localhost:3000",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, mcp-session-id, mcp-protocol-version, last-event-id",
    })
    assert r.status == 204, r
    assert r.body == b"", r
    acao = r.header("access-control-allow-origin")
    assert acao in ("http://localhost:3000", "*"), r
    methods = {m.strip().upper() for m in (r.header("access-control-allow-methods") or "").split(",")}
    assert {"GET", "POST", "DELETE"} <= methods, r
    allow_headers = {h.strip().lower() for h in (r.header("access-control-allow-headers") or "").split(",")}
    if "*" not in allow_headers:
        assert {"content-type", "mcp-session-id", "mcp-protocol-version", "last-event-id"} <= allow_headers, r
    expose = {h.strip().lower() for h in (r.header("access-control-expose-headers") or "").split(",")}
    assert "mcp-session-id" in expose, r


# ---------------------------------------------------------------------------------------------
# Content-Type / Accept / size / JSON validity
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx",
                                   "text/json"])
def test_wrong_content_type_is_415(url, sid, ctype):
    r = post(url, rpc("ping"), session=sid, content_type=ctype)
    assert_rpc_error(r, 415, -32000)


@pytest.mark.parametrize("ctype", ["Application/JSON; charset=UTF-8", "application/json;charset=utf-8", None])
def test_json_content_type_variants_and_missing_are_accepted(url, sid, ctype):
    r = post(url, rpc("ping", id_=5), session=sid, content_type=ctype)
    assert r.status == 200, r
    assert final_message(r) == {"jsonrpc": "2.0", "id": 5, "result": {}}


@pytest.mark.parametrize("accept", ["text/html", "application/xml, text/plain", "image/*"])
def test_accept_ruling_out_both_is_406(url, sid, accept):
    assert_rpc_error(post(url, rpc("ping"), session=sid, accept=accept), 406, -32000)


@pytest.mark.parametrize("accept,expect_ct", [
    ("application/json", "application/json"),
    ("text/event-stream", "text/event-stream"),
    ("*/*", None), (None, None), (ACCEPT_BOTH, None),
])
def test_accept_variants_for_a_plain_request(url, sid, accept, expect_ct):
    r = post(url, rpc("tools/list", {}, id_=3), session=sid, accept=accept)
    assert r.status == 200, r
    ct = (r.content_type or "").lower()
    assert ct.startswith("application/json") or ct.startswith("text/event-stream"), r
    if expect_ct:
        assert ct.startswith(expect_ct), r
    m = final_message(r)
    assert m["id"] == 3 and "echo" in {t["name"] for t in m["result"]["tools"]}, m


def test_accept_json_only_still_gets_tool_call_answer(url, sid):
    r = call_tool(url, sid, "echo", {"text": "json only"}, id_=4, accept="application/json")
    assert r.status == 200, r
    assert (r.content_type or "").lower().startswith("application/json"), r
    assert tool_text(r) == "json only"


def test_body_over_limit_is_413(url, sid):
    big = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"' + \
          b"a" * (5 * 1024 * 1024) + b'"}}}'
    r = post(url, big, session=sid)
    assert r.status == 413, r
    # the session is unharmed
    assert post(url, rpc("ping"), session=sid).status == 200


def test_body_just_under_limit_is_accepted(url, sid):
    text = "b" * (3 * 1024 * 1024)
    r = call_tool(url, sid, "echo", {"text": text}, id_=9, timeout=60)
    assert tool_text(r) == text


@pytest.mark.parametrize("body", [b"{not json", b'{"jsonrpc":"2.0","id":1,"method":"ping"', b"",
                                  b'{"jsonrpc":"2.0","id":1,"method":"\xff\xfe"}', b"\xc3\x28"])
def test_malformed_json_is_400_32700(url, sid, body):
    assert_rpc_error(post(url, body, session=sid), 400, -32700)


@pytest.mark.parametrize("body", [
    "42", '"a string"', "null", "true",
    '{"jsonrpc":"2.0","id":null,"method":"x"}',
    '{"jsonrpc":"1.0","id":1,"method":"ping"}',
    '{"id":1,"method":"ping"}',
    '{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}',
    '{"jsonrpc":"2.0","id":[1],"method":"ping"}',
    '{"jsonrpc":"2.0","id":1.5,"method":"ping"}',
    '{"jsonrpc":"2.0","id":true,"method":"ping"}',
    '{"jsonrpc":"2.0","id":1,"method":5}',
])
def test_not_jsonrpc_is_400_32600(url, sid, body):
    assert_rpc_error(post(url, body, session=sid), 400, -32600)


# ---------------------------------------------------------------------------------------------
# Protocol version header, sessions
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["1999-01-01", "2026-07-28", "garbage", "2025-06-19"])
def test_unsupported_protocol_version_is_400(url, sid, version):
    assert_rpc_error(post(url, rpc("ping"), session=sid, proto=version), 400, -32000)


@pytest.mark.parametrize("version", ALL_VERSIONS + [None])
def test_supported_or_missing_protocol_version_is_accepted(url, sid, version):
    r = post(url, rpc("ping", id_=11), session=sid, proto=version)
    assert r.status == 200, r
    assert final_message(r) == {"jsonrpc": "2.0", "id": 11, "result": {}}


def test_protocol_version_header_not_checked_on_initialize(url):
    r = post(url, init_body(), proto="1999-01-01")
    assert r.status == 200, r
    s = r.header("mcp-session-id")
    assert s and SESSION_RE.match(s)
    assert curl("DELETE", url, headers={"Mcp-Session-Id": s}).status == 200


def test_missing_session_is_400(url):
    assert_rpc_error(post(url, rpc("tools/list", {})), 400, -32000)
    assert_rpc_error(post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}), 400, -32000)


def test_unknown_session_is_404(url):
    r = post(url, rpc("tools/list", {}), session=os.urandom(16).hex())
    assert_rpc_error(r, 404, -32001)
    assert_rpc_error(post(url, rpc("tools/list", {}), session="not-a-session"), 404, -32001)


def test_server_discover_probe_gets_400_not_a_modern_code(url):
    # The answer itself (not its speed, which belongs in make bench) makes 2.x clients fall back:
    # a 400 with a code outside -32020..-32022 (C-05).
    body = rpc("server/discover", {}, id_=0)
    r = post(url, body, proto="2026-07-28")
    assert_rpc_error(r, 400, -32000)


def test_initialize_creates_session_with_hex_id_and_echoes_it(url):
    ids = set()
    for _ in range(3):
        r = post(url, init_body(), proto=None)
        assert r.status == 200, r
        s = r.header("mcp-session-id")
        assert s is not None and SESSION_RE.match(s), f"bad session id {s!r}"
        m = final_message(r)
        assert m["id"] == 1 and m["result"]["protocolVersion"] in ALL_VERSIONS, m
        ids.add(s)
        # every later answer for the session carries the header
        n = post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session=s)
        assert n.status == 202 and n.header("mcp-session-id") == s, n
        t = post(url, rpc("tools/list", {}, id_=2), session=s)
        assert t.status == 200 and t.header("mcp-session-id") == s, t
        c = call_tool(url, s, "echo", {"text": "x"}, id_=3)
        assert c.status == 200 and c.header("mcp-session-id") == s, c
        assert curl("DELETE", url, headers={"Mcp-Session-Id": s}).status == 200
    assert len(ids) == 3


def test_session_header_name_is_case_insensitive(url, sid):
    for name in ("mcp-session-id", "MCP-SESSION-ID", "Mcp-Session-Id"):
        r = post(url, rpc("ping", id_=1), headers={name: sid})
        assert r.status == 200, (name, r)


def test_initialized_notification_is_202_empty_without_content_type(url):
    s, _ = raw_initialize(url, send_initialized=False)
    r = post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session=s)
    assert r.status == 202, r
    assert r.body == b"", r
    assert not r.has_header("content-type"), f"202 must carry no Content-Type: {r!r}"
    cl = r.header("content-length")
    assert cl in (None, "0"), r
    # other notification-only bodies too
    r2 = post(url, {"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": 12345, "reason": "test"}}, session=s)
    assert r2.status == 202 and r2.body == b"" and not r2.has_header("content-type"), r2
    assert curl("DELETE", url, headers={"Mcp-Session-Id": s}).status == 200


def test_request_before_initialized_notification_is_served(url):
    s, _ = raw_initialize(url, send_initialized=False)
    r = post(url, rpc("tools/list", {}, id_=2), session=s)
    assert r.status == 200, r
    assert "echo" in {t["name"] for t in final_message(r)["result"]["tools"]}
    assert curl("DELETE", url, headers={"Mcp-Session-Id": s}).status == 200


def test_initialize_on_live_session_is_400_32600(url, sid):
    r = post(url, init_body(), session=sid)
    assert_rpc_error(r, 400, -32600)
    assert post(url, rpc("ping"), session=sid).status == 200


@pytest.mark.parametrize("path", ["/mcp/", "/mcp"])
def test_trailing_slash_is_same_endpoint_without_redirect(daemon, url, path):
    ep = daemon.base + path
    r = post(ep, init_body(), proto=None)
    assert r.status == 200, r
    assert not any(300 <= s < 400 for s in r.statuses), r.statuses
    s = r.header("mcp-session-id")
    assert s and SESSION_RE.match(s)
    for other in ("/mcp/", "/mcp"):
        t = post(daemon.base + other, rpc("tools/list", {}, id_=2), session=s)
        assert t.status == 200 and not any(300 <= x < 400 for x in t.statuses), t
        assert final_message(t)["id"] == 2
    g = curl("GET", ep, headers={"Mcp-Session-Id": s, "Accept": "application/json"})
    assert_rpc_error(g, 406, -32000)
    assert curl("DELETE", ep, headers={"Mcp-Session-Id": s}).status == 200


# ---------------------------------------------------------------------------------------------
# Response shapes: SSE for tools/call, progress, ids
# ---------------------------------------------------------------------------------------------

def test_tools_call_answer_is_sse_ending_after_response(url, sid):
    r = call_tool(url, sid, "echo", {"text": "over sse"}, id_=21)
    assert r.status == 200, r
    assert (r.content_type or "").lower().startswith("text/event-stream"), r
    events = [e for e in parse_sse(r.text) if e.get("data")]
    assert events, r
    assert all(e.get("event", "message") == "message" for e in events), events
    last = json.loads(events[-1]["data"])
    assert last["id"] == 21 and last["result"]["content"][0]["text"] == "over sse", last


@pytest.mark.parametrize("token", ["tok-ü-1", 0, 987654321])
def test_progress_on_the_post_stream_with_original_token(url, sid, token):
    steps = 4
    r = call_tool(url, sid, "sleep", {"seconds": 0.8, "steps": steps}, id_=31, meta={"progressToken": token})
    assert r.status == 200, r
    assert (r.content_type or "").lower().startswith("text/event-stream"), r
    msgs = r.messages()
    progress = [m for m in msgs if m.get("method") == "notifications/progress"]
    assert [m["params"]["progress"] for m in progress] == [1, 2, 3, 4], msgs
    assert all(m["params"]["progressToken"] == token and type(m["params"]["progressToken"]) is type(token)
               for m in progress), progress
    assert msgs[-1].get("id") == 31 and msgs[-1]["result"]["content"][0]["text"] == "slept", msgs[-1]
    assert msgs[:-1] == progress, "only progress notifications may precede the response"


def test_ping_with_both_accepts_is_json(url, sid):
    r = post(url, rpc("ping", id_=41), session=sid)
    assert r.status == 200
    assert (r.content_type or "").lower().startswith("application/json"), r
    assert r.json() == {"jsonrpc": "2.0", "id": 41, "result": {}}


ID_TEXTS = ['"abc"', "7", r'"x\"y"', "12345678901234", '"1"', "1", "0", "-3", '"\\u00fc"', '"ü"', '""']


@pytest.mark.parametrize("id_text", ID_TEXTS)
def test_ids_are_restored_byte_exactly(url, sid, id_text):
    # JSON answer (ping) ...
    body = '{"jsonrpc":"2.0","id":' + id_text + ',"method":"ping"}'
    r = post(url, body.encode(), session=sid)
    assert r.status == 200, r
    texts = r.message_texts()
    assert len(texts) == 1, r
    assert top_level_member_text(texts[0], "id") == id_text, texts[0]
    # ... and an SSE answer that went through the child (id rewritten and restored)
    body = ('{"jsonrpc":"2.0","id":' + id_text +
            ',"method":"tools/call","params":{"name":"echo","arguments":{"text":"idtest"}}}')
    r = post(url, body.encode(), session=sid)
    assert r.status == 200, r
    texts = r.message_texts()
    assert top_level_member_text(texts[-1], "id") == id_text, texts[-1]
    assert json.loads(texts[-1])["result"]["content"][0]["text"] == "idtest"


def test_float_style_integer_id_is_rejected_or_restored_exactly(url, sid):
    # The contract lists `1.0e0` among ids restored byte-exactly, yet also rejects ids that are
    # "not string or integer". Either answer is coherent; anything else is not.
    body = b'{"jsonrpc":"2.0","id":1.0e0,"method":"ping"}'
    r = post(url, body, session=sid)
    if r.status == 400:
        assert_rpc_error(r, 400, -32600)
    else:
        assert r.status == 200, r
        assert top_level_member_text(r.message_texts()[0], "id") == "1.0e0", r


def test_reused_id_concurrent_posts_each_get_their_own_answer(url, sid):
    results = {}

    def slow():
        results["slow"] = call_tool(url, sid, "sleep", {"seconds": 1.0, "steps": 1}, id_=1)

    t = threading.Thread(target=slow)
    t.start()
    try:
        fast = call_tool(url, sid, "echo", {"text": "fast one"}, id_=1)
        fast_s = post(url, '{"jsonrpc":"2.0","id":"1","method":"tools/call",'
                           '"params":{"name":"echo","arguments":{"text":"string one"}}}', session=sid)
    finally:
        t.join(30)
    assert tool_text(fast) == "fast one"
    assert final_message(fast)["id"] == 1
    assert tool_text(fast_s) == "string one"
    assert final_message(fast_s)["id"] == "1"
    assert tool_text(results["slow"]) == "slept"
    assert final_message(results["slow"])["id"] == 1


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------

def test_batch_rejected_in_2025_06_18_session(url, sid):
    batch = [rpc("ping", id_=1), rpc("tools/list", {}, id_=2)]
    assert_rpc_error(post(url, batch, session=sid), 400, -32600)


def test_batch_allowed_in_2025_03_26_session(url):
    s, init = raw_initialize(url, proto="2025-03-26")
    assert final_message(init)["result"]["protocolVersion"] == "2025-03-26", init
    try:
        batch = [rpc("ping", id_=1), rpc("tools/list", {}, id_="two"),
                 {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}}]
        r = post(url, batch, session=s, proto="2025-03-26")
        assert r.status == 200, r
        msgs = []
        for m in r.messages():
            msgs.extend(m if isinstance(m, list) else [m])
        by_id = {m["id"]: m for m in msgs if "id" in m}
        assert set(by_id) == {1, "two"}, msgs
        assert by_id[1]["result"] == {}
        assert "echo" in {t["name"] for t in by_id["two"]["result"]["tools"]}
        # initialize inside a batch is refused
        assert_rpc_error(post(url, [init_body(proto="2025-03-26")], session=s, proto="2025-03-26"), 400, -32600)
    finally:
        curl("DELETE", url, headers={"Mcp-Session-Id": s})


def test_batch_with_initialize_without_session_is_400_32600(url):
    # "An array containing `initialize` -> 400/-32600", even though there is no session yet.
    r = post(url, [init_body(proto="2025-03-26")], proto=None)
    assert_rpc_error(r, 400, -32600)
    assert not r.has_header("mcp-session-id"), r


# ---------------------------------------------------------------------------------------------
# GET stream and DELETE
# ---------------------------------------------------------------------------------------------

def open_get(url, sid) -> CurlStream:
    return CurlStream(url, {"Accept": "text/event-stream", "Mcp-Session-Id": sid, "MCP-Protocol-Version": PROTO})


def test_get_stream_headers_and_keepalive(url, sid):
    st = open_get(url, sid)
    try:
        assert st.read_head(10) == 200, st.all
        assert (st.header("content-type") or "").lower().startswith("text/event-stream"), st.headers
        assert (st.header("cache-control") or "").replace(" ", "").lower() == "no-cache,no-transform", st.headers
        assert (st.header("x-accel-buffering") or "").lower() == "no", st.headers
        assert st.header("mcp-session-id") == sid, st.headers
        # keep-alive comment every 1s (daemon started with --sse-keepalive 1s)
        t0 = time.monotonic()
        st.wait_for(lambda ln: ln.startswith(":") and "keepalive" in ln, timeout=5)
        st.wait_for(lambda ln: ln.startswith(":") and "keepalive" in ln, timeout=5)
        assert time.monotonic() - t0 < 5
    finally:
        st.close()


def test_get_stream_errors(url, sid):
    assert_rpc_error(curl("GET", url, headers={"Accept": "text/event-stream"}), 400, -32000)
    assert_rpc_error(curl("GET", url, headers={"Accept": "text/event-stream", "Mcp-Session-Id": "f" * 32}),
                     404, -32001)
    assert_rpc_error(curl("GET", url, headers={"Accept": "application/json", "Mcp-Session-Id": sid}), 406, -32000)


def test_second_get_replaces_first(url, sid):
    first = open_get(url, sid)
    second = None
    try:
        assert first.read_head(10) == 200
        first.wait_for(lambda ln: "keepalive" in ln, timeout=5)
        second = open_get(url, sid)
        assert second.read_head(10) == 200
        rc = first.wait_eof(timeout=5)
        assert rc == 0, f"first stream was not ended cleanly (curl exit {rc}): {first.proc.stderr.read()!r}"
        # the new stream lives on and gets keep-alives
        second.wait_for(lambda ln: "keepalive" in ln, timeout=5)
        assert second.proc.poll() is None
    finally:
        first.close()
        if second:
            second.close()


def test_delete_ends_session_and_child(url):
    s, _ = raw_initialize(url)
    pid = child_pid(url, s)
    assert pid_alive(pid)
    st = open_get(url, s)
    try:
        assert st.read_head(10) == 200
        r = curl("DELETE", url, headers={"Mcp-Session-Id": s, "MCP-Protocol-Version": PROTO})
        assert r.status == 200, r
        assert r.body == b"", r
        # the GET stream ends, the child goes away
        assert st.wait_eof(timeout=10) == 0
    finally:
        st.close()
    wait_until(lambda: not pid_alive(pid), 10, what="child of deleted session to exit")
    assert_rpc_error(post(url, rpc("ping"), session=s), 404, -32001)
    assert_rpc_error(curl("DELETE", url, headers={"Mcp-Session-Id": s}), 404, -32001)
    assert_rpc_error(curl("GET", url, headers={"Accept": "text/event-stream", "Mcp-Session-Id": s}), 404, -32001)


def test_delete_without_session_is_400(url):
    assert_rpc_error(curl("DELETE", url), 400, -32000)


# ---------------------------------------------------------------------------------------------
# Child exit seen on the wire
# ---------------------------------------------------------------------------------------------

def test_child_exit_gives_error_then_404(url):
    s, _ = raw_initialize(url)
    pid = child_pid(url, s)
    t0 = time.monotonic()
    r = call_tool(url, s, "crash", {}, id_=77)
    assert time.monotonic() - t0 < 10
    assert r.status == 200, r
    m = final_message(r)
    assert m.get("id") == 77 and m["error"]["code"] == -32000, m
    assert "exited" in m["error"]["message"], m
    wait_until(lambda: not pid_alive(pid), 10, what="crashed child gone")
    after = post(url, rpc("ping"), session=s)
    assert_rpc_error(after, 404, -32001)
    assert "exit" in after.json()["error"]["message"], after


# ---------------------------------------------------------------------------------------------
# Last: the session opened before all the bad input still works
# ---------------------------------------------------------------------------------------------

def test_zz_healthy_session_survived_everything(daemon, healthy):
    sid, pid = healthy
    daemon.assert_alive()
    r = call_tool(daemon.url, sid, "echo", {"text": "still healthy"}, id_=99)
    assert tool_text(r) == "still healthy"
    assert child_pid(daemon.url, sid) == pid
    assert pid_alive(pid)
    assert curl("DELETE", daemon.url, headers={"Mcp-Session-Id": sid}).status == 200

"""Wire-level tests for the legacy HTTP+SSE transport (docs/http-contract.md, "Legacy HTTP+SSE").

All tests share one daemon (FastMCP fixture child, 3 spares, 1s keep-alive) and most share one
initialized legacy session (`lc`), which must survive all the bad input. Streams are read over
raw sockets (RawSSE) so headers and events are seen as soon as the daemon sends them.
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from conftest import (
    FIXTURE_CMD, LEGACY_ENDPOINT_RE, PROTO, LegacyClient, RawSSE, cli_args, curl, finish_daemon, init_body,
    legacy_post, post, raw_initialize, start_daemon, tool_result_text,
)


@pytest.fixture(scope="module")
def daemon():
    d = start_daemon(*cli_args("--spares", "3", "--sse-keepalive", "1s", child=FIXTURE_CMD))
    yield d
    finish_daemon(d)


@pytest.fixture
def d(daemon):
    yield daemon
    daemon.assert_alive()


@pytest.fixture(scope="module")
def shared_lc(daemon):
    c = LegacyClient(daemon).open()
    c.initialize()
    yield c
    c.close()


@pytest.fixture
def lc(d, shared_lc):
    """An open, initialized legacy session, shared by the module (ids are unique per test), checked after
    each test."""
    yield shared_lc
    assert not shared_lc.stream.ended, "the shared legacy stream ended"


def rpc(method, params=None, id_=1):
    m = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        m["params"] = params
    return m


def assert_rpc_error(r, status: int, code: int | None):
    assert r.status == status, f"expected HTTP {status}, got {r!r}"
    if code is None:
        return
    assert (r.content_type or "").lower().startswith("application/json"), f"error body must be JSON: {r!r}"
    body = r.json()
    assert body.get("jsonrpc") == "2.0" and "id" in body and body["id"] is None, body
    assert body["error"]["code"] == code, f"expected code {code}: {body}"
    assert isinstance(body["error"].get("message"), str) and body["error"]["message"], body


def assert_202(r):
    assert r.status == 202, f"expected 202, got {r!r}"
    assert r.body == b"", f"202 must have an empty body: {r!r}"
    assert not r.has_header("content-type"), f"202 must carry no Content-Type: {r!r}"
    assert r.header("content-length") in (None, "0"), r


def with_query(url: str, **params) -> str:
    base = url.split("?", 1)[0]
    q = "&".join(f"{k}={v}" for k, v in params.items())
    return base + ("?" + q if q else "")


# ---------------------------------------------------------------------------------------------
# GET /sse
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("accept", ["text/event-stream", None, "*/*", "text/*, application/json"])
def test_get_sse_headers_and_endpoint_first(d, accept):
    st = RawSSE(d.host, d.port, "/sse", {} if accept is None else {"Accept": accept})
    try:
        assert st.read_head(10) == 200, (st.status, st.headers, st.raw[:300])
        assert (st.header("content-type") or "").lower().startswith("text/event-stream"), st.headers
        assert (st.header("cache-control") or "").replace(" ", "").lower() == "no-cache,no-transform", st.headers
        assert (st.header("x-accel-buffering") or "").lower() == "no", st.headers
        assert not st.header("content-encoding"), st.headers
        ev = st.next_event(10)
        assert ev["event"] == "endpoint", f"first event must be endpoint: {ev}"
        assert st.events[0] is ev
        m = LEGACY_ENDPOINT_RE.match(ev["data"])
        assert m and m.group(1) is None, f"endpoint must be /messages?sessionId=<32 hex>: {ev['data']!r}"
        # nothing but comments may precede it in the body
        before = st.all_body.split(b"event: endpoint", 1)[0] if b"event: endpoint" in st.all_body else b""
        assert all(ln.startswith(b":") or ln.strip() == b"" for ln in before.splitlines()), st.all_body[:300]
    finally:
        st.close()


def test_each_stream_gets_its_own_session_id(d):
    ids = set()
    streams = [LegacyClient(d).open() for _ in range(3)]
    try:
        ids = {c.session_id for c in streams}
        assert len(ids) == 3, ids
    finally:
        for c in streams:
            c.close()


def test_get_sse_accept_ruling_out_event_stream_is_refused(d):
    # "Accept must allow text/event-stream": the contract gives no status; /mcp's GET uses 406.
    r = curl("GET", d.base + "/sse", headers={"Accept": "application/json"}, timeout=10)
    assert r.status == 406, r


def test_keepalive_comments_on_the_legacy_stream(d):
    c = LegacyClient(d).open()
    try:
        t0 = time.monotonic()
        c.stream.wait_comment(lambda x: x == "keepalive", timeout=5)
        n = len(c.stream.comments)
        c.stream.wait_comment(lambda x: x == "keepalive", timeout=5, start=n)
        assert time.monotonic() - t0 < 5
    finally:
        c.close()


def test_post_sse_is_405_allow_get(d):
    # what a 2025-11-25 client with SSE fallback sends first (scenario 41)
    r = post(d.base + "/sse", init_body(proto="2025-11-25"), proto=None)
    assert r.status == 405, r
    assert [x.strip() for x in (r.header("allow") or "").split(",")] == ["GET"], r
    # ... and then its GET fallback works
    c = LegacyClient(d).open()
    try:
        c.initialize()
        assert tool_result_text(c.call_tool("echo", {"text": "after fallback"}, id_=2)) == "after fallback"
    finally:
        c.close()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("path", ["/messages", "/messages/"])
def test_other_methods_on_messages_are_405_allow_post(d, lc, method, path):
    url = d.base + path + "?sessionId=" + lc.session_id
    r = curl(method, url, headers={"Accept": "*/*"}, timeout=10)
    assert r.status == 405, r
    assert [x.strip() for x in (r.header("allow") or "").split(",")] == ["POST"], r
    # the session is unharmed (a DELETE here is not a session DELETE)
    assert lc.request("ping", id_=77)["result"] == {}


# ---------------------------------------------------------------------------------------------
# POST /messages
# ---------------------------------------------------------------------------------------------

def test_post_202_empty_and_answer_on_stream(d, lc):
    r = lc.post(rpc("tools/call", {"name": "echo", "arguments": {"text": "on the stream"}}, id_=5))
    assert_202(r)
    msg = lc.stream.response(5)
    assert tool_result_text(msg) == "on the stream"
    ev = [e for e in lc.stream.events if e["event"] != "endpoint"]
    assert all(e["event"] == "message" for e in ev), ev


def test_post_without_session_is_400(d, lc):
    for url in (d.base + "/messages", d.base + "/messages/", d.base + "/messages?sessionId=",
                d.base + "/messages?other=1"):
        assert_rpc_error(legacy_post(url, rpc("ping")), 400, -32000)


@pytest.mark.parametrize("sid", [os.urandom(16).hex(), "not-a-session", "0" * 32])
def test_post_unknown_session_is_404(d, sid):
    assert_rpc_error(legacy_post(d.base + "/messages?sessionId=" + sid, rpc("ping")), 404, -32001)


@pytest.mark.parametrize("path,key", [("/messages", "session_id"), ("/messages/", "sessionId"),
                                      ("/messages/", "session_id")])
def test_post_spelling_variants_are_accepted(d, lc, path, key):
    r = legacy_post(d.base + path + f"?{key}={lc.session_id}", rpc("ping", id_=31))
    assert_202(r)
    assert not any(300 <= s < 400 for s in r.statuses), r.statuses
    assert lc.stream.response(31) == {"jsonrpc": "2.0", "id": 31, "result": {}}


@pytest.mark.parametrize("ctype", ["application/json; charset=utf-8", "Application/JSON;charset=UTF-8", None])
def test_post_json_content_type_variants(d, lc, ctype):
    assert_202(lc.post(rpc("ping", id_=41), content_type=ctype))
    assert lc.stream.response(41)["result"] == {}


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "text/json"])
def test_post_wrong_content_type_is_415(d, lc, ctype):
    assert_rpc_error(lc.post(rpc("ping"), content_type=ctype), 415, -32000)


@pytest.mark.parametrize("body", [b"{not json", b"", b'{"jsonrpc":"2.0","id":1,"method":"ping"', b"\xc3\x28"])
def test_post_malformed_json_is_400_32700(d, lc, body):
    assert_rpc_error(lc.post(body), 400, -32700)


@pytest.mark.parametrize("body", ["42", "null", '{"jsonrpc":"1.0","id":1,"method":"ping"}',
                                  '{"jsonrpc":"2.0","id":1.5,"method":"ping"}',
                                  '{"jsonrpc":"2.0","id":1,"method":5}',
                                  '[{"jsonrpc":"2.0","id":1,"method":"ping"}]'])
def test_post_not_jsonrpc_or_array_is_400_32600(d, lc, body):
    assert_rpc_error(lc.post(body), 400, -32600)


def test_post_with_bad_origin_is_403(d, lc):
    r = lc.post(rpc("ping"), headers={"Origin": "https://evil.example"})
    assert_rpc_error(r, 403, -32000)
    g = curl("GET", d.base + "/sse", headers={"Accept": "text/event-stream", "Origin": "https://evil.example"},
             timeout=10)
    assert_rpc_error(g, 403, -32000)


def test_errors_are_http_answers_not_stream_events(d, lc):
    n = len(lc.stream.messages)
    assert lc.post(b"{not json").status == 400
    assert lc.post(rpc("ping"), content_type="text/plain").status == 415
    # a marker request: everything the stream carried up to its answer
    lc.request("ping", id_="marker")
    extra = lc.stream.messages[n:]
    assert extra == [{"jsonrpc": "2.0", "id": "marker", "result": {}}], extra


# ---------------------------------------------------------------------------------------------
# Session semantics on the stream
# ---------------------------------------------------------------------------------------------

def test_request_before_initialize_gets_error_event_then_initialize_works(d):
    c = LegacyClient(d).open()
    try:
        assert_202(c.post(rpc("tools/list", {}, id_=3)))
        m = c.stream.response(3)
        assert m.get("error", {}).get("code") == -32000, m
        assert "initialize" in m["error"]["message"], m
        # the session is still usable: initialize now
        res = c.initialize(id_=4)
        assert res["result"]["protocolVersion"] in ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"), res
        assert tool_result_text(c.call_tool("echo", {"text": "late init"}, id_=5)) == "late init"
    finally:
        c.close()


def test_initialize_2024_11_05_result(d):
    c = LegacyClient(d).open()
    try:
        res = c.initialize(proto="2024-11-05", id_="init")
        assert res["id"] == "init"
        assert res["result"]["protocolVersion"] == "2024-11-05", res
        assert "tools" in res["result"]["capabilities"], res
    finally:
        c.close()


ID_TEXTS = ['"abc"', "7", r'"x\"y"', "12345678901234", '"1"', "0", '"ü"']


@pytest.mark.parametrize("id_text", ID_TEXTS)
def test_ids_restored_exactly_on_the_stream(d, lc, id_text):
    body = ('{"jsonrpc":"2.0","id":' + id_text +
            ',"method":"tools/call","params":{"name":"echo","arguments":{"text":"id"}}}')
    n = len(lc.stream.events)
    assert_202(lc.post(body.encode()))
    want = json.loads(id_text)
    m = lc.stream.wait_message(lambda m: m.get("id") == want and type(m.get("id")) is type(want)
                               and ("result" in m or "error" in m), 15)
    assert tool_result_text(m) == "id"
    raw = [e["data"] for e in lc.stream.events[n:] if e["event"] == "message" and '"result"' in e["data"]]
    assert len(raw) == 1, raw
    assert any(('"id":' + id_text) in r.replace('"id": ', '"id":') for r in raw), raw[-3:]


def test_progress_on_the_stream_with_original_token_before_result(d, lc):
    n = len(lc.stream.messages)
    res = lc.call_tool("sleep", {"seconds": 0.8, "steps": 4}, id_=51, meta={"progressToken": "tok-ü"})
    assert tool_result_text(res) == "slept"
    msgs = lc.stream.messages[n:]
    progress = [m for m in msgs if m.get("method") == "notifications/progress"]
    assert [p["params"]["progress"] for p in progress] == [1, 2, 3, 4], msgs
    assert all(p["params"]["progressToken"] == "tok-ü" for p in progress), progress
    assert msgs[-1] is res or msgs[-1] == res


def test_concurrent_requests_in_one_legacy_session(d, lc):
    n = len(lc.stream.messages)
    lc.send(rpc("tools/call", {"name": "sleep", "arguments": {"seconds": 1.0, "steps": 0}}, id_="slow"))
    lc.send(rpc("tools/call", {"name": "echo", "arguments": {"text": "fast"}}, id_="fast"))
    fast = lc.stream.response("fast")
    slow = lc.stream.response("slow")
    assert tool_result_text(fast) == "fast" and tool_result_text(slow) == "slept"
    ids = [m.get("id") for m in lc.stream.messages[n:] if m.get("id") in ("fast", "slow")]
    assert ids == ["fast", "slow"], ids  # the echo did not wait behind the sleep


def test_sessions_do_not_cross_transports(d, lc):
    # a legacy session id is not a Streamable session
    r = post(d.url, rpc("tools/list", {}), session=lc.session_id)
    assert_rpc_error(r, 404, -32001)
    # a Streamable session id is not a legacy session
    sid, _ = raw_initialize(d.url)
    try:
        assert_rpc_error(legacy_post(d.base + "/messages?sessionId=" + sid, rpc("ping")), 404, -32001)
    finally:
        curl("DELETE", d.url, headers={"Mcp-Session-Id": sid, "MCP-Protocol-Version": PROTO})
    # both still work on their own endpoints
    assert lc.request("ping", id_=61)["result"] == {}


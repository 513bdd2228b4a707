"""Shared-secret keys over TLS: 401/400/403, session binding, secrets never logged, the official SDK
client over https, plain + TLS listeners side by side, protected mode, `switchyard hash-key`.

The module daemon serves `fix` (the FastMCP fixture, default) and `time` (mcp-server-time) on one TLS
listener, with four keys, one of each kind:
  alice  auth.keys[].sha256           all servers
  bob    auth.keys[].secret_env       all servers
  carol  auth.keys[].secret_file      servers: [fix]
  dave   auth.keys_file (label:hex)   all servers
"""

from __future__ import annotations

import json
import os
import re
import secrets
import ssl
import subprocess
from datetime import datetime

import pytest

from conftest import (
    FIXTURE_CMD, MCP_SERVER_TIME, PROTO, SWITCHYARD_BIN, curl, finish_daemon, init_body, legacy_post, post,
    run_async, start_daemon, text_of, tool_result_text, LEGACY_ENDPOINT_RE,
)
from tlskit import (
    TlsRawSSE, client_context, listener_endpoints, pki, sha256_hex, tls_curl_args, wait_log,
)

_ = pki  # fixture

SECRETS = {name: f"sy-e2e-{name}-{secrets.token_hex(16)}" for name in ("alice", "bob", "carol", "dave")}
WRONG = f"sy-e2e-wrong-{secrets.token_hex(16)}"
BOB_ENV = "SWITCHYARD_E2E_BOB_SECRET"
ENV_UNSET = "SWITCHYARD_E2E_SURELY_UNSET_VAR"


def bearer(name_or_secret: str) -> dict:
    return {"Authorization": f"Bearer {SECRETS.get(name_or_secret, name_or_secret)}"}


def servers_yaml(spares: int = 0) -> str:
    py, fixture = FIXTURE_CMD
    return f"""servers:
  fix:
    command: {json.dumps(py)}
    args: [{json.dumps(fixture)}]
    spares: {spares}
  time:
    command: {json.dumps(MCP_SERVER_TIME)}
    spares: {spares}
default_server: fix
"""


def auth_yaml(tmp, header: str | None = None) -> str:
    carol = tmp / "carol.secret"
    carol.write_text(SECRETS["carol"] + "\n")
    keys = tmp / "keys.txt"
    keys.write_text(f"# keys file\n\ndave:{sha256_hex(SECRETS['dave'])}\n")
    h = f"  header: {header}\n" if header else ""
    return f"""auth:
{h}  keys:
    - label: alice
      sha256: {sha256_hex(SECRETS['alice'])}
    - label: bob
      secret_env: {BOB_ENV}
    - label: carol
      secret_file: {json.dumps(str(carol))}
      servers: [fix]
  keys_file: {json.dumps(str(keys))}
"""


def start_with_env(*args, listeners=1):
    os.environ[BOB_ENV] = SECRETS["bob"]
    try:
        return start_daemon(*args, listeners=listeners)
    finally:
        del os.environ[BOB_ENV]


@pytest.fixture(scope="module")
def authd(pki, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auth")
    cfg = tmp / "switchyard.yaml"
    cfg.write_text(f"""listen:
  - address: "127.0.0.1:0"
    tls: {{cert: {json.dumps(pki.ecdsa.cert)}, key: {json.dumps(pki.ecdsa.key)}}}
{servers_yaml()}{auth_yaml(tmp)}limits:
  sse_keepalive: 1s
""")
    d = start_with_env("--config", str(cfg))
    try:
        d.https = f"https://127.0.0.1:{d.port}"
        d.tls_extra = tls_curl_args(pki.ca)
        yield d
    finally:
        finish_daemon(d)


@pytest.fixture
def d(authd):
    yield authd
    authd.assert_alive()


def hpost(d, path, body, headers=None, **kw):
    return post(d.https + path, body, headers=headers, extra=d.tls_extra + kw.pop("extra", []), **kw)


def hinit(d, path="/mcp", key="alice", headers=None):
    h = dict(bearer(key)) if key else {}
    h.update(headers or {})
    r = hpost(d, path, init_body(), headers=h, proto=None)
    assert r.status == 200, f"initialize on {path} with key {key}: {r!r}"
    sid = r.header("mcp-session-id")
    assert sid, r
    n = hpost(d, path, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session=sid, headers=h)
    assert n.status == 202, n
    return sid


def assert_rpc_error(r, status: int, code: int = -32000):
    assert r.status == status, f"expected HTTP {status}, got {r!r}"
    assert (r.content_type or "").lower().startswith("application/json"), r
    body = r.json()
    assert body.get("jsonrpc") == "2.0" and body.get("id") is None and body["error"]["code"] == code, body
    return body


def assert_401(r):
    body = assert_rpc_error(r, 401)
    assert r.header_all("www-authenticate") == ['Bearer realm="switchyard"'], r
    assert "resource_metadata" not in (r.header("www-authenticate") or "")
    return body


def echo(id_=2, text="hi"):
    return {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": text}}}


# ---------------------------------------------------------------------------------------------
# 401 / 200
# ---------------------------------------------------------------------------------------------

def test_no_key_401_on_every_endpoint(d):
    assert_401(hpost(d, "/mcp", init_body(), proto=None))
    assert_401(curl("GET", d.https + "/mcp", headers={"Accept": "text/event-stream"}, extra=d.tls_extra))
    assert_401(curl("DELETE", d.https + "/mcp", headers={"Mcp-Session-Id": "0" * 32}, extra=d.tls_extra))
    assert_401(hpost(d, "/servers/time/mcp", init_body(), proto=None))
    assert_401(curl("GET", d.https + "/sse", headers={"Accept": "text/event-stream"}, extra=d.tls_extra))
    assert_401(legacy_post(d.https + "/messages?sessionId=" + "0" * 32, init_body(), extra=d.tls_extra))
    assert_401(curl("GET", d.https + "/servers/time/sse", headers={"Accept": "text/event-stream"}, extra=d.tls_extra))


@pytest.mark.parametrize("value", [f"Bearer {WRONG}", "Bearer ", "Basic dXNlcjpwYXNz", "alice", "Bearer"])
def test_wrong_or_malformed_key_401(d, value):
    r = hpost(d, "/mcp", init_body(), headers={"Authorization": value}, proto=None)
    assert_401(r)


def test_raw_secret_without_bearer_is_401(d):
    assert_401(hpost(d, "/mcp", init_body(), headers={"Authorization": SECRETS["alice"]}, proto=None))


@pytest.mark.parametrize("key", ["alice", "bob", "carol", "dave"])
def test_each_key_kind_accepted(d, key):
    sid = hinit(d, key=key)
    r = hpost(d, "/mcp", echo(text=key), session=sid, headers=bearer(key))
    assert r.status == 200, r
    assert tool_result_text(r.messages()[-1]) == key


def test_bearer_scheme_is_case_insensitive(d):
    r = hpost(d, "/mcp", init_body(), headers={"Authorization": f"bearer {SECRETS['alice']}"}, proto=None)
    assert r.status == 200, r


# ---------------------------------------------------------------------------------------------
# 400
# ---------------------------------------------------------------------------------------------

def test_duplicate_authorization_headers_400(d):
    for second in (SECRETS["alice"], SECRETS["bob"], WRONG):
        r = hpost(d, "/mcp", init_body(), headers=bearer("alice"), proto=None,
                  extra=["-H", f"Authorization: Bearer {second}"])
        assert_rpc_error(r, 400)
    # duplicate on the legacy transport too
    r = curl("GET", d.https + "/sse", headers={"Accept": "text/event-stream", **bearer("alice")},
             extra=d.tls_extra + ["-H", f"Authorization: Bearer {SECRETS['alice']}"])
    assert_rpc_error(r, 400)


@pytest.mark.parametrize("param", ["token", "key", "access_token", "api_key", "TOKEN"])
def test_secret_in_query_400(d, param):
    # even together with a valid header, and even when the query value is the right secret
    r = hpost(d, f"/mcp?{param}={SECRETS['alice']}", init_body(), headers=bearer("alice"), proto=None)
    assert_rpc_error(r, 400)
    r = hpost(d, f"/mcp?{param}={SECRETS['alice']}", init_body(), proto=None)
    assert_rpc_error(r, 400)


def test_secret_in_legacy_query_400(d):
    r = legacy_post(d.https + f"/messages?sessionId={'0' * 32}&access_token={SECRETS['alice']}", init_body(),
                    headers=bearer("alice"), extra=d.tls_extra)
    assert_rpc_error(r, 400)
    r = curl("GET", d.https + f"/sse?token={SECRETS['alice']}", headers={"Accept": "text/event-stream", **bearer("alice")},
             extra=d.tls_extra)
    assert_rpc_error(r, 400)


# ---------------------------------------------------------------------------------------------
# 403: scopes
# ---------------------------------------------------------------------------------------------

def test_key_scoped_to_other_server_403(d):
    body = assert_rpc_error(hpost(d, "/servers/time/mcp", init_body(), headers=bearer("carol"), proto=None), 403)
    assert "carol" in body["error"]["message"] and "time" in body["error"]["message"], body
    r = curl("GET", d.https + "/servers/time/sse", headers={"Accept": "text/event-stream", **bearer("carol")},
             extra=d.tls_extra)
    assert_rpc_error(r, 403)
    # carol may use fix, by name and as the default server
    hinit(d, "/servers/fix/mcp", key="carol")
    hinit(d, "/mcp", key="carol")
    # other keys may use time
    hinit(d, "/servers/time/mcp", key="alice")


# ---------------------------------------------------------------------------------------------
# Session binding
# ---------------------------------------------------------------------------------------------

def test_session_bound_to_its_key(d):
    sid = hinit(d, key="alice")
    r = hpost(d, "/mcp", echo(), session=sid, headers=bearer("bob"))
    assert_rpc_error(r, 404, -32001)
    r = curl("GET", d.https + "/mcp", headers={"Accept": "text/event-stream", "Mcp-Session-Id": sid,
                                                 "MCP-Protocol-Version": PROTO, **bearer("bob")}, extra=d.tls_extra)
    assert_rpc_error(r, 404, -32001)
    r = curl("DELETE", d.https + "/mcp", headers={"Mcp-Session-Id": sid, "MCP-Protocol-Version": PROTO, **bearer("dave")},
             extra=d.tls_extra)
    assert_rpc_error(r, 404, -32001)
    # no key at all: 401, not 404 (auth comes first)
    assert_401(hpost(d, "/mcp", echo(), session=sid))
    # the owner is unaffected
    r = hpost(d, "/mcp", echo(text="mine"), session=sid, headers=bearer("alice"))
    assert r.status == 200 and tool_result_text(r.messages()[-1]) == "mine", r
    r = curl("DELETE", d.https + "/mcp", headers={"Mcp-Session-Id": sid, "MCP-Protocol-Version": PROTO, **bearer("alice")},
             extra=d.tls_extra)
    assert r.status == 200, r


def test_legacy_session_bound_to_its_key(d, pki):
    s = TlsRawSSE("127.0.0.1", d.port, "/sse", client_context(pki.ca), {"Accept": "text/event-stream", **bearer("alice")})
    try:
        assert s.read_head() == 200, s.headers
        ev = s.next_event()
        assert ev["event"] == "endpoint" and LEGACY_ENDPOINT_RE.match(ev["data"]), ev
        murl = d.https + ev["data"]
        r = legacy_post(murl, init_body(proto="2024-11-05"), headers=bearer("bob"), extra=d.tls_extra)
        assert_rpc_error(r, 404, -32001)
        assert_401(legacy_post(murl, init_body(proto="2024-11-05"), extra=d.tls_extra))
        r = legacy_post(murl, init_body(proto="2024-11-05", id_=7), headers=bearer("alice"), extra=d.tls_extra)
        assert r.status == 202, r
        assert "result" in s.response(7, 15)
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------
# Logs: labels yes, secrets never
# ---------------------------------------------------------------------------------------------

def test_label_logged_secret_never(d):
    sid = hinit(d, key="dave")
    hpost(d, "/mcp", init_body(), headers=bearer(WRONG), proto=None)
    hpost(d, "/servers/time/mcp", init_body(), headers=bearer("carol"), proto=None)
    line = wait_log(d, re.compile(rf"msg=session_opened session={sid} .*key=dave(\s|$)"))
    assert "key=dave" in line
    wait_log(d, re.compile(r"msg=auth_failed"))
    wait_log(d, re.compile(r"msg=auth_forbidden .*key=carol"))
    log = d.log_text()
    for name, secret in [*SECRETS.items(), ("wrong", WRONG)]:
        assert secret not in log, f"the secret of {name} appears in the gateway log"
        # nor a recognisable part of it
        assert secret.rsplit("-", 1)[1][:12] not in log, f"part of the secret of {name} appears in the log"


# ---------------------------------------------------------------------------------------------
# A custom key header
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokend(pki, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("token")
    cfg = tmp / "switchyard.yaml"
    cfg.write_text(f"""listen:
  - address: "127.0.0.1:0"
    tls: {{cert: {json.dumps(pki.ecdsa.cert)}, key: {json.dumps(pki.ecdsa.key)}}}
{servers_yaml()}{auth_yaml(tmp, header="X-MCP-Token")}""")
    d = start_with_env("--config", str(cfg))
    try:
        d.https = f"https://127.0.0.1:{d.port}"
        d.tls_extra = tls_curl_args(pki.ca)
        yield d
    finally:
        finish_daemon(d)


def test_custom_header_raw_key(tokend):
    d = tokend
    assert_401(hpost(d, "/mcp", init_body(), proto=None))
    # Authorization is not the configured header
    assert_401(hpost(d, "/mcp", init_body(), headers=bearer("alice"), proto=None))
    # the header carries the raw key; "Bearer <key>" is not it
    assert_401(hpost(d, "/mcp", init_body(), headers={"X-MCP-Token": f"Bearer {SECRETS['alice']}"}, proto=None))
    assert_401(hpost(d, "/mcp", init_body(), headers={"X-MCP-Token": WRONG}, proto=None))
    # header names are case-insensitive
    r = hpost(d, "/mcp", init_body(), headers={"x-mcp-token": SECRETS["alice"]}, proto=None)
    assert r.status == 200, r
    sid = hinit(d, key=None, headers={"X-MCP-Token": SECRETS["alice"]})
    r = hpost(d, "/mcp", echo(text="tok"), session=sid, headers={"X-MCP-Token": SECRETS["alice"]})
    assert r.status == 200 and tool_result_text(r.messages()[-1]) == "tok", r
    # bound to the key here too
    assert_rpc_error(hpost(d, "/mcp", echo(), session=sid, headers={"X-MCP-Token": SECRETS["bob"]}), 404, -32001)
    # duplicate header, secret in the URL, scope
    assert_rpc_error(hpost(d, "/mcp", init_body(), headers={"X-MCP-Token": SECRETS["alice"]}, proto=None,
                           extra=["-H", f"X-MCP-Token: {SECRETS['alice']}"]), 400)
    assert_rpc_error(hpost(d, f"/mcp?key={SECRETS['alice']}", init_body(), headers={"X-MCP-Token": SECRETS["alice"]},
                           proto=None), 400)
    assert_rpc_error(hpost(d, "/servers/time/mcp", init_body(), headers={"X-MCP-Token": SECRETS["carol"]}, proto=None), 403)
    log = d.log_text()
    for secret in [*SECRETS.values(), WRONG]:
        assert secret not in log


# ---------------------------------------------------------------------------------------------
# The official SDK (1.x) over https with the key header, against mcp-server-time
# ---------------------------------------------------------------------------------------------

def sdk_factory(ca: str):
    import httpx

    def factory(headers=None, timeout=None, auth=None):
        kw = {"timeout": timeout or httpx.Timeout(30, read=300), "verify": ssl.create_default_context(cafile=ca)}
        if headers is not None:
            kw["headers"] = headers
        if auth is not None:
            kw["auth"] = auth
        return httpx.AsyncClient(**kw)

    return factory


def check_time_result(res):
    data = json.loads(text_of(res))
    assert data["timezone"] == "UTC", data
    datetime.fromisoformat(data["datetime"])


def test_sdk_streamable_http_over_https(d, pki):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def go():
        async with streamablehttp_client(d.https + "/servers/time/mcp", headers=bearer("alice"),
                                         httpx_client_factory=sdk_factory(pki.ca)) as (read, write, get_sid):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                assert init.serverInfo.name == "mcp-time", init.serverInfo
                tools = {t.name for t in (await session.list_tools()).tools}
                assert "get_current_time" in tools, tools
                check_time_result(await session.call_tool("get_current_time", {"timezone": "UTC"}))
                return get_sid()

    sid = run_async(go, timeout=60)
    assert sid and re.fullmatch(r"[0-9a-f]{32}", sid)
    assert wait_log(d, re.compile(rf"msg=session_opened session={sid} server=time .*key=alice"))


def test_sdk_streamable_http_with_ssl_cert_file_env(d, pki, monkeypatch):
    """Without a factory: the SDK's default httpx client trusts SSL_CERT_FILE."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    monkeypatch.setenv("SSL_CERT_FILE", pki.ca)

    async def go():
        async with streamablehttp_client(d.https + "/servers/time/mcp", headers=bearer("bob")) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                check_time_result(await session.call_tool("get_current_time", {"timezone": "UTC"}))

    run_async(go, timeout=60)


def test_sdk_legacy_sse_over_https(d, pki):
    from mcp import ClientSession
    from mcp.client.sse import sse_client

    info = {}

    async def go():
        async with sse_client(d.https + "/servers/time/sse", headers=bearer("dave"), timeout=10, sse_read_timeout=60,
                              httpx_client_factory=sdk_factory(pki.ca),
                              on_session_created=lambda sid: info.__setitem__("sid", sid)) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                check_time_result(await session.call_tool("get_current_time", {"timezone": "UTC"}))

    run_async(go, timeout=60)
    assert re.fullmatch(r"[0-9a-f]{32}", info.get("sid", "")), info


# ---------------------------------------------------------------------------------------------
# Plain and TLS listeners in one process
# ---------------------------------------------------------------------------------------------

def test_plain_and_tls_listeners_side_by_side(pki, tmp_path):
    cfg = tmp_path / "switchyard.yaml"
    cfg.write_text(f"""listen:
  - address: "127.0.0.1:0"
  - address: "127.0.0.1:0"
    tls: {{cert: {json.dumps(pki.ecdsa.cert)}, key: {json.dumps(pki.ecdsa.key)}}}
{servers_yaml()}{auth_yaml(tmp_path)}""")
    d = start_with_env("--config", str(cfg), listeners=2)
    try:
        eps = listener_endpoints(d)
        assert [e[0] for e in eps] == ["http", "https"], eps
        plain, tls = eps[0][2] + "/mcp", eps[1][2] + "/mcp"
        x = tls_curl_args(pki.ca)
        # auth applies to both listeners
        assert_401(post(plain, init_body(), proto=None))
        assert_401(post(tls, init_body(), proto=None, extra=x))
        # plain HTTP on the TLS port is not served as HTTP
        cp = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                             eps[1][2].replace("https://", "http://") + "/mcp"], capture_output=True, timeout=15)
        assert cp.stdout.decode() in ("000", "400"), cp
        # each listener serves sessions
        for url, extra in ((plain, []), (tls, x)):
            r = post(url, init_body(), proto=None, headers=bearer("alice"), extra=extra)
            assert r.status == 200 and r.header("mcp-session-id"), r

        # a session created over TLS, then used over the plain listener
        r = post(tls, init_body(), proto=None, headers=bearer("alice"), extra=x)
        sid = r.header("mcp-session-id")
        assert post(tls, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session=sid,
                    headers=bearer("alice"), extra=x).status == 202
        cross = post(plain, echo(text="cross"), session=sid, headers=bearer("alice"))
        print(f"\n[observed] session created over TLS, used over plain HTTP with the same key: HTTP {cross.status} "
              f"{cross.body[:200]!r}")
        assert cross.status in (200, 404), f"expected either a shared session (200) or a refusal (404): {cross!r}"
        if cross.status == 200:
            assert tool_result_text(cross.messages()[-1]) == "cross", cross
        else:
            assert cross.rpc_error_code() == -32001, cross
        # whatever the listener, the key binding holds
        assert_rpc_error(post(plain, echo(), session=sid, headers=bearer("bob")), 404, -32001)
        # and the session still works where it was made
        r = post(tls, echo(text="home"), session=sid, headers=bearer("alice"), extra=x)
        assert r.status == 200 and tool_result_text(r.messages()[-1]) == "home", r
    finally:
        finish_daemon(d)


# ---------------------------------------------------------------------------------------------
# Protected mode, config errors, hash-key
# ---------------------------------------------------------------------------------------------

def run_switchyard(*args, env=None, input=None, timeout=20):
    e = dict(os.environ)
    e.pop(ENV_UNSET, None)
    e.update(env or {})
    return subprocess.run([SWITCHYARD_BIN, *args], capture_output=True, timeout=timeout, env=e, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL)


def assert_exit_78_one_line(cp, *needles):
    err = cp.stderr.decode(errors="replace")
    assert cp.returncode == 78, f"expected exit 78, got {cp.returncode}; stderr:\n{err[:800]}"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err[:800]}"
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    assert cp.stdout == b""
    return lines[0]


def test_protected_mode_quick_mode_refuses_public_host():
    cp = run_switchyard("--host", "0.0.0.0", "--port", "0", "--", "/bin/cat")
    assert_exit_78_one_line(cp, "allow_insecure")


def test_protected_mode_allow_insecure_flag_starts(switchyard):
    d = switchyard("--host", "0.0.0.0", "--port", "0", "--allow-insecure", "--spares", "0", child=FIXTURE_CMD,
                   port_args=False)
    assert d.host == "0.0.0.0"
    r = post(f"http://127.0.0.1:{d.port}/mcp", init_body(), proto=None)
    assert r.status == 200, r


def public_cfg(tmp_path, pki, tls: bool, keys: bool, allow: bool = False) -> str:
    t = (f"\n    tls: {{cert: {json.dumps(pki.ecdsa.cert)}, key: {json.dumps(pki.ecdsa.key)}}}" if tls else "")
    k = f"auth:\n  keys:\n    - {{label: alice, sha256: {sha256_hex(SECRETS['alice'])}}}\n" if keys else ""
    a = "allow_insecure: true\n" if allow else ""
    p = tmp_path / f"public-{int(tls)}{int(keys)}{int(allow)}.yaml"
    p.write_text(f"""listen:
  - address: "0.0.0.0:0"{t}
servers:
  fix:
    command: /bin/cat
    spares: 0
{k}{a}""")
    return str(p)


@pytest.mark.parametrize("tls,keys", [(False, False), (False, True), (True, False)])
def test_protected_mode_config_refuses(pki, tmp_path, tls, keys):
    cp = run_switchyard("--config", public_cfg(tmp_path, pki, tls, keys))
    assert_exit_78_one_line(cp, "listen[0]", "allow_insecure")


def test_protected_mode_config_with_tls_and_keys_starts(switchyard, pki, tmp_path):
    d = switchyard("--config", public_cfg(tmp_path, pki, True, True), port_args=False)
    r = post(f"https://127.0.0.1:{d.port}/mcp", init_body(), proto=None, extra=tls_curl_args(pki.ca))
    assert_401(r)


def test_protected_mode_allow_insecure_config_starts(switchyard, pki, tmp_path):
    d = switchyard("--config", public_cfg(tmp_path, pki, False, False, allow=True), port_args=False)
    assert d.host == "0.0.0.0"


def test_secret_env_unset_exit_78(tmp_path):
    p = tmp_path / "envkey.yaml"
    p.write_text(f"""listen: ["127.0.0.1:0"]
servers:
  fix:
    command: /bin/cat
auth:
  keys:
    - label: ci
      secret_env: {ENV_UNSET}
""")
    line = assert_exit_78_one_line(run_switchyard("--config", str(p)), "auth.keys[0].secret_env", ENV_UNSET)
    assert "switchyard" in line


def test_hash_key():
    cp = run_switchyard("hash-key", input=b"s3cret\n")
    assert cp.returncode == 0, cp
    assert cp.stdout == (sha256_hex("s3cret") + "\n").encode(), cp.stdout
    # no trailing newline: same digest
    cp2 = run_switchyard("hash-key", input=b"s3cret")
    assert cp2.returncode == 0 and cp2.stdout == cp.stdout, cp2
    # the printed digest is what auth.keys[].sha256 accepts (covered by alice above)

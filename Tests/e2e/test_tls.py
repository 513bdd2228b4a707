"""TLS termination: protocol versions, ECDSA/RSA certificates, chains, ciphers, mTLS, SIGHUP reload.

One daemon for the module with seven TLS listeners (one per listener setting under test, in config order);
the reload test has its own daemon. Certificates come from tlskit (openssl CLI, temporary directory).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (
    FIXTURE_CMD, PROTO, SWITCHYARD_BIN, curl, finish_daemon, init_body, legacy_post, post, start_daemon,
    tool_result_text, wait_until, write_config, LEGACY_ENDPOINT_RE,
)
from tlskit import (
    OPENSSL, LEGACY_PROTO_ARGS, TlsRawSSE, client_context, curl_raw, listener_endpoints, peer_fingerprint, pki,
    s_client, tls_curl_args, wait_log,
)

_ = pki  # fixture

LISTENERS = ["ecdsa", "rsa", "tls13", "chain", "ciphers", "mtls", "leaf_only"]
CIPHER_ONLY = "ECDHE-ECDSA-AES128-GCM-SHA256"


@pytest.fixture(scope="module")
def tlsd(pki):
    py, fixture = FIXTURE_CMD
    p = pki
    cfg = write_config(f"""
listen:
  - address: "127.0.0.1:0"
    tls: {{cert: {json.dumps(p.ecdsa.cert)}, key: {json.dumps(p.ecdsa.key)}}}
  - address: "127.0.0.1:0"
    tls: {{cert: {json.dumps(p.rsa.cert)}, key: {json.dumps(p.rsa.key)}}}
  - address: "127.0.0.1:0"
    tls: {{cert: {json.dumps(p.ecdsa.cert)}, key: {json.dumps(p.ecdsa.key)}, min_version: "1.3"}}
  - address: "127.0.0.1:0"
    tls: {{cert: {json.dumps(p.chain.cert)}, key: {json.dumps(p.chain.key)}}}
  - address: "127.0.0.1:0"
    tls: {{cert: {json.dumps(p.ecdsa.cert)}, key: {json.dumps(p.ecdsa.key)}, ciphers: "{CIPHER_ONLY}"}}
  - address: "127.0.0.1:0"
    tls: {{cert: {json.dumps(p.ecdsa.cert)}, key: {json.dumps(p.ecdsa.key)}, client_ca: {json.dumps(p.client_ca.cert)}}}
  - address: "127.0.0.1:0"
    tls: {{cert: {json.dumps(p.chain_leaf_only.cert)}, key: {json.dumps(p.chain_leaf_only.key)}}}
servers:
  fix:
    command: {json.dumps(py)}
    args: [{json.dumps(fixture)}]
    spares: 0
""", ".yaml")
    try:
        d = start_daemon("--config", cfg, listeners=len(LISTENERS))
        try:
            eps = listener_endpoints(d)
            assert [e[0] for e in eps] == ["https"] * len(LISTENERS), f"every listener must log an https endpoint: {eps}"
            d.tls = {name: (port, base) for name, (_, port, base) in zip(LISTENERS, eps)}
            yield d
        finally:
            finish_daemon(d)
    finally:
        os.unlink(cfg)


@pytest.fixture
def d(tlsd):
    yield tlsd
    tlsd.assert_alive()


def port_of(d, name):
    return d.tls[name][0]


def base_of(d, name):
    return d.tls[name][1]


def mcp_roundtrip(url: str, extra: list[str]):
    """initialize + tools/call echo + DELETE over curl with the given TLS args."""
    sid, _ = _init(url, extra)
    c = post(url, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "over tls"}}},
             session=sid, extra=extra)
    assert c.status == 200, f"tools/call over TLS: {c!r}"
    msgs = c.messages()
    assert tool_result_text(msgs[-1]) == "over tls", msgs
    dl = curl("DELETE", url, headers={"Mcp-Session-Id": sid, "MCP-Protocol-Version": PROTO}, extra=extra)
    assert dl.status == 200, f"DELETE over TLS: {dl!r}"


def _init(url, extra):
    r = post(url, init_body(), proto=None, extra=extra)
    assert r.status == 200, f"initialize over TLS: {r!r}"
    sid = r.header("mcp-session-id")
    assert sid and re.fullmatch(r"[0-9a-f]{32}", sid), r
    n = post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session=sid, extra=extra)
    assert n.status == 202, n
    return sid, r


# ---------------------------------------------------------------------------------------------
# Protocol versions
# ---------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_client_can_offer_legacy_tls_control(pki):
    """Control: the s_client flags used for TLS 1.0/1.1 do negotiate them against a server that allows
    them (openssl s_server), so a refusal by the daemon is the daemon's doing, not the client's."""
    for ver, flag in (("1.0", "-tls1"), ("1.1", "-tls1_1")):
        port = free_port()
        srv = subprocess.Popen([OPENSSL, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", pki.rsa.cert,
                                "-key", pki.rsa.key, flag, "-cipher", "DEFAULT@SECLEVEL=0", "-naccept", "1", "-quiet"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            # wait for the listener without connecting (that would use up -naccept 1)
            wait_until(lambda: _listening(port), 10, what=f"s_server on {port}")
            h = s_client(port, *LEGACY_PROTO_ARGS[ver], ca=pki.ca)
            assert h.protocol == ("TLSv1" if ver == "1.0" else "TLSv1.1"), \
                f"control failed: s_client could not negotiate TLS {ver} with s_server: {h!r}"
        finally:
            srv.kill()
            srv.wait(5)


def _listening(port: int) -> bool:
    hexport = f"{port:04X}"
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            for ln in open(f).read().splitlines()[1:]:
                parts = ln.split()
                if parts[1].endswith(":" + hexport) and parts[3] == "0A":
                    return True
        except FileNotFoundError:
            pass
    return False


@pytest.mark.parametrize("ver", ["1.0", "1.1"])
def test_tls10_and_11_refused(d, pki, ver):
    h = s_client(port_of(d, "ecdsa"), *LEGACY_PROTO_ARGS[ver], ca=pki.ca)
    assert not h.ok and h.rc != 0, f"TLS {ver} must be refused: {h!r}"
    assert "no protocols available" not in h.err, f"the client refused by itself, test is void: {h!r}"
    assert "alert protocol version" in h.err, f"expected a protocol_version alert from the daemon: {h!r}"
    d.assert_alive()


@pytest.mark.parametrize("ver", ["1.2", "1.3"])
def test_tls12_and_13_accepted(d, pki, ver):
    h = s_client(port_of(d, "ecdsa"), *LEGACY_PROTO_ARGS[ver], ca=pki.ca)
    assert h.ok, f"TLS {ver} must be accepted and verify against the test CA: {h!r}"
    assert h.protocol == f"TLSv{ver}", h


def test_default_negotiates_tls13(d, pki):
    h = s_client(port_of(d, "ecdsa"), ca=pki.ca)
    assert h.ok and h.protocol == "TLSv1.3", h


def test_min_version_13_refuses_12(d, pki):
    h = s_client(port_of(d, "tls13"), "-tls1_2", ca=pki.ca)
    assert not h.ok, f'min_version "1.3" must refuse TLS 1.2: {h!r}'
    assert "alert protocol version" in h.err, h
    h = s_client(port_of(d, "tls13"), "-tls1_3", ca=pki.ca)
    assert h.ok and h.protocol == "TLSv1.3", h
    # and the ordinary listener next to it still takes 1.2 (per-listener contexts)
    assert s_client(port_of(d, "ecdsa"), "-tls1_2", ca=pki.ca).ok


# ---------------------------------------------------------------------------------------------
# Certificates
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,sigtype,cn", [("ecdsa", "ECDSA", "switchyard-ecdsa"), ("rsa", "RSA", "switchyard-rsa")])
@pytest.mark.parametrize("ver", ["1.2", "1.3"])
def test_ecdsa_and_rsa_certificates(d, pki, name, sigtype, cn, ver):
    h = s_client(port_of(d, name), *LEGACY_PROTO_ARGS[ver], ca=pki.ca)
    assert h.ok, h
    assert f"CN = {cn}" in h.err, h
    st = re.search(r"Signature type: (\S+)", h.err)
    assert st and st.group(1).startswith(sigtype), h  # RSA may be RSA or RSA-PSS


@pytest.mark.parametrize("name", ["ecdsa", "rsa"])
def test_mcp_over_https_with_each_certificate(d, pki, name):
    mcp_roundtrip(base_of(d, name) + "/mcp", tls_curl_args(pki.ca))


def test_peer_certificate_is_the_configured_one(d, pki):
    assert peer_fingerprint(port_of(d, "ecdsa"), pki.ca) == pki.ecdsa.fingerprint()
    assert peer_fingerprint(port_of(d, "rsa"), pki.ca) == pki.rsa.fingerprint()


def test_certificate_chain_verifies_against_root_only(d, pki):
    """cert file = leaf + intermediate; the client trusts only the root."""
    h = s_client(port_of(d, "chain"), ca=pki.ca)
    assert h.ok, f"leaf+intermediate must verify against the root alone: {h!r}"
    full = s_client(port_of(d, "chain"), "-showcerts", ca=pki.ca, brief=False)
    assert full.rc == 0, full
    assert re.search(r"^ 0 s:.*CN = switchyard-chain", full.out, re.M), full
    assert re.search(r"^ 1 s:.*CN = Switchyard e2e intermediate CA", full.out, re.M), \
        f"the intermediate must be sent: {full!r}"
    assert full.out.count("-----BEGIN CERTIFICATE-----") == 2, full
    # python's verifier (what the SDK uses) agrees
    assert peer_fingerprint(port_of(d, "chain"), pki.ca) == pki.chain_leaf_only.fingerprint()


def test_leaf_without_intermediate_does_not_verify_control(d, pki):
    """Control for the chain test: the same leaf served without its intermediate fails against the root."""
    h = s_client(port_of(d, "leaf_only"), ca=pki.ca)
    assert not h.ok, h
    assert "unable to get local issuer certificate" in (h.err + h.out), h


def test_ciphers_setting(d, pki):
    ok = s_client(port_of(d, "ciphers"), "-tls1_2", ca=pki.ca)
    assert ok.ok and ok.cipher == CIPHER_ONLY, ok
    bad = s_client(port_of(d, "ciphers"), "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384", ca=pki.ca)
    assert not bad.ok, f"a TLS 1.2 cipher outside `ciphers` must be refused: {bad!r}"
    # the default listener does negotiate that cipher (control)
    ctl = s_client(port_of(d, "ecdsa"), "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384", ca=pki.ca)
    assert ctl.ok, ctl


# ---------------------------------------------------------------------------------------------
# mTLS
# ---------------------------------------------------------------------------------------------

def test_mtls_without_client_cert_fails_tls12(d, pki):
    h = s_client(port_of(d, "mtls"), "-tls1_2", ca=pki.ca)
    assert not h.ok and h.rc != 0, f"mTLS listener must refuse a client without a certificate: {h!r}"
    assert "alert handshake failure" in h.err, h
    d.assert_alive()


def test_mtls_without_client_cert_fails_tls13(d, pki):
    """In TLS 1.3 the server checks the client's certificate after the client considers the handshake
    done (s_client may exit 0 before the alert arrives), so the probe is: no HTTP answer, and the
    `certificate required` alert instead."""
    ctx = client_context(pki.ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    port = port_of(d, "mtls")
    got = b""
    err = None
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
        except (ssl.SSLError, OSError) as e:
            err = e
    assert b"HTTP/" not in got, f"a client without a certificate got an HTTP answer: {got[:300]!r}"
    # the alert itself may be lost to a TCP reset when the request crosses it; the connection must fail
    assert err is not None or got == b"", f"expected the connection to fail, got {got[:200]!r}"
    assert err is None or isinstance(err, (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError)) \
        or "CERTIFICATE_REQUIRED" in str(err).upper(), f"unexpected failure: {err!r}"
    d.assert_alive()


def test_mtls_with_client_cert_handshakes(d, pki):
    for ver in ("1.2", "1.3"):
        h = s_client(port_of(d, "mtls"), *LEGACY_PROTO_ARGS[ver], "-cert", pki.client.cert, "-key", pki.client.key,
                     ca=pki.ca)
        assert h.ok, f"TLS {ver} with the client certificate: {h!r}"


def test_mtls_client_cert_from_other_ca_fails(d, pki):
    h = s_client(port_of(d, "mtls"), "-tls1_2", "-cert", pki.rogue.cert, "-key", pki.rogue.key, ca=pki.ca)
    assert not h.ok, f"a client certificate not issued by client_ca must be refused: {h!r}"


def test_mtls_curl(d, pki):
    url = base_of(d, "mtls") + "/mcp"
    cp = curl_raw("-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json",
                  "-H", "Accept: application/json, text/event-stream", "--data-binary", json.dumps(init_body()),
                  "--cacert", pki.ca, url)
    assert cp.returncode != 0 and cp.stdout.decode() in ("000", ""), \
        f"curl without a client certificate must not get an HTTP answer: rc={cp.returncode} out={cp.stdout!r} err={cp.stderr!r}"
    mcp_roundtrip(url, tls_curl_args(pki.ca, pki.client))


# ---------------------------------------------------------------------------------------------
# Certificate reload (SIGHUP) under live streams
# ---------------------------------------------------------------------------------------------

class ReloadRig:
    """A daemon whose TLS listener reads cert.pem/key.pem from a temp dir, with a legacy SSE session
    (answers arrive on the stream) and a Streamable HTTP GET stream, both open over TLS."""

    def __init__(self, switchyard, pki, tmp_path):
        self.pki = pki
        self.cert, self.key = tmp_path / "cert.pem", tmp_path / "key.pem"
        shutil.copy(pki.ecdsa.cert, self.cert)
        shutil.copy(pki.ecdsa.key, self.key)
        py, fixture = FIXTURE_CMD
        cfg = tmp_path / "switchyard.yaml"
        cfg.write_text(f"""
listen:
  - address: "127.0.0.1:0"
    tls: {{cert: cert.pem, key: key.pem}}
servers:
  fix:
    command: {json.dumps(py)}
    args: [{json.dumps(fixture)}]
    spares: 0
limits:
  sse_keepalive: 1s
""")
        self.d = switchyard("--config", str(cfg), port_args=False)
        self.port = self.d.port
        self.base = f"https://127.0.0.1:{self.port}"
        self.extra = tls_curl_args(pki.ca)
        self.legacy = self.get = None
        self.ids = iter(range(1, 1000))

    def open_streams(self):
        ctx = client_context(self.pki.ca)
        self.legacy = TlsRawSSE("127.0.0.1", self.port, "/sse", ctx, {"Accept": "text/event-stream"})
        assert self.legacy.read_head() == 200, self.legacy.headers
        ev = self.legacy.next_event()
        assert ev["event"] == "endpoint" and LEGACY_ENDPOINT_RE.match(ev["data"]), ev
        self.murl = self.base + ev["data"]
        res = self.legacy_call("initialize", {"protocolVersion": "2024-11-05", "capabilities": {},
                                              "clientInfo": {"name": "reload", "version": "0"}})
        assert "result" in res, res
        assert legacy_post(self.murl, {"jsonrpc": "2.0", "method": "notifications/initialized"},
                           extra=self.extra).status == 202
        sid, _ = _init(self.base + "/mcp", self.extra)
        self.get = TlsRawSSE("127.0.0.1", self.port, "/mcp", ctx, {"Accept": "text/event-stream", "Mcp-Session-Id": sid,
                                                                  "MCP-Protocol-Version": PROTO})
        assert self.get.read_head() == 200, self.get.headers
        self.get.wait_comment(lambda c: c == "keepalive", 5)

    def legacy_call(self, method, params):
        id_ = next(self.ids)
        r = legacy_post(self.murl, {"jsonrpc": "2.0", "id": id_, "method": method, "params": params}, extra=self.extra)
        assert r.status == 202, r
        return self.legacy.response(id_, 15)

    def assert_streams_alive(self, text: str):
        """Both old streams still deliver keep-alives, and the legacy one an answer."""
        n_leg, n_get = len(self.legacy.comments), len(self.get.comments)
        self.legacy.wait_comment(lambda c: c == "keepalive", 5, start=n_leg)
        self.get.wait_comment(lambda c: c == "keepalive", 5, start=n_get)
        res = self.legacy_call("tools/call", {"name": "echo", "arguments": {"text": text}})
        assert tool_result_text(res) == text
        assert not self.get.ended and not self.legacy.ended

    def replace(self, pair):
        for src, dst in ((pair.cert, self.cert), (pair.key, self.key)):
            shutil.copy(src, str(dst) + ".tmp")
            os.replace(str(dst) + ".tmp", dst)

    def sighup(self, expect: str) -> str:
        mark = len(self.d.log_lines())
        self.d.proc.send_signal(signal.SIGHUP)
        line = wait_log(self.d, f"msg={expect}", start=mark)
        self.d.assert_alive()
        return line

    def close(self):
        for s in (self.legacy, self.get):
            if s is not None:
                s.close()


@pytest.fixture
def rig(switchyard, pki, tmp_path):
    r = ReloadRig(switchyard, pki, tmp_path)
    yield r
    r.close()


def test_sighup_reload_keeps_streams_and_serves_new_cert(rig, pki):
    old_fp, new_fp = pki.ecdsa.fingerprint(), pki.alt.fingerprint()
    assert old_fp != new_fp
    assert peer_fingerprint(rig.port, pki.ca) == old_fp
    rig.open_streams()
    assert rig.legacy.peer_fingerprint() == old_fp

    rig.replace(pki.alt)
    line = rig.sighup("tls_reloaded")
    assert str(rig.cert) in line, line

    # new connections get the new certificate ...
    assert peer_fingerprint(rig.port, pki.ca) == new_fp, "a new connection after SIGHUP must see the new certificate"
    h = s_client(rig.port, ca=pki.ca)
    assert h.ok and "CN = switchyard-reloaded" in h.err, h
    mcp_roundtrip(rig.base + "/mcp", rig.extra)
    # ... while the old streams keep their TLS state and keep working
    assert rig.legacy.peer_fingerprint() == old_fp
    rig.assert_streams_alive("after reload")

    # a second reload back to the first certificate works too
    rig.replace(pki.ecdsa)
    rig.sighup("tls_reloaded")
    assert peer_fingerprint(rig.port, pki.ca) == old_fp
    rig.assert_streams_alive("after second reload")


@pytest.mark.parametrize("breakage", ["garbage_key", "mismatched_key", "missing_cert"])
def test_sighup_failed_reload_keeps_previous_cert(rig, pki, breakage):
    new_fp = pki.alt.fingerprint()
    rig.open_streams()
    rig.replace(pki.alt)
    rig.sighup("tls_reloaded")
    assert peer_fingerprint(rig.port, pki.ca) == new_fp

    if breakage == "garbage_key":
        rig.key.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    elif breakage == "mismatched_key":
        shutil.copy(pki.rsa.key, rig.key)
    else:
        rig.cert.unlink()
    mark = len(rig.d.log_lines())
    line = rig.sighup("tls_reload_failed")
    assert "tls_reloaded" not in "\n".join(rig.d.log_lines()[mark:]), rig.d.log_tail(5)
    assert "previous" in line or "keeping" in line, line
    assert peer_fingerprint(rig.port, pki.ca) == new_fp, "after a failed reload new connections keep the previous cert"
    mcp_roundtrip(rig.base + "/mcp", rig.extra)
    rig.assert_streams_alive("after failed reload")


def test_bad_certificate_at_startup_exits_78(pki, tmp_path):
    """A certificate that cannot be loaded is a configuration error: exit 78 and one line naming the file."""
    missing = tmp_path / "nonexistent.pem"
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"""
listen:
  - address: "127.0.0.1:0"
    tls: {{cert: {json.dumps(str(missing))}, key: {json.dumps(pki.ecdsa.key)}}}
servers:
  fix:
    command: /bin/cat
""")
    cp = subprocess.run([SWITCHYARD_BIN, "--config", str(cfg)], capture_output=True, timeout=20,
                        stdin=subprocess.DEVNULL)
    err = cp.stderr.decode(errors="replace")
    assert cp.returncode == 78, f"expected exit 78, got {cp.returncode}; stderr:\n{err[:600]}"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(missing) in lines[0], err
    assert cp.stdout == b""

"""TLS and shared-secret-key helpers for the end-to-end tests (test_tls.py, test_auth.py).

Certificates are made at test time with the `openssl` CLI in a temporary directory (never committed):

  root        self-signed test CA (EC P-256) that clients trust (`--cacert`, `-CAfile`)
  inter       intermediate CA signed by root
  ecdsa       server leaf, EC P-256, signed by root     SAN IP:127.0.0.1, DNS:localhost
  rsa         server leaf, RSA-2048, signed by root     same SAN
  chain       server leaf signed by inter; chain.pem = leaf + intermediate
  alt         second EC leaf signed by root, other subject and serial (the certificate-reload test)
  client_ca   a separate CA for mTLS; client = clientAuth leaf signed by it; rogue = clientAuth leaf
              signed by root (not by client_ca)
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

import conftest
from conftest import RawSSE, curl, legacy_post, post

OPENSSL = shutil.which("openssl") or "openssl"

SERVER_EXT = """basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid:always
"""
CLIENT_EXT = """basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid:always
"""
CA_EXT = """basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid:always
"""


def _run(*args: str, cwd: Path, input: bytes | None = None) -> bytes:
    cp = subprocess.run([OPENSSL, *args], cwd=str(cwd), input=input, capture_output=True, timeout=60)
    if cp.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed ({cp.returncode}): {cp.stderr.decode(errors='replace')}")
    return cp.stdout


@dataclass
class Pair:
    cert: str
    key: str

    def der(self) -> bytes:
        return ssl.PEM_cert_to_DER_cert(Path(self.cert).read_text().split("-----END CERTIFICATE-----")[0]
                                        + "-----END CERTIFICATE-----\n")

    def fingerprint(self) -> str:
        """SHA-256 of the leaf (first certificate in the file), hex."""
        return hashlib.sha256(self.der()).hexdigest()


class PKI:
    def __init__(self, root: Path):
        self.dir = root
        self._serial = secrets.randbits(62) | 1

    def _serial_next(self) -> str:
        self._serial += 1
        return str(self._serial)

    def key(self, name: str, kind: str = "ec") -> str:
        path = self.dir / f"{name}.key"
        if kind == "ec":
            _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path), cwd=self.dir)
        else:
            _run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path), cwd=self.dir)
        return str(path)

    def self_signed_ca(self, name: str, cn: str) -> Pair:
        key = self.key(name)
        cert = self.dir / f"{name}.pem"
        _run("req", "-x509", "-new", "-key", key, "-subj", f"/O=Switchyard e2e/CN={cn}", "-days", "3",
             "-set_serial", self._serial_next(),
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash", "-out", str(cert), cwd=self.dir)
        return Pair(str(cert), key)

    def issue(self, name: str, cn: str, ca: Pair, ext: str, kind: str = "ec") -> Pair:
        key = self.key(name, kind)
        csr = self.dir / f"{name}.csr"
        extf = self.dir / f"{name}.ext"
        extf.write_text(ext)
        cert = self.dir / f"{name}.pem"
        _run("req", "-new", "-key", key, "-subj", f"/O=Switchyard e2e/CN={cn}", "-out", str(csr), cwd=self.dir)
        _run("x509", "-req", "-in", str(csr), "-CA", ca.cert, "-CAkey", ca.key, "-set_serial", self._serial_next(),
             "-days", "2", "-extfile", str(extf), "-out", str(cert), cwd=self.dir)
        return Pair(str(cert), key)


class E2EPki:
    """Everything the TLS tests need, made once per test session."""

    def __init__(self, d: Path):
        p = PKI(d)
        self.dir = d
        self.root = p.self_signed_ca("root", "Switchyard e2e root CA")
        self.inter = p.issue("inter", "Switchyard e2e intermediate CA", self.root, CA_EXT)
        self.ecdsa = p.issue("ecdsa", "switchyard-ecdsa", self.root, SERVER_EXT, "ec")
        self.rsa = p.issue("rsa", "switchyard-rsa", self.root, SERVER_EXT, "rsa")
        leaf = p.issue("chainleaf", "switchyard-chain", self.inter, SERVER_EXT, "ec")
        chain = d / "chain.pem"
        chain.write_text(Path(leaf.cert).read_text() + Path(self.inter.cert).read_text())
        self.chain = Pair(str(chain), leaf.key)
        self.chain_leaf_only = leaf
        self.alt = p.issue("alt", "switchyard-reloaded", self.root, SERVER_EXT, "ec")
        self.client_ca = p.self_signed_ca("clientca", "Switchyard e2e client CA")
        self.client = p.issue("client", "e2e-client", self.client_ca, CLIENT_EXT, "ec")
        self.rogue = p.issue("rogue", "e2e-rogue-client", self.root, CLIENT_EXT, "ec")

    @property
    def ca(self) -> str:
        return self.root.cert


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> E2EPki:
    return E2EPki(tmp_path_factory.mktemp("pki"))


# ---------------------------------------------------------------------------------------------
# Daemon helpers
# ---------------------------------------------------------------------------------------------

ENDPOINT_RE = re.compile(r'(?:^|\s)endpoint="?(https?)://([^\s"/]+)/mcp"?')


def listener_endpoints(d) -> list[tuple[str, int, str]]:
    """(scheme, port, base URL) of each `msg=listening` line, in log order."""
    out = []
    for line in d.log_lines():
        if not conftest.MSG_LISTENING_RE.search(line):
            continue
        m = ENDPOINT_RE.search(line)
        assert m, f"listening line without endpoint=http(s)://…/mcp: {line!r}"
        hostport = m.group(2)
        port = int(hostport.rsplit(":", 1)[1])
        base_host = "127.0.0.1" if hostport.startswith(("0.0.0.0", "[::]")) else hostport.rsplit(":", 1)[0]
        out.append((m.group(1), port, f"{m.group(1)}://{base_host}:{port}"))
    return out


def tls_curl_args(ca: str, cert: Pair | None = None) -> list[str]:
    a = ["--cacert", ca]
    if cert is not None:
        a += ["--cert", cert.cert, "--key", cert.key]
    return a


def curl_raw(*args: str, timeout: float = 15) -> subprocess.CompletedProcess:
    """curl with arbitrary args (for exchanges that must fail at the TLS layer)."""
    return subprocess.run(["curl", "-s", "-S", "--http1.1", "--max-time", str(timeout), *args],
                          capture_output=True, timeout=timeout + 10)


# ---------------------------------------------------------------------------------------------
# openssl s_client / python ssl probes
# ---------------------------------------------------------------------------------------------

@dataclass
class Handshake:
    rc: int
    out: str
    err: str
    cmd: list

    @property
    def ok(self) -> bool:
        return self.rc == 0 and "Verification: OK" in self.err and "CONNECTION ESTABLISHED" in self.err

    @property
    def protocol(self) -> str | None:
        m = re.search(r"Protocol version: (\S+)", self.err)
        return m.group(1) if m else None

    @property
    def cipher(self) -> str | None:
        m = re.search(r"Ciphersuite: (\S+)", self.err)
        return m.group(1) if m else None

    def __repr__(self):
        return f"<s_client rc={self.rc} cmd={' '.join(self.cmd)}\nstderr={self.err[-1500:]}\nstdout={self.out[-800:]}>"


def s_client(port: int, *args: str, ca: str, brief: bool = True, host: str = "127.0.0.1",
             timeout: float = 15) -> Handshake:
    """One handshake with `openssl s_client` (stdin at EOF, so it closes right after)."""
    cmd = [OPENSSL, "s_client", "-connect", f"{host}:{port}", "-CAfile", ca, "-verify_return_error",
           "-verify_ip", "127.0.0.1"]
    if brief:
        cmd.append("-brief")
    cmd += list(args)
    cp = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return Handshake(cp.returncode, cp.stdout.decode(errors="replace"), cp.stderr.decode(errors="replace"), cmd)


LEGACY_PROTO_ARGS = {"1.0": ["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"],
                     "1.1": ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
                     "1.2": ["-tls1_2"],
                     "1.3": ["-tls1_3"]}


def client_context(ca: str, cert: Pair | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca)
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    return ctx


def peer_fingerprint(port: int, ca: str, host: str = "127.0.0.1") -> str:
    """SHA-256 of the leaf certificate a NEW connection gets (verified against `ca`)."""
    ctx = client_context(ca)
    with socket.create_connection((host, port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


class TlsRawSSE(RawSSE):
    """conftest.RawSSE over a verified TLS connection (same parsing, same API)."""

    def __init__(self, host: str, port: int, path: str, ctx: ssl.SSLContext, headers: dict | None = None,
                 method: str = "GET", connect_timeout: float = 10.0):
        real = socket.create_connection

        def tls_connect(addr, timeout=None, *a, **kw):
            raw = real(addr, timeout, *a, **kw)
            return ctx.wrap_socket(raw, server_hostname=host)

        shim = type("SocketShim", (), {"create_connection": staticmethod(tls_connect), "timeout": socket.timeout})
        with mock.patch.object(conftest, "socket", shim):
            super().__init__(host, port, path, headers=headers, method=method, connect_timeout=connect_timeout)

    def peer_fingerprint(self) -> str:
        return hashlib.sha256(self.sock.getpeercert(binary_form=True)).hexdigest()


def sha256_hex(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def wait_log(d, needle: str | re.Pattern, timeout: float = 10.0, start: int = 0) -> str:
    """First log line (from line index `start`) matching; fails after `timeout`."""
    def find():
        if not d.alive():
            raise AssertionError(f"switchyard exited ({d.proc.returncode}) while waiting for log line {needle!r}; "
                                 f"stderr tail:\n{d.log_tail(12)}")
        for ln in d.log_lines()[start:]:
            if (needle.search(ln) if isinstance(needle, re.Pattern) else needle in ln):
                return ln
        return None
    return conftest.wait_until(find, timeout, what=f"log line {needle!r}; tail:\n{d.log_tail(20)}")


__all__ = ["E2EPki", "Pair", "pki", "listener_endpoints", "tls_curl_args", "curl_raw", "s_client", "Handshake",
           "LEGACY_PROTO_ARGS", "client_context", "peer_fingerprint", "TlsRawSSE", "sha256_hex", "wait_log",
           "curl", "post", "legacy_post"]

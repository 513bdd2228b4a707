"""Raw-socket HTTP/1.1 exchanges for the bad-input catalogue (test_bad_input_catalogue.py).

Every read has a deadline: a daemon that neither answers nor closes shows up as `timed_out`, never as a
hung test. Responses are parsed as they arrive (Content-Length, chunked, or until EOF), so pipelined extra
answers (request smuggling) are visible in `responses`.
"""

from __future__ import annotations

import json
import re
import socket
import time
from dataclasses import dataclass, field


@dataclass
class RawResponse:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return vals[-1] if vals else None

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").lower()

    @property
    def wants_close(self) -> bool:
        return "close" in (self.header("connection") or "").lower() or self.version == "HTTP/1.0"

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.version} {self.status} {self.reason!r} headers={self.headers} body={self.body[:400]!r}>"


@dataclass
class RawExchange:
    sent: bytes
    raw: bytes = b""
    responses: list[RawResponse] = field(default_factory=list)
    closed: bool = False        # the server closed (EOF or reset) within the deadline
    timed_out: bool = False     # the deadline passed while the server neither answered nor closed
    elapsed: float = 0.0
    leftover: bytes = b""       # bytes after the last complete response

    @property
    def first(self) -> RawResponse:
        assert self.responses, (f"no HTTP response within the deadline (closed={self.closed}, "
                                f"timed_out={self.timed_out}); sent {self.sent[:300]!r}; got {self.raw[:300]!r}")
        return self.responses[0]

    def __repr__(self):
        return (f"<RawExchange responses={self.responses} closed={self.closed} timed_out={self.timed_out} "
                f"elapsed={self.elapsed:.2f}s leftover={self.leftover[:200]!r}>")


def _parse_one(buf: bytes, eof: bool):
    """(response, rest) when one full response is in buf; None when more bytes are needed."""
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        return None
    head = buf[:i].decode("iso-8859-1").split("\r\n")
    m = re.match(r"(HTTP/\d\.\d)\s+(\d{3})\s*(.*)", head[0])
    if not m:
        raise AssertionError(f"bad status line {head[0]!r} in {buf[:300]!r}")
    headers = []
    for ln in head[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            headers.append((k.strip(), v.strip()))
    rest = buf[i + 4:]
    resp = RawResponse(m.group(1), int(m.group(2)), m.group(3).strip(), headers, b"")
    te = (resp.header("transfer-encoding") or "").lower()
    cl = resp.header("content-length")
    if "chunked" in te:
        body = b""
        while True:
            j = rest.find(b"\r\n")
            if j < 0:
                return None
            size = int(rest[:j].split(b";")[0].strip() or b"0", 16)
            if size == 0:
                k = rest.find(b"\r\n", j + 2)  # no trailers from this server: the next CRLF ends it
                if k < 0:
                    return None
                resp.body = body
                return resp, rest[k + 2:]
            if len(rest) < j + 2 + size + 2:
                return None
            body += rest[j + 2:j + 2 + size]
            rest = rest[j + 2 + size + 2:]
    if cl is not None:
        n = int(cl)
        if len(rest) < n:
            return None
        resp.body = rest[:n]
        return resp, rest[n:]
    if resp.status in (204, 304) or 100 <= resp.status < 200:
        return resp, rest
    # no framing: the body runs to EOF
    if not eof:
        return None
    resp.body = rest
    return resp, b""


def exchange(host: str, port: int, data: bytes | list[bytes], timeout: float = 5.0, linger: float = 0.3,
             half_close: bool = False, pause: float = 0.05) -> RawExchange:
    """Send `data` (or its pieces, `pause` apart) on one connection and collect what comes back.

    Stops at EOF, at `timeout`, or `linger` seconds after the first complete response when that response
    does not announce a close (to catch a second, pipelined answer). When the first response announces
    `Connection: close`, keeps reading (up to `timeout`) to see that the close really happens.
    """
    pieces = data if isinstance(data, list) else [data]
    ex = RawExchange(sent=b"".join(pieces))
    t0 = time.monotonic()
    deadline = t0 + timeout
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        for n, p in enumerate(pieces):
            try:
                sock.sendall(p)
            except OSError:  # the server may answer and close before it has read everything
                break
            if n + 1 < len(pieces):
                time.sleep(pause)
        if half_close:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        buf = b""
        stop_at = deadline
        while True:
            now = time.monotonic()
            if now >= stop_at:
                if stop_at == deadline and not ex.closed:
                    ex.timed_out = not ex.responses or ex.responses[0].wants_close
                break
            sock.settimeout(max(0.01, stop_at - now))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                ex.closed = True
            ex.raw += chunk
            buf += chunk
            while True:
                parsed = _parse_one(buf, ex.closed)
                if parsed is None:
                    break
                resp, buf = parsed
                ex.responses.append(resp)
                if len(ex.responses) == 1 and not resp.wants_close:
                    stop_at = min(deadline, time.monotonic() + linger)
            if ex.closed:
                break
        ex.leftover = buf
    finally:
        ex.elapsed = time.monotonic() - t0
        sock.close()
    return ex


def request(method: str, target: str, headers: list[tuple[str, str]] | None = None, body: bytes = b"",
            version: str = "HTTP/1.1", content_length: bool = True) -> bytes:
    """Bytes of one request. Header values may be str (latin-1) or bytes (sent as they are)."""
    out = f"{method} {target} {version}\r\n".encode("latin-1")
    hs = list(headers or [])
    if content_length and body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in hs):
        hs.append(("Content-Length", str(len(body))))
    for k, v in hs:
        out += k.encode("latin-1") + b": " + (v if isinstance(v, bytes) else v.encode("latin-1")) + b"\r\n"
    return out + b"\r\n" + body

#!/usr/bin/env python3
"""tls_idle.py: gateway memory per idle legacy SSE session over TLS (Tests/Bench/run.sh, step 6b).

    tls_idle.py -p PORT -g GATEWAY_PID [-n 1000] [-b 100] [-W 10] [-T 30] [-E /messages?sessionId=]

Opens TLS connections to 127.0.0.1:PORT (certificate verification off), each sends `GET /sse` and reads the
answer up to its `event: endpoint` event (HTTP 200, data = PREFIX + 32 lowercase hex), then leaves it idle
(asyncio keeps reading, so a stream the gateway closes is noticed). At most -b connections are in the
connect/handshake/endpoint phase at a time. Like `sse_load idle`, -W sessions are opened and closed first so
one-time costs (the first TLS handshake, lazy initialisation) are not charged per session.

Output (stdout), one line per step, the format of `sse_load idle`:
    BENCH_IDLE step=pre|warmup|base|open<N>|closed1 open=N rss_kb=K fds=F ms=T errors=E
then `BENCH_IDLE_DONE errors=E server_closed=C` and, for the first failure, `BENCH_SSE_SAMPLE <what>`.
VmRSS from /proc/PID/status and the fd count from /proc/PID/fd, 0.3 s after each step; after closing, once
the fd count is back to the baseline (at most 10 s). Exit status: 0 ran (check errors=), 1 fatal, 2 usage.
"""
import argparse
import asyncio
import os
import re
import ssl
import sys
import time

errors = 0
server_closed = 0
sample = ""


def note(msg):
    global sample
    if not sample:
        sample = msg.replace("\r", " ").replace("\n", " ")


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def report(pid, step, n, ms):
    print(f"BENCH_IDLE step={step} open={n} rss_kb={rss_kb(pid)} fds={fd_count(pid)} ms={ms:.0f} errors={errors}", flush=True)


async def open_one(port, ctx, pattern, deadline):
    """one idle TLS SSE stream, read up to its endpoint event; returns (reader, writer) or None"""
    global errors
    held = []  # the writer, so it can be closed after a timeout

    async def attempt():
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        held.append(writer)
        writer.write(f"GET /sse HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
                     "Cache-Control: no-cache\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        if not re.match(r"HTTP/1\.[01] 200", status):
            raise ValueError(f"GET /sse over TLS: expected 200 text/event-stream, got '{status}'")
        buf = b""
        while not (m := re.search(rb"event: endpoint\r?\ndata: ([^\r\n]*)\r?\n", buf)):
            chunk = await reader.read(4096)
            if not chunk:
                raise ValueError("GET /sse over TLS: connection closed before the endpoint event")
            buf += chunk
            if len(buf) > 65536:
                raise ValueError("GET /sse over TLS: no endpoint event in the first 64 KB")
        data = m.group(1).decode("latin-1", "replace")
        if not pattern.fullmatch(data):
            raise ValueError(f"GET /sse over TLS: expected endpoint data '{pattern.pattern}', got '{data[:200]}'")
        return reader, writer

    try:
        left = deadline - time.monotonic()
        if left <= 0:
            raise asyncio.TimeoutError("deadline passed")
        return await asyncio.wait_for(attempt(), left)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError, ValueError) as e:
        errors += 1
        note(str(e) if isinstance(e, ValueError) else f"GET /sse over TLS: {type(e).__name__}: {e} (before the endpoint event)")
        for w in held:
            w.close()
        return None


async def open_many(n, batch, port, ctx, pattern, deadline):
    sem = asyncio.Semaphore(batch)

    async def one():
        async with sem:
            return await open_one(port, ctx, pattern, deadline)

    res = await asyncio.gather(*(one() for _ in range(n)))
    return [r for r in res if r is not None]


async def close_all(conns):
    global server_closed
    for reader, writer in conns:
        if reader.at_eof():
            server_closed += 1
            note("idle TLS stream: closed by the gateway before we closed it")
        writer.close()
    for _, writer in conns:
        try:
            await asyncio.wait_for(writer.wait_closed(), 2)
        except (OSError, asyncio.TimeoutError, ssl.SSLError):
            pass


async def wait_fds(pid, base, limit_s=10.0):
    t = time.monotonic() + limit_s
    while fd_count(pid) > base and time.monotonic() < t:
        await asyncio.sleep(0.05)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-p", type=int, required=True)
    ap.add_argument("-g", type=int, required=True)
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("-b", type=int, default=100)
    ap.add_argument("-W", type=int, default=10)
    ap.add_argument("-T", type=float, default=30)
    ap.add_argument("-E", default="/messages?sessionId=")
    a = ap.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    pattern = re.compile(re.escape(a.E) + "[0-9a-f]{32}")
    deadline = time.monotonic() + a.T

    report(a.g, "pre", 0, 0)
    if a.W:
        t0 = time.monotonic()
        w = await open_many(a.W, a.b, a.p, ctx, pattern, deadline)
        base_fds_guess = fd_count(a.g) - len(w)
        await close_all(w)
        await wait_fds(a.g, base_fds_guess)
        await asyncio.sleep(0.3)
        report(a.g, "warmup", 0, (time.monotonic() - t0) * 1000)
    await asyncio.sleep(0.3)
    base_fds = fd_count(a.g)
    report(a.g, "base", 0, 0)
    t0 = time.monotonic()
    conns = await open_many(a.n, a.b, a.p, ctx, pattern, deadline)
    ms = (time.monotonic() - t0) * 1000
    await asyncio.sleep(0.3)
    report(a.g, f"open{a.n}", len(conns), ms)
    t0 = time.monotonic()
    await close_all(conns)
    await wait_fds(a.g, base_fds)
    await asyncio.sleep(0.3)
    report(a.g, "closed1", 0, (time.monotonic() - t0) * 1000)
    if sample:
        print(f"BENCH_SSE_SAMPLE {sample}")
    print(f"BENCH_IDLE_DONE errors={errors} server_closed={server_closed}", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)

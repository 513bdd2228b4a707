"""Allocation regression check: allocations per tools/call through the gateway, counted by an
LD_PRELOAD malloc counter, as the difference between a long and a short run (start-up cost cancels).

Sequential requests on one keep-alive connection keep the count deterministic (no batching effects).
Usage: alloc_check.py BIN COUNTER_SO [--max N]   (exit 1 when allocations per request exceed N)
"""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time


def run(binary: str, counter: str, requests: int) -> int:
    tmp = tempfile.mkdtemp()
    count_file = os.path.join(tmp, "count")
    log = open(os.path.join(tmp, "log"), "w+")
    env = dict(os.environ, LD_PRELOAD=counter, ALLOC_COUNT_FILE=count_file)
    port = None
    deadline = time.time() + 10
    # A long sse_start_delay keeps every answer on the same path (headers sent with the event), so the
    # count does not depend on how fast the child happens to answer on a loaded machine.
    cfg = os.path.join(tmp, "switchyard.yaml")
    with open(cfg, "w") as f:
        f.write("listen: [{address: \"127.0.0.1:0\"}]\n"
                f"servers: {{demo: {{command: {json.dumps(binary)}, args: [demo-server], pool: {{min_idle: 0}}}}}}\n"
                "limits: {sse_start_delay: " + os.environ.get("SSE_DELAY", "10s") + "}\n")
    p = subprocess.Popen([binary, "--config", cfg], env=env, stderr=log)
    while time.time() < deadline and port is None:
        log.seek(0)
        m = re.search(r"msg=listening address=127\.0\.0\.1:(\d+)", log.read())
        if m:
            port = int(m.group(1))
        else:
            time.sleep(0.05)
    assert port, "gateway did not start"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    hdr = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "alloc", "version": "0"}}}
    conn.request("POST", "/mcp", json.dumps(init), hdr)
    r = conn.getresponse()
    sid = r.getheader("Mcp-Session-Id")
    r.read()
    hdr["Mcp-Session-Id"] = sid
    body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hello"}}})
    for _ in range(requests):
        conn.request("POST", "/mcp", body, hdr)
        r = conn.getresponse()
        data = r.read()
        assert r.status == 200 and b'"hello"' in data, data
    conn.close()
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=15)
    with open(count_file) as f:
        return int(f.read())


def main():
    binary, counter = sys.argv[1], sys.argv[2]
    limit = float(sys.argv[sys.argv.index("--max") + 1]) if "--max" in sys.argv else None
    short, long = run(binary, counter, 200), run(binary, counter, 1200)
    per = (long - short) / 1000
    print(f"allocations per tools/call: {per:.1f} (short run {short}, long run {long})")
    if limit is not None and per > limit:
        print(f"FAIL: more than {limit} allocations per request")
        sys.exit(1)


if __name__ == "__main__":
    main()

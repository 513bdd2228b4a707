"""MCP SDK 2.x client driver for the Switchyard e2e suite. Run with the mcp2 venv's python:

    $MCP2_PYTHON Tests/e2e/client_mcp2.py URL [TEXT]

Connects in the SDK's default "auto" mode (it first probes `server/discover` with
MCP-Protocol-Version 2026-07-28 and falls back to `initialize` when the server refuses),
lists tools, calls `echo(TEXT)`, and prints one JSON line:
    {"negotiated": "initialize"|"discover", "protocol_version": ..., "server_name": ...,
     "tools": [...], "echo": ..., "elapsed": seconds}
Exits non-zero (with a traceback on stderr) on any failure.
"""

from __future__ import annotations

import json
import sys
import time

import anyio
from mcp.client import Client


async def main(url: str, text: str) -> dict:
    t0 = time.monotonic()
    with anyio.fail_after(60):
        async with Client(url, read_timeout_seconds=30) as client:
            session = client.session
            negotiated = "initialize" if session.initialize_result is not None else (
                "discover" if session.discover_result is not None else "unknown")
            tools = await client.list_tools()
            result = await client.call_tool("echo", {"text": text})
            if result.is_error:
                raise SystemExit(f"echo returned an error: {result.content!r}")
            echoed = "".join(getattr(c, "text", "") for c in result.content)
            info = client.server_info
            return {
                "negotiated": negotiated,
                "protocol_version": client.protocol_version,
                "server_name": info.name if info else None,
                "tools": sorted(t.name for t in tools.tools),
                "echo": echoed,
                "elapsed": round(time.monotonic() - t0, 3),
            }


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit("usage: client_mcp2.py URL [TEXT]")
    out = anyio.run(main, sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "hello from mcp 2.x")
    print(json.dumps(out), flush=True)

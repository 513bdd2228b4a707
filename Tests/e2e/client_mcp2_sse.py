"""MCP SDK 2.x legacy HTTP+SSE client driver for the Switchyard e2e suite. Run with the mcp2 venv's python:

    $MCP2_PYTHON Tests/e2e/client_mcp2_sse.py SSE_URL TEXT [MODE]

MODE is the `Client` connect mode: "legacy" (plain `initialize`, the default here) or "auto" (first a
`server/discover` probe, which a legacy endpoint answers with a JSON-RPC error on the stream, then
`initialize`). The transport is `mcp.client.sse.sse_client`. Lists tools, calls `echo(TEXT)`, and
prints one JSON line:
    {"negotiated": ..., "protocol_version": ..., "server_name": ..., "session_id": ...,
     "tools": [...], "echo": ..., "elapsed": seconds}
Exits non-zero (with a traceback on stderr) on any failure.
"""

from __future__ import annotations

import json
import sys
import time

import anyio
from mcp.client import Client
from mcp.client.sse import sse_client


async def main(url: str, text: str, mode: str) -> dict:
    t0 = time.monotonic()
    created: list[str] = []
    with anyio.fail_after(60):
        transport = sse_client(url, timeout=10, sse_read_timeout=60, on_session_created=created.append)
        async with Client(transport, mode=mode, read_timeout_seconds=30) as client:
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
                "session_id": created[0] if created else None,
                "tools": sorted(t.name for t in tools.tools),
                "echo": echoed,
                "elapsed": round(time.monotonic() - t0, 3),
            }


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit("usage: client_mcp2_sse.py SSE_URL TEXT [legacy|auto]")
    out = anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "legacy")
    print(json.dumps(out), flush=True)

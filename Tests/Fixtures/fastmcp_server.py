"""stdio MCP server used as a child by the Switchyard end-to-end tests.

Built on the official Python SDK 1.x FastMCP. Run it with the mcp1 venv's python:
    .venv/mcp1/bin/python Tests/Fixtures/fastmcp_server.py

Tools:
  echo(text)                 -> text
  sleep(seconds, steps)      -> "slept", after `steps` progress notifications spread over `seconds`
  crash()                    -> the process exits at once with status 3 (no answer)
  garbage()                  -> writes a non-JSON line straight to fd 1, then returns "ok"
  flood_stderr(megabytes)    -> writes that many MiB to stderr, returns "flooded"
  whoami()                   -> this process's pid (as text)
  counter()                  -> increments a process-wide counter and returns it
"""

from __future__ import annotations

import asyncio
import logging
import os

from mcp.server.fastmcp import Context, FastMCP

# Keep the child's own logging quiet: stderr is reserved for flood_stderr and real errors.
mcp = FastMCP("switchyard-e2e-fixture", log_level="WARNING")

_counter = 0


@mcp.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@mcp.tool()
async def sleep(seconds: float, steps: int, ctx: Context) -> str:
    """Report `steps` progress notifications spread over `seconds`, then return "slept"."""
    steps = max(0, int(steps))
    interval = seconds / steps if steps else seconds
    if steps == 0 and seconds > 0:
        await asyncio.sleep(seconds)
    for i in range(1, steps + 1):
        await asyncio.sleep(interval)
        await ctx.report_progress(progress=i, total=steps, message=f"step {i}")
    return "slept"


@mcp.tool()
def crash() -> str:
    """Exit the process immediately (status 3) without answering."""
    os._exit(3)


@mcp.tool()
def garbage() -> str:
    """Write a non-JSON line straight to stdout (fd 1), then answer normally."""
    os.write(1, b"this is not json\n")
    return "ok"


@mcp.tool()
def flood_stderr(megabytes: int) -> str:
    """Write `megabytes` MiB to stderr (blocking writes: a gateway that does not drain stderr deadlocks us)."""
    line = b"E" * 1023 + b"\n"
    chunk = line * 64  # 64 KiB
    for _ in range(megabytes * 16):
        view = memoryview(chunk)
        while view:
            n = os.write(2, view)
            view = view[n:]
    return "flooded"


@mcp.tool()
def whoami() -> str:
    """Return this process's pid."""
    return str(os.getpid())


@mcp.tool()
def counter() -> int:
    """Increment a process-wide counter and return the new value."""
    global _counter
    _counter += 1
    return _counter


if __name__ == "__main__":
    logging.getLogger("mcp").setLevel(logging.WARNING)
    mcp.run("stdio")

"""The FastMCP fixture (Tests/Fixtures/fastmcp_server.py) plus one tool for cancellation tests.

Run with the mcp1 venv's python:
    .venv/mcp1/bin/python Tests/e2e/fixture_marker_server.py [--stdin-log DIR]

With --stdin-log DIR every byte the process receives on stdin is also appended to DIR/<pid>.log
(written before the SDK sees it; what is still unread in the pipe at SIGTERM is logged too), so a
test can see exactly which messages (e.g. `notifications/cancelled`) the gateway sent this child.

Extra tool:
  marked_sleep(seconds, marker) -> "slept"; appends "started <pid>" to the file `marker` when it
      begins, "cancelled <pid>" when the request is cancelled (a `notifications/cancelled` for it,
      which the SDK turns into task cancellation), "finished <pid>" when it completes normally.
  list_changed()  -> "sent", after sending notifications/tools/list_changed (not tied to the request).

On stdin EOF the SDK's stdio server stops reading but does not cancel running handlers, and a
SIGTERM kills the process without running Python handlers, so a "cancelled" line is evidence that
a `notifications/cancelled` reached this process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "Fixtures"))

from fastmcp_server import mcp  # noqa: E402  (registers the fixture's tools; does not run it)
from mcp.server.fastmcp import Context  # noqa: E402


def _mark(path: str, what: str) -> None:
    with open(path, "a") as f:
        f.write(f"{what} {os.getpid()}\n")
        f.flush()
        os.fsync(f.fileno())


@mcp.tool()
async def marked_sleep(seconds: float, marker: str) -> str:
    """Sleep `seconds`, recording start / cancellation / completion in the file `marker`."""
    _mark(marker, "started")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        _mark(marker, "cancelled")
        raise
    _mark(marker, "finished")
    return "slept"


@mcp.tool()
async def list_changed(ctx: Context) -> str:
    """Send `notifications/tools/list_changed` (a server message that belongs to no request), then answer."""
    await ctx.session.send_tool_list_changed()
    return "sent"


def _tee_stdin(log_dir: str) -> None:
    """Put a pipe in front of fd 0; a thread copies the real stdin into it and into the log."""
    import signal
    import threading

    log_path = os.path.join(log_dir, f"{os.getpid()}.log")
    lock = threading.Lock()
    orig = os.dup(0)
    r, w = os.pipe()
    os.dup2(r, 0)
    os.close(r)

    def log(data: bytes) -> None:
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def pump() -> None:
        while True:
            with lock:
                try:
                    data = os.read(orig, 65536)
                except BlockingIOError:
                    data = None
                if data is None:
                    continue
                if not data:
                    log(b"")  # make sure the file exists
                    os.close(w)
                    return
                log(data)
            os.write(w, data)

    def on_term(signum, frame):
        # log whatever the gateway wrote that the pump has not read yet, then die as SIGTERM would
        with lock:
            os.set_blocking(orig, False)
            try:
                while True:
                    data = os.read(orig, 65536)
                    if not data:
                        break
                    log(data)
            except (BlockingIOError, OSError):
                pass
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    threading.Thread(target=pump, daemon=True).start()


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--stdin-log":
        _tee_stdin(sys.argv[2])
    logging.getLogger("mcp").setLevel(logging.WARNING)
    mcp.run("stdio")

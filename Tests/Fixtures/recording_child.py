#!/usr/bin/env python3
"""A raw stdio MCP server (no SDK) that records every line it receives. Used by the pool e2e tests.

Every line read from stdin is appended, as `<pid>\t<line>`, to the file named by $RECORD_FILE
(opened O_APPEND and written with one write() per line, so several children can share a file).

Answers:
  initialize            -> capabilities tools/resources(subscribe, listChanged)/logging/tasks (tasks on
                           purpose: a shared pool must not advertise it to clients)
  ping                  -> {}
  tools/list            -> hang, echo, touch, progress, list_changed, log, whoami
  tools/call hang       -> never answered
  tools/call echo       -> {"text"} echoed
  tools/call touch      -> emits notifications/resources/updated {uri} first, then answers "touched <uri>"
  tools/call progress   -> `steps` notifications/progress with the token it received (message carries
                           the token it saw as JSON and the `tag` argument), then answers "<tag>"
  tools/call list_changed -> emits notifications/tools/list_changed, then answers "changed"
  tools/call log        -> emits notifications/message {level, logger "rec", data text}, answers "logged"
  tools/call whoami     -> this process's pid as text
  resources/subscribe, resources/unsubscribe, logging/setLevel -> {}
  resources/list        -> []
  anything else         -> -32601
Notifications are only recorded. Env RECORD_EXIT_AFTER_INIT=1 makes it exit right after answering
initialize (not used by default).
"""

import json
import os
import sys
import time

RECORD = os.environ.get("RECORD_FILE")
_fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if RECORD else None
PID = os.getpid()

TOOLS = [
    {"name": "hang", "description": "Never answers.", "inputSchema": {"type": "object", "properties": {}}},
    {"name": "echo", "description": "Echo text.",
     "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}},
    {"name": "touch", "description": "Emit resources/updated for uri.",
     "inputSchema": {"type": "object", "properties": {"uri": {"type": "string"}}, "required": ["uri"]}},
    {"name": "progress", "description": "Emit progress with the received token.",
     "inputSchema": {"type": "object", "properties": {"steps": {"type": "integer"}, "tag": {"type": "string"},
                                                      "delay": {"type": "number"}}}},
    {"name": "list_changed", "description": "Emit tools/list_changed.",
     "inputSchema": {"type": "object", "properties": {}}},
    {"name": "log", "description": "Emit notifications/message at a level.",
     "inputSchema": {"type": "object", "properties": {"level": {"type": "string"}, "text": {"type": "string"}}}},
    {"name": "whoami", "description": "This process's pid.", "inputSchema": {"type": "object", "properties": {}}},
]


def record(line: str):
    if _fd is not None:
        os.write(_fd, f"{PID}\t{line}\n".encode())


def send(msg: dict):
    sys.stdout.write(json.dumps(msg, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def result(id_, res):
    send({"jsonrpc": "2.0", "id": id_, "result": res})


def text(id_, t):
    result(id_, {"content": [{"type": "text", "text": t}]})


def handle(msg: dict):
    method = msg.get("method")
    if "id" not in msg or method is None:
        return  # notification or response: recorded only
    id_ = msg["id"]
    params = msg.get("params") or {}
    if method == "initialize":
        result(id_, {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {
                "tools": {"listChanged": True},
                "resources": {"subscribe": True, "listChanged": True},
                "logging": {},
                "tasks": {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}},
            },
            "serverInfo": {"name": "recording-child", "version": "1.0"},
            "instructions": "recording child",
        })
        if os.environ.get("RECORD_EXIT_AFTER_INIT") == "1":
            sys.exit(0)
    elif method == "ping":
        result(id_, {})
    elif method == "tools/list":
        result(id_, {"tools": TOOLS})
    elif method in ("resources/subscribe", "resources/unsubscribe", "logging/setLevel"):
        result(id_, {})
    elif method == "resources/list":
        result(id_, {"resources": []})
    elif method == "tools/call":
        name = params.get("name")
        args = params.get("arguments") or {}
        if name == "hang":
            return
        if name == "echo":
            text(id_, str(args.get("text", "")))
        elif name == "touch":
            uri = args["uri"]
            send({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": uri}})
            text(id_, f"touched {uri}")
        elif name == "progress":
            token = (params.get("_meta") or {}).get("progressToken")
            steps = int(args.get("steps", 3))
            tag = str(args.get("tag", ""))
            for i in range(1, steps + 1):
                if token is not None:
                    send({"jsonrpc": "2.0", "method": "notifications/progress",
                          "params": {"progressToken": token, "progress": i, "total": steps,
                                     "message": json.dumps({"seen": token, "tag": tag, "step": i})}})
                if args.get("delay"):
                    time.sleep(float(args["delay"]))
            text(id_, tag)
        elif name == "log":
            send({"jsonrpc": "2.0", "method": "notifications/message",
                  "params": {"level": args.get("level", "info"), "logger": "rec", "data": args.get("text", "")}})
            text(id_, "logged")
        elif name == "whoami":
            text(id_, str(PID))
        elif name == "list_changed":
            send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
            text(id_, "changed")
        else:
            send({"jsonrpc": "2.0", "id": id_, "error": {"code": -32602, "message": f"unknown tool {name}"}})
    else:
        send({"jsonrpc": "2.0", "id": id_, "error": {"code": -32601, "message": f"method not found: {method}"}})


def main():
    for raw in sys.stdin:
        line = raw.rstrip("\r\n")
        if not line:
            continue
        record(line)
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict):
            handle(msg)


if __name__ == "__main__":
    main()

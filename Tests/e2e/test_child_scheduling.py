"""Children start under SCHED_BATCH by default (`pool.scheduling: batch`) and under SCHED_OTHER with
`scheduling: normal`: the policy is read from /proc/<pid>/stat (field 41) of the real child processes,
the gateway itself stays SCHED_OTHER, and a batch child still answers through the SDK-shaped client."""

from __future__ import annotations

import pytest

from conftest import wait_until

from poolkit import McpHttp, demo_server, pool_daemon, result_text
from test_pool_edges import shared

SCHED_OTHER, SCHED_BATCH = 0, 3


def policy(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[38])  # field 41 of stat(5); fields[0] is field 3


@pytest.mark.parametrize("setting,expected", [(None, SCHED_BATCH), ("batch", SCHED_BATCH), ("normal", SCHED_OTHER)])
@pytest.mark.parametrize("mode", ["dedicated", "shared"])
def test_child_scheduling_policy(switchyard, setting, expected, mode):
    srv = demo_server()
    pool = shared(min_idle=1) if mode == "shared" else {"mode": "dedicated", "min_idle": 1}
    if setting is not None:
        pool["scheduling"] = setting
    srv["pool"] = pool
    d, admin = pool_daemon(switchyard, {"demo": srv})
    c = McpHttp(d).must_initialize()
    r = c.call("echo", {"text": "scheduled"})
    assert result_text(r.answer()) == "scheduled"
    pids = [row["pid"] for row in admin.children("demo")]
    assert pids, admin.children("demo", live_only=False)
    for pid in pids:
        # A spare spawned a moment ago may still be in the launcher (before exec): wait for the exec.
        wait_until(lambda: b"__exec-child" not in open(f"/proc/{pid}/cmdline", "rb").read(), 10, what=f"child {pid} exec")
        assert policy(pid) == expected, f"child {pid}: policy {policy(pid)}, expected {expected} ({setting=})"
    assert policy(d.proc.pid) == SCHED_OTHER, "the gateway itself must keep the normal policy"

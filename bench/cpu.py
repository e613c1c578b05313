"""CPU time of the processes this benchmark started, grouped by role, read from ``/proc``.

Throughput alone cannot say where a request's cost goes; CPU seconds per
request of the proxy, the replica and Redis can. Only descendants of this
process are counted, so other stacks on the same machine do not leak in.
Off Linux (no ``/proc``) the figures are simply absent.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

PROC = Path("/proc")
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

# First match wins; the patterns are what each process shows in its command line.
ROLES: tuple[tuple[str, str], ...] = (
    ("ServeReplica", "serve replica"),
    ("ProxyActor", "serve proxy"),
    ("haproxy", "haproxy"),
    ("redis-server", "redis"),
    ("valkey", "redis"),
    ("bench.baseline_server", "baseline server"),
    ("java", "graph"),
    ("InboxShard", "actors"),
    ("FanoutWorker", "actors"),
    ("CelebrityOutbox", "actors"),
    ("LikePersister", "actors"),
    ("Notifier", "actors"),
    # Ray's own processes, so that load-driven control-plane and metrics work is not lost in "other".
    ("ServeController", "serve control"),
    ("HAProxyManager", "serve control"),
    ("DashboardAgent", "ray agent"),
    ("RuntimeEnvAgent", "ray agent"),
    ("dashboard.py", "ray agent"),
    ("gcs_server", "ray core"),
    ("raylet", "ray core"),
    ("monitor.py", "ray core"),  # the autoscaler's monitor and the log monitor
    ("ray::IDLE", "ray idle workers"),
    ("default_worker.py", "ray idle workers"),
)


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a process, or None if it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def _role(pid: int) -> str:
    try:
        cmdline = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "other"
    return next((role for pattern, role in ROLES if pattern in cmdline), "other")


def cpu_by_role(root: int | None = None) -> dict[str, float]:
    """CPU seconds used so far by each role among the descendants of ``root`` (default: this process)."""
    if not PROC.is_dir():
        return {}
    root = root or os.getpid()
    stats: dict[int, tuple[int, float]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            stats[int(entry.name)] = stat
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _) in stats.items():
        children[ppid].append(pid)
    totals: dict[str, float] = defaultdict(float)
    stack = list(children[root])
    while stack:
        pid = stack.pop()
        totals[_role(pid)] += stats[pid][1]
        stack += children[pid]
    return dict(totals)


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per role spent between two readings (processes that exited drop out)."""
    return {role: after[role] - before.get(role, 0.0) for role in after if after[role] - before.get(role, 0.0) > 0}

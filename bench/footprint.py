"""``python -m bench.footprint``: what the idle stack costs in memory, and how long ``raygram up`` takes to answer.

The stack is started the way ``make run`` starts it: the ``raygram up``
command itself, in a child process, but on a temporary state folder, free
loopback ports and a namespace of its own, so it never touches the user's
``.raygram/`` or port 8000 and runs beside other stacks. The cold start is
the time from launching that command to the first 200 on ``/health`` (with
the moments its phases began, from its output). Once the stack is idle (no
process started or gone for a while, little CPU), every process that
descends from the command (the services it started, Ray's own processes and
workers, HAProxy) is listed with its RSS, PSS and USS from
``/proc/<pid>/smaps_rollup``, then the command is stopped with SIGTERM as
Ctrl-C would, and anything of its tree still there afterwards is killed by
pid.

PSS shares each page among the processes that map it, so the total drops
when other stacks run on the machine (they map the same libraries). The
figure that does not depend on them, "resident alone", counts once every
physical page the stack's processes map (read from ``/proc/<pid>/pagemap``,
which shows page frames to root only): what the stack's PSS would be if it
ran alone.

Options: ``--up-args "--no-dashboard"`` passes flags to ``raygram up``;
``--idle-seconds`` sets how long the process set must stay unchanged.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from launcher import ProcessIdentity, free_port

PAGE = os.sysconf("SC_PAGE_SIZE")
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Proc:
    pid: int
    role: str
    rss_kb: int
    pss_kb: int
    uss_kb: int


def parent_map() -> dict[int, int]:
    """pid → parent pid for every process visible now."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    return parents


def descendants(root: int) -> list[int]:
    """``root`` and every process below it, by the parent chain in /proc."""
    children: dict[int, list[int]] = defaultdict(list)
    for pid, parent in parent_map().items():
        children[parent].append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return sorted(found)


def cmdline(pid: int) -> list[str]:
    try:
        return [part for part in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0") if part]
    except OSError:
        return []


ROLES = (  # (a piece of the command line, the role it names), first match wins
    ("multiprocessing.forkserver", "Ray dashboard forkserver"),
    ("multiprocessing.resource_tracker", "Ray dashboard resource tracker"),
    ("gcs_server", "Ray GCS server"),
    ("raylet", "Ray raylet"),
    ("dashboard/dashboard.py", "Ray dashboard (head)"),
    ("dashboard/agent.py", "Ray dashboard agent"),
    ("runtime_env/agent/main.py", "Ray runtime-env agent"),
    ("log_monitor.py", "Ray log monitor"),
    ("autoscaler/_private/monitor.py", "Ray autoscaler monitor"),
    ("ArcadeDBServer", "graph server (ArcadeDB, JVM)"),
    ("haproxy", "HAProxy (Serve ingress)"),
    ("valkey", "Redis (Valkey)"),
    ("redis-server", "Redis"),
)


def role_of(pid: int, root: int) -> str:
    if pid == root:
        return "raygram up (driver)"
    argv = cmdline(pid)
    if not argv:
        return "?"
    if argv[0].startswith("ray::"):  # a Ray worker's title: ray::<actor class>[.<method running>]
        return "ray::" + argv[0][5:].split(".")[0].split(" ")[0]
    if argv[0].startswith("ray-dashboard-"):  # ray-dashboard-<Module>-0 (forked from the forkserver)
        return "Ray dashboard module"
    line = " ".join(argv)
    for piece, role in ROLES:
        if piece in line:
            return role
    return Path(argv[0]).name


def memory(pid: int) -> tuple[int, int, int] | None:
    """(RSS, PSS, USS) in kB from smaps_rollup; None if the process is gone."""
    fields: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            name, _, rest = line.partition(":")
            fields[name] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return fields.get("Rss", 0), fields.get("Pss", 0), fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)


def resident_alone_kb(pids: list[int]) -> int | None:
    """Physical pages mapped by any of ``pids``, each counted once (None where page frames are hidden)."""
    import numpy as np

    frames = []
    for pid in pids:
        try:
            ranges = []
            start = end = 0
            for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
                head = line.split(" ", 1)[0]
                if "-" in head and not head.endswith(":"):
                    start, end = (int(x, 16) for x in head.split("-"))
                elif head == "Rss:" and int(line.split()[1]) > 0:
                    ranges.append((start, end))
            with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
                for start, end in ranges:
                    pagemap.seek(start // PAGE * 8)
                    entries = np.frombuffer(pagemap.read((end - start) // PAGE * 8), dtype=np.uint64)
                    present = entries[(entries >> np.uint64(63)) & np.uint64(1) == 1]
                    frames.append(present & np.uint64((1 << 55) - 1))
        except OSError:
            continue
    if not frames:
        return None
    every = np.concatenate(frames)
    if every.size and not every.any():
        return None  # not root: the kernel zeroes the frame numbers
    return int(np.unique(every).size) * PAGE // 1024


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total


def wait_for_idle(root: int, steady: float, cpu_limit: float, deadline: float) -> tuple[float, float]:
    """Wait until the process set is unchanged for ``steady`` s and uses < ``cpu_limit`` cores; (waited s, cores)."""
    hz = os.sysconf("SC_CLK_TCK")
    began = time.monotonic()
    pids, since = descendants(root), time.monotonic()
    ticks, at = cpu_ticks(pids), time.monotonic()
    cores = 0.0
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now_pids = descendants(root)
        now_ticks, now = cpu_ticks(now_pids), time.monotonic()
        cores = (now_ticks - ticks) / hz / (now - at) if now_pids == pids else float("inf")
        ticks, at = now_ticks, now
        if now_pids != pids:
            pids, since = now_pids, now
        elif now - since >= steady and cores < cpu_limit:
            break
    return time.monotonic() - began, cores


def first_200(url: str, proc: subprocess.Popen, timeout: float) -> tuple[float | None, dict[str, float]]:
    """When ``url`` first answered 200 (None if it did not in time), and the CPU seconds used by then, by role.

    The CPU is sampled every half second, per process, so a process that lived less than that is
    missed: a lower bound, but one that other people's load on the machine does not change much.
    """
    hz = os.sysconf("SC_CLK_TCK")
    used: dict[int, tuple[str, int]] = {}

    def sample() -> None:
        for pid in descendants(proc.pid):  # a worker's title changes once an actor or task runs in it: keep the last
            role = role_of(pid, proc.pid)
            used[pid] = (used[pid][0] if role == "?" and pid in used else role, cpu_ticks([pid]))

    def by_role() -> dict[str, float]:
        roles: dict[str, float] = defaultdict(float)
        for role, ticks in used.values():
            roles[role] += ticks / hz
        return roles

    deadline, sampled = time.monotonic() + timeout, 0.0
    while time.monotonic() < deadline and proc.poll() is None:
        if time.monotonic() - sampled > 0.5:
            sample()
            sampled = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    answered = time.monotonic()
                    sample()
                    return answered, by_role()
        except Exception:
            pass
        time.sleep(0.05)
    return None, by_role()


def print_start_cpu(cpu: dict[str, float]) -> None:
    print(f"\n{'CPU seconds until the first 200, by role':<40} {'CPU s':>6}")
    for role, seconds in sorted(cpu.items(), key=lambda item: -item[1]):
        if seconds >= 0.05:
            print(f"{role:<40} {seconds:>6.1f}")


def print_table(rows: list[Proc], alone_kb: int | None) -> None:
    mb = 1024
    print(f"\n{'pid':>8}  {'role':<40} {'RSS MB':>8} {'PSS MB':>8} {'USS MB':>8}")
    for row in sorted(rows, key=lambda r: -r.pss_kb):
        print(f"{row.pid:>8}  {row.role:<40} {row.rss_kb / mb:>8.1f} {row.pss_kb / mb:>8.1f} {row.uss_kb / mb:>8.1f}")
    by_role: dict[str, list[Proc]] = defaultdict(list)
    for row in rows:
        by_role[row.role].append(row)
    print(f"\n{'by role':<40} {'count':>5} {'PSS MB':>8}")
    for role, group in sorted(by_role.items(), key=lambda item: -sum(r.pss_kb for r in item[1])):
        print(f"{role:<40} {len(group):>5} {sum(r.pss_kb for r in group) / mb:>8.1f}")
    gb = mb * 1024
    pss, uss, rss = (sum(getattr(r, f) for r in rows) / gb for f in ("pss_kb", "uss_kb", "rss_kb"))
    print(f"\nprocesses {len(rows)}   PSS total {pss:.2f} GB   USS total {uss:.2f} GB   RSS total {rss:.2f} GB")
    if alone_kb is not None:
        print(f"resident alone (each physical page once): {alone_kb / mb / 1024:.2f} GB")


def stop_tree(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM ``raygram up`` (it stops what it started); then kill by pid whatever of its tree is left."""
    tree = [identity for pid in descendants(proc.pid) if (identity := ProcessIdentity.of(pid)) is not None]
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    time.sleep(1.0)
    left = [identity for identity in tree if identity.alive()]
    for identity in left:
        identity.signal(signal.SIGKILL)
    if left:
        print(f"killed {len(left)} processes the stack left behind: {[i.pid for i in left]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.footprint", description=__doc__.split("\n")[0])
    parser.add_argument("--up-args", default="", help='flags for `raygram up`, e.g. "--no-dashboard"')
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="process set unchanged this long = idle")
    parser.add_argument("--idle-cpu", type=float, default=0.25, help="and the tree uses fewer cores than this")
    parser.add_argument("--timeout", type=float, default=240.0, help="give up on start-up after this long")
    args = parser.parse_args(argv)

    state = Path(tempfile.mkdtemp(prefix="raygram-footprint-"))
    http_port = free_port()
    env = {
        **os.environ,
        "STATE_DIR": str(state),
        "REDIS_PORT": str(free_port()),
        "GRAPH_BOLT_PORT": str(free_port()),
        "GRAPH_HTTP_PORT": str(free_port()),
        "HTTP_PORT": str(http_port),
        "HTTP_HOST": "127.0.0.1",
        "RAY_NAMESPACE": f"raygram-footprint-{uuid.uuid4().hex[:8]}",
        "REDIS_URL": "",  # the embedded services are what is measured
        "NEO4J_URI": "",
        "RAY_ADDRESS": "",
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "cli", "up", *shlex.split(args.up_args)]
    lines: list[tuple[float, str]] = []
    launched = time.monotonic()
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )

    def collect() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append((time.monotonic() - launched, line.rstrip()))

    threading.Thread(target=collect, daemon=True).start()
    try:
        answered, cpu = first_200(f"http://127.0.0.1:{http_port}/health", proc, args.timeout)
        if answered is None:
            print("\n".join(text for _, text in lines[-40:]))
            raise SystemExit(f"raygram up did not answer 200 on /health within {args.timeout:.0f}s")
        cold = answered - launched
        waited, cores = wait_for_idle(proc.pid, args.idle_seconds, args.idle_cpu, time.monotonic() + 120)
        if proc.poll() is not None:
            print("\n".join(text for _, text in lines[-40:]))
            raise SystemExit(f"raygram up answered after {cold:.1f}s, then exited with {proc.returncode}")
        pids = descendants(proc.pid)
        rows = []
        for pid in pids:
            found = memory(pid)
            if found is not None:
                rows.append(Proc(pid, role_of(pid, proc.pid), *found))
        alone = resident_alone_kb(pids)
        print(f"raygram up {args.up_args}".rstrip() + f"  (state {state}, port {http_port})")
        for at, text in lines:
            if text.startswith(("raygram", "  starting", "  reusing")):
                print(f"  {at:6.1f}s  {text}")
        print(
            f"cold start: {cold:.1f}s from launch to the first 200 on /health, "
            f"{sum(cpu.values()):.0f} CPU seconds by then"
        )
        print(f"idle after {waited:.0f}s more ({cores:.2f} cores in the last second)")
        print_start_cpu(cpu)
        print_table(rows, alone)
        load = os.getloadavg()
        print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    finally:
        stop_tree(proc, timeout=90)


if __name__ == "__main__":
    main()

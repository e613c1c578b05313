"""Start, watch and stop the local service processes raygram embeds.

A started service gets a pid file in the state folder, so a later ``raygram
up`` can reuse it and ``raygram down`` can stop it. Processes are only ever
stopped by the pid this module recorded: never by name, so other people's
servers on the same machine are left alone.

A pid alone does not name a process: once it exits, the system hands its pid
to the next process started. So a pid file holds the pid and the process's
start time (``/proc/<pid>/stat`` on Linux, ``ps`` elsewhere), and a pid
counts as ours only while a process with that pid *and* that start time
exists and is not a zombie. A pid file from an older version (pid only), or
one whose pid now belongs to another process, is stale: never reported
running, never signalled. Signals go through a pidfd where the system has
them, so the identity check and the signal concern the same process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO


class ServiceStartError(RuntimeError):
    """A service did not become ready; the message says which and where its log is."""


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (an opaque token), or None if there is no such live process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
    except OSError:
        return None
    else:  # fields after the command name, which may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2 :].split()
        return None if fields[0] in ("Z", "X") else fields[19]  # state; starttime (field 22)
    found = subprocess.run(["ps", "-o", "stat=,lstart=", "-p", str(pid)], capture_output=True, text=True)
    state, _, started = found.stdout.strip().partition(" ")
    return started.strip() if found.returncode == 0 and state and not state.startswith("Z") else None


@dataclass(frozen=True)
class ProcessIdentity:
    """A process: its pid and its start time; what a pid file records."""

    pid: int
    started: str

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        started = process_start(pid)
        return None if started is None else cls(pid, started)

    @classmethod
    def current(cls) -> ProcessIdentity:
        return cls(os.getpid(), process_start(os.getpid()) or "")

    @classmethod
    def read(cls, pid_file: Path) -> ProcessIdentity | None:
        """The identity recorded in ``pid_file``; None if absent or not in this format (an older pid-only file)."""
        try:
            pid, started = pid_file.read_text().strip().split(" ", 1)
            return cls(int(pid), started)
        except (FileNotFoundError, ValueError):
            return None

    def write(self, pid_file: Path) -> None:
        pid_file.write_text(f"{self.pid} {self.started}\n")

    def alive(self) -> bool:
        """Whether this very process still runs (not merely some process with the same pid)."""
        return process_start(self.pid) == self.started

    def signal(self, signum: int) -> bool:
        """Send ``signum`` if this process still runs; False (nothing sent) if it is gone or the pid is reused."""
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return False
        except (AttributeError, OSError):  # no pidfds here: check, then signal by pid
            if not self.alive():
                return False
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)
            return True
        try:  # the pidfd pins the process that had the pid when it was opened: check that one, signal it
            if not self.alive():
                return False
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signum)
            return True
        finally:
            os.close(pidfd)


@contextlib.contextmanager
def exclusive(lock_file: Path) -> Iterator[IO | None]:
    """Hold an exclusive lock on ``lock_file`` for the block; yields None when another process holds it.

    The operating system releases the lock when its holder exits, however it exits, so a crash
    leaves nothing stale behind.
    """
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def stop_process(identity: ProcessIdentity, timeout: float, reap: Callable[[], object] | None = None) -> bool:
    """SIGTERM the process, SIGKILL it if it lingers past ``timeout``; False if it was not running."""
    if not identity.signal(signal.SIGTERM):
        return False
    deadline = time.monotonic() + timeout
    while identity.alive() and time.monotonic() < deadline:
        if reap is not None:
            reap()  # our own child: collect it so that it does not linger as a zombie
        time.sleep(0.1)
    identity.signal(signal.SIGKILL)
    if reap is not None:
        reap()
    return True


@dataclass
class ManagedProcess:
    """A server process this project started, known by its pid file."""

    name: str
    pid_file: Path
    log_file: Path

    def running_pid(self) -> int | None:
        """The pid from the pid file if that very process (same pid, same start time) is still alive."""
        identity = ProcessIdentity.read(self.pid_file)
        return identity.pid if identity is not None and identity.alive() else None

    def start(self, argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,  # Ctrl-C in the terminal reaches only us; we stop it
            )
        self._proc = proc
        identity = ProcessIdentity.of(proc.pid)
        if identity is None:
            raise ServiceStartError(f"{self.name} exited at once; see {self.log_file}")
        identity.write(self.pid_file)
        return proc.pid

    def wait_ready(self, probe: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if probe():
                return
            pid = self.running_pid()
            if pid is None:
                raise ServiceStartError(f"{self.name} exited during start-up; see {self.log_file}")
            proc = getattr(self, "_proc", None)
            if proc is not None and proc.poll() is not None:
                raise ServiceStartError(f"{self.name} exited with {proc.returncode}; see {self.log_file}")
            time.sleep(0.1)
        raise ServiceStartError(f"{self.name} was not ready after {timeout:.0f}s; see {self.log_file}")

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the process the pid file names (only if it is still that process), remove the pid file."""
        identity = ProcessIdentity.read(self.pid_file)
        if identity is not None:
            proc = getattr(self, "_proc", None)
            stop_process(identity, timeout, reap=proc.poll if proc is not None and proc.pid == identity.pid else None)
        self.pid_file.unlink(missing_ok=True)

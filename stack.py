"""Bring the whole stack up and down: embedded services, schema, Ray, Serve.

Used by ``raygram up`` and by the test fixtures, so that what the tests run is
what users run. Only what this module started is ever stopped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from config import Settings
from graph.driver import wait_for_graph
from graph.schema import apply_schema
from graph.server import start_graph_server
from launcher import ManagedProcess, ServiceStartError, free_port, port_is_open
from redis_store.server import start_redis_server


@dataclass
class Stack:
    settings: Settings
    started: list[ManagedProcess] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    ray_started: bool = False
    haproxy_dir: Path | None = None

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir.resolve()

    def _reuse_or_start(self, name: str, pid_file: str, port: int, start) -> None:
        existing = ManagedProcess(name, self.state_dir / pid_file, self.state_dir / f"{name}.log")
        if existing.running_pid() is not None and port_is_open("127.0.0.1", port):
            print(f"  reusing the running {name} (pid {existing.running_pid()}) on 127.0.0.1:{port}")
            return
        if port_is_open("127.0.0.1", port):
            raise ServiceStartError(
                f"port {port} is taken by a process raygram did not start; "
                f"set the port setting or point raygram at that server by URL"
            )
        print(f"  starting {name} on 127.0.0.1:{port} …", flush=True)
        self.started.append(start())

    def start_services(self) -> None:
        """Start Redis and the graph server unless URLs are configured; apply the schema."""
        s = self.settings
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not s.redis_url:
            self._reuse_or_start(
                "redis", "redis.pid", s.redis_port, lambda: start_redis_server(self.state_dir, port=s.redis_port)
            )
            s.redis_url = f"redis://127.0.0.1:{s.redis_port}/0"
        if not s.neo4j_uri:
            self._reuse_or_start(
                "graph",
                "graph.pid",
                s.graph_bolt_port,
                lambda: start_graph_server(
                    self.state_dir,
                    bolt_port=s.graph_bolt_port,
                    http_port=s.graph_http_port,
                    password=s.neo4j_password,
                    database=s.neo4j_database,
                    heap=s.graph_heap,
                ),
            )
            s.neo4j_uri = f"bolt://127.0.0.1:{s.graph_bolt_port}"
        wait_for_graph(s.neo4j_uri, s.neo4j_user, s.neo4j_password, s.neo4j_database, timeout=90)
        apply_schema(s.neo4j_uri, s.neo4j_user, s.neo4j_password, s.neo4j_database)
        # Every process (replicas, actors, tasks) reads the same resolved settings from its environment.
        self.env = {
            name.upper(): str(value) for name, value in s.model_dump().items() if value is not None and value != ""
        }
        os.environ.update(self.env)

    def serve_env(self) -> dict[str, str]:
        """Serve's throughput mode for a Ray instance this process starts.

        Measured by ``bench/feed_bench.py`` (home-feed read, 2 cores): Serve's
        Python proxy spent about 6.5 ms of CPU per request on top of the
        replica's 8; with direct ingress the replica serves HTTP itself behind
        HAProxy (C), leaving about 0.3 ms in HAProxy and 4 in the replica.
        Exporting ``RAY_SERVE_THROUGHPUT_OPTIMIZED=0`` and
        ``RAY_SERVE_ENABLE_HA_PROXY=0`` turns it off. HAProxy's files and its
        stats and metrics ports are this stack's own, so that stacks started
        side by side (concurrent test runs) do not share them; the folder is
        short-named under the system temp dir because Ray adds the 56-character
        node id to it and HAProxy refuses socket paths over 97 characters.
        """
        if self.haproxy_dir is None:
            self.haproxy_dir = Path(tempfile.mkdtemp(prefix="raygram-haproxy-"))
        haproxy = self.haproxy_dir
        return {
            "RAY_SERVE_THROUGHPUT_OPTIMIZED": os.environ.get("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1"),
            "RAY_SERVE_ENABLE_HA_PROXY": os.environ.get("RAY_SERVE_ENABLE_HA_PROXY", "1"),
            "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(haproxy / "haproxy.cfg"),
            "RAY_SERVE_HAPROXY_SOCKET_PATH": str(haproxy / "admin.sock"),
            "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(haproxy),
            "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(haproxy / "server-state"),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
        }

    def start_ray(self, *, dashboard: bool = True, num_cpus: int | None = None) -> None:
        import ray

        if not self.settings.ray_address:
            # Serve reads these at import time in every Ray process: export them before Ray starts.
            serve_env = self.serve_env()
            os.environ.update(serve_env)
            self.env.update(serve_env)
        runtime_env = {"env_vars": self.env}  # every worker reads the same settings
        if self.settings.ray_address:
            ray.init(
                address=self.settings.ray_address,
                namespace=self.settings.ray_namespace,
                runtime_env=runtime_env,
                log_to_driver=False,
            )
        else:
            ray.init(
                namespace=self.settings.ray_namespace,
                runtime_env=runtime_env,
                include_dashboard=dashboard,
                dashboard_host="127.0.0.1",
                num_cpus=num_cpus,
                object_store_memory=300 * 1024 * 1024,
                log_to_driver=False,
            )
            self.ray_started = True

    def deploy(self) -> None:
        from ray import serve

        import serve_app
        from actors.registry import ensure_actors

        ensure_actors(self.settings)
        serve.start(http_options={"host": self.settings.http_host, "port": self.settings.http_port})
        serve.run(serve_app.app, name="raygram", route_prefix="/")

    def dashboard_url(self) -> str | None:
        import ray

        context = ray.get_runtime_context()
        url = getattr(context, "dashboard_url", None) or ray._private.worker.get_dashboard_url()
        return f"http://{url}" if url and not url.startswith("http") else url

    def stop(self) -> None:
        """Stop Serve and Ray if this process started them, then the services it started, newest first."""
        if self.ray_started:
            import ray
            from ray import serve

            try:
                serve.shutdown()
            finally:
                ray.shutdown()
            self.ray_started = False
        if self.haproxy_dir is not None:
            shutil.rmtree(self.haproxy_dir, ignore_errors=True)
            self.haproxy_dir = None
        for proc in reversed(self.started):
            proc.stop()
        self.started.clear()


def wait_for_http(url: str, timeout: float = 120.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except Exception as exc:
            last = exc
        time.sleep(0.3)
    raise ServiceStartError(f"{url} did not answer 200 within {timeout:.0f}s: {last}")

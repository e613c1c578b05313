"""Bring the whole stack up and down: embedded services, schema, Ray, Serve.

Used by ``raygram up`` and by the test fixtures, so that what the tests run is
what users run. Only what this module started is ever stopped.

Start-up is what ``make run`` waits for, so its slow parts overlap: the graph
server (a JVM, the slowest to boot) starts in a background thread while Ray
starts, and the actors' processes start while Serve deploys. The process
that called ``ray.init`` (``raygram up``) stays alive, holding the Ray
cluster, for as long as the stack runs, so it imports as little as it can:
the graph driver, Serve and the HTTP app are imported only by the one-off
Ray task that deploys them (``deploy_app``), whose process then exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from config import Settings, get_settings
from graph.server import start_graph_server
from launcher import ManagedProcess, ServiceStartError, free_port, port_is_open
from media.urls import MissingSecret, require_secret
from redis_store.server import start_redis_server

ENDPOINTS_FILE = "stack.json"  # in the state folder while the stack runs (Stack.write_endpoints)


@dataclass
class Stack:
    settings: Settings
    started: list[ManagedProcess] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    ray_started: bool = False
    haproxy_dir: Path | None = None
    dashboard: bool = False  # whether the local Ray this stack started has its dashboard
    graph_starting: Future | None = None  # the embedded graph server's start, run while Ray starts
    store_starting: Future | None = None  # the embedded SeaweedFS's start (MEDIA_STORE=seaweedfs), likewise

    @classmethod
    def isolated(cls, state_dir: Path, label: str, env: dict[str, str], **settings: str) -> Stack:
        """A stack of its own, never the user's: its own state folder, free loopback ports and Ray namespace.

        ``env`` is exported first (every process of the stack reads its settings from the environment);
        ``settings`` override the rest (an external Redis or graph, say).
        """
        os.environ.update(env)
        return cls(
            Settings(
                state_dir=state_dir,
                redis_port=free_port(),
                graph_bolt_port=free_port(),
                graph_http_port=free_port(),
                http_port=free_port(),
                metrics_export_port=free_port(),
                ray_namespace=f"raygram-{label}-{uuid.uuid4().hex[:8]}",
                **settings,
            )
        )

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
        """Start Redis and, in the background, the graph server, unless URLs are configured, and SeaweedFS
        when ``MEDIA_STORE=seaweedfs``; refuse a deployment of several nodes without a shared media URL secret.

        Every setting is resolved and exported first (every Ray process reads them from its environment);
        ``deploy`` waits for the graph server and SeaweedFS, then for the database to answer, and applies
        the schema.
        """
        s = self.settings
        try:
            require_secret(s)  # before anything starts: a node of a cluster must not make up a secret of its own
        except MissingSecret as exc:
            raise ServiceStartError(str(exc)) from None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        start_graph = not s.neo4j_uri
        if s.media_store == "seaweedfs" and not s.media_store_url:
            self._start_seaweedfs()
        if s.redis_cluster_nodes and not s.redis_cluster_urls:
            self._start_redis_cluster()
        elif not s.redis_url and not s.redis_cluster_urls:
            started = len(self.started)
            self._reuse_or_start(
                "redis", "redis.pid", s.redis_port, lambda: start_redis_server(self.state_dir, port=s.redis_port)
            )
            s.redis_url = f"redis://127.0.0.1:{s.redis_port}/0"
            if len(self.started) > started:
                self._start_id_epoch()
        if start_graph:
            s.neo4j_uri = f"bolt://127.0.0.1:{s.graph_bolt_port}"
        # Every process (replicas, actors, tasks) reads the same resolved settings from its environment.
        self.env = {
            name.upper(): str(value) for name, value in s.model_dump().items() if value is not None and value != ""
        }
        os.environ.update(self.env)
        if start_graph:
            starter = ThreadPoolExecutor(1, thread_name_prefix="graph-start")
            self.graph_starting = starter.submit(
                self._reuse_or_start,
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
            starter.shutdown(wait=False)  # its thread ends with the start

    def _start_redis_cluster(self) -> None:
        """Start the embedded Redis Cluster (``REDIS_CLUSTER_NODES`` masters from ``REDIS_PORT`` up), reusing one
        that runs already, and point the settings at it."""
        from redis_store.server import cluster_ports, start_redis_cluster

        s = self.settings
        ports = cluster_ports(s.redis_port, s.redis_cluster_nodes)
        pid_files = [self.state_dir / f"redis-cluster-{i}" / "redis.pid" for i in range(len(ports))]
        running = [ManagedProcess("redis node", pid, pid.with_suffix(".log")).running_pid() for pid in pid_files]
        s.redis_cluster_urls = ",".join(f"redis://127.0.0.1:{port}" for port in ports)
        if all(running) and all(port_is_open("127.0.0.1", port) for port in ports):
            print(f"  reusing the running Redis Cluster on 127.0.0.1:{ports[0]}-{ports[-1]}")
        else:
            print(f"  starting a Redis Cluster of {len(ports)} masters on 127.0.0.1:{ports[0]}-{ports[-1]} …")
            self.started.extend(start_redis_cluster(self.state_dir, first_port=ports[0], masters=len(ports)))
            self._start_id_epoch()

    def _start_seaweedfs(self) -> None:
        """Start the embedded SeaweedFS in the background (reusing a running one) and point the media store at it."""
        from media import seaweedfs

        s = self.settings
        key, secret = seaweedfs.credentials(self.state_dir, s.media_s3_access_key_id, s.media_s3_secret_access_key)
        s.media_store_url = seaweedfs.store_url(s.seaweedfs_s3_port)
        s.media_s3_access_key_id, s.media_s3_secret_access_key = key, secret
        starter = ThreadPoolExecutor(1, thread_name_prefix="seaweedfs-start")
        self.store_starting = starter.submit(
            self._reuse_or_start,
            "seaweedfs",
            "seaweedfs.pid",
            s.seaweedfs_s3_port,
            lambda: seaweedfs.start_seaweedfs(
                self.state_dir, s3_port=s.seaweedfs_s3_port, access_key_id=key, secret_access_key=secret
            ),
        )
        starter.shutdown(wait=False)

    def _start_id_epoch(self) -> None:
        """Start the epoch of the snowflake worker-id leases now, as the Redis this stack started comes up.

        On a fresh Redis (a first start, every test session) the first worker-id claims wait until the
        lease table's epoch is one lease old (``redis_store.worker_lease``: no claim may overlap a holder
        from before a flush), and the epoch is the first claim's time. The replicas and the notifier
        claim about ten seconds into a start, so they waited out most of a lease, the longest step of a
        cold start. Written here, with ``NX`` (an epoch kept in the data stays), before any process could
        claim against this Redis, the epoch is as safe as a first claim made now: a holder from before
        can only be one connected to an earlier run of this server, whose lease was last renewed before
        it stopped.
        """
        import redis

        from redis_store.worker_lease import EPOCH

        s = self.settings
        first_node = s.redis_cluster_urls.split(",")[0]
        with redis.RedisCluster.from_url(first_node) if first_node else redis.Redis.from_url(s.redis_url) as client:
            client.eval(
                "local t = redis.call('TIME') "
                "return redis.call('SET', KEYS[1], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), 'NX')",
                1,
                EPOCH,
            )

    def _services_started(self) -> None:
        """Wait for the background starts of the graph server and SeaweedFS (raising what they raised)."""
        if self.graph_starting is not None:
            starting, self.graph_starting = self.graph_starting, None
            starting.result()
        if self.store_starting is not None:
            starting, self.store_starting = self.store_starting, None
            starting.result()

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
        node id to it and HAProxy refuses socket paths over 97 characters. So are
        the ports the replicas serve on (``ingress_ports``), and the port of Serve's
        fallback proxy: HAProxy sends requests to it while an application has no
        replica to take them, which is the case while a new version is built (a
        ``serve apply`` that changes settings) and the old replicas still run. Serve
        binds it to 8500 in every Ray, so with a second stack on the machine those
        requests reached the other stack's proxy, whose graph knows none of this
        stack's tokens: 401s during the roll-over. Serve gives a starting
        proxy 5 s to answer its first ready check and fails the start after three
        misses; on a loaded machine (two cores shared by several test runs) a worker
        process alone takes longer to start, so the stack gives it 30 s.
        """
        if self.haproxy_dir is None:
            self.haproxy_dir = Path(tempfile.mkdtemp(prefix="raygram-haproxy-"))
        haproxy = self.haproxy_dir
        http, grpc = ingress_ports()
        return {
            "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": os.environ.get("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "30"),
            "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(http),
            "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(http + INGRESS_PORTS - 1),
            "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT": str(grpc),
            "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT": str(grpc + INGRESS_PORTS - 1),
            "RAY_SERVE_THROUGHPUT_OPTIMIZED": os.environ.get("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1"),
            "RAY_SERVE_ENABLE_HA_PROXY": os.environ.get("RAY_SERVE_ENABLE_HA_PROXY", "1"),
            "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(haproxy / "haproxy.cfg"),
            "RAY_SERVE_HAPROXY_SOCKET_PATH": str(haproxy / "admin.sock"),
            "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(haproxy),
            "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(haproxy / "server-state"),
            "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(free_port()),
            "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(free_port()),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
        }

    def start_ray(self, *, dashboard: bool = False, num_cpus: int | None = None) -> None:
        """Connect to ``RAY_ADDRESS``, or start a local Ray.

        A local Ray keeps only what the stack uses (``bench/footprint.py`` measures each process):

        * the dashboard (its head and nine module processes, about 300 MB) only when asked for;
        * no Python worker processes before something needs one: Ray prestarts one per CPU for the
          first driver by default, but the actors and Serve start their own anyway, and media tasks
          start theirs on first use;
        * not the processes ``ray.init`` starts that nothing here uses, which ``ray.init`` cannot be
          told to leave out (``ray start`` can: ``--no-monitor``, ``--include-log-monitor=false``), so
          they are stopped once it returns: the log monitor, which only copies worker output to
          drivers (``log_to_driver=False`` here); and without the dashboard, the autoscaler monitor
          (nothing to autoscale on one machine; it feeds ``ray status`` and the dashboard) and the
          dashboard's head, which then loads only Ray's usage-statistics module (sending them is off).
          About 160 MB and three Python processes in all.

        A local Ray's metrics agent serves every process's metrics (``metrics.py``) on Prometheus' text format
        at ``http://127.0.0.1:METRICS_EXPORT_PORT/metrics``. It binds the node's address, and Ray picks the
        machine's network address as a node's unless it is told the machine is not part of a cluster
        (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, the switch Ray itself uses on laptops): then every address Ray
        advertises is 127.0.0.1 and the endpoint is not reachable from the network.
        """
        import ray

        if not self.settings.ray_address:
            port = self.settings.metrics_export_port
            if port_is_open("127.0.0.1", port):
                raise ServiceStartError(f"the metrics port {port} is taken; set METRICS_EXPORT_PORT to a free port")
            # Serve reads these at import time in every Ray process: export them before Ray starts.
            serve_env = {**self.serve_env(), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
            os.environ.update(serve_env)
            self.env.update(serve_env)
            # Ray read that switch when it was imported; this process may have imported it already (tests do).
            ray._private.ray_constants.ENABLE_RAY_CLUSTER = False
        if self.settings.ray_address:
            ray.init(
                address=self.settings.ray_address,
                namespace=self.settings.ray_namespace,
                runtime_env={"env_vars": self.env},  # every worker reads the same settings
                log_to_driver=False,
            )
        else:
            # Every process of a Ray started here inherits this environment, settings included: a
            # runtime_env would only add a round trip to Ray's runtime-env agent to each worker's start.
            ray.init(
                namespace=self.settings.ray_namespace,
                include_dashboard=dashboard,
                dashboard_host="127.0.0.1",
                num_cpus=num_cpus,
                object_store_memory=300 * 1024 * 1024,
                log_to_driver=False,
                _metrics_export_port=self.settings.metrics_export_port,
                _system_config={
                    "prestart_worker_first_driver": False,
                    "metrics_report_interval_ms": self.settings.metrics_report_interval_ms,
                },
            )
            self.ray_started, self.dashboard = True, dashboard
            node = ray._private.worker._global_node  # the processes this ray.init started
            node.kill_log_monitor(check_alive=False)
            if not dashboard:
                node.kill_monitor(check_alive=False)
                node.kill_dashboard(check_alive=False)

    def deploy(self) -> None:
        """Once the graph server is up: apply the schema, create the actors and run the Serve app.

        That runs in a one-off Ray task (``deploy_app``), so that this process, which stays alive
        holding Ray, never imports the graph driver, Serve or the HTTP app. Then the stack's addresses
        go to ``stack.json`` in the state folder (``write_endpoints``).
        """
        import ray

        task = ray.remote(num_cpus=0, max_calls=1)(deploy_app)  # max_calls=1: its process exits afterwards
        # On a cluster the replicas get the settings through their runtime environment (serve_app.serve_config).
        deploying = task.remote(self.env if self.settings.ray_address else None)
        self._services_started()  # meanwhile it starts Serve, and waits for the graph before using it
        ray.get(deploying)
        self.write_endpoints()

    def metrics_urls(self) -> list[str]:
        """The metrics endpoints of the nodes alive now (one metrics agent per node)."""
        import ray

        nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("MetricsExportPort")]
        return [f"http://{n['NodeManagerAddress']}:{n['MetricsExportPort']}/metrics" for n in nodes]

    def write_endpoints(self) -> None:
        """Where the running stack answers, for ``raygram status`` and ``raygram serve``: ``stack.json``."""
        import ray

        endpoints = {
            "base_url": self.settings.base_url,
            "redis_url": self.settings.redis_url,
            "redis_cluster_urls": self.settings.redis_cluster_urls,
            "ray_address": ray.get_runtime_context().gcs_address,
            "ray_namespace": self.settings.ray_namespace,
            "metrics_urls": self.metrics_urls(),
        }
        (self.state_dir / ENDPOINTS_FILE).write_text(json.dumps(endpoints, indent=2) + "\n")

    def dashboard_url(self) -> str | None:
        """The Ray dashboard's address; None when this stack started Ray without it."""
        import ray

        if self.ray_started and not self.dashboard:
            return None
        context = ray.get_runtime_context()
        url = getattr(context, "dashboard_url", None) or ray._private.worker.get_dashboard_url()
        return f"http://{url}" if url and not url.startswith("http") else url

    def stop(self) -> None:
        """Stop Serve and Ray if this process started them, then the services it started, newest first."""
        if self.graph_starting is not None or self.store_starting is not None:  # let starts under way finish,
            with contextlib.suppress(Exception):  # so that their processes are stopped too
                self._services_started()
        if self.ray_started:
            import ray
            from ray import serve

            try:
                serve.shutdown()
            finally:
                ray.shutdown()
            self.ray_started = False
        (self.state_dir / ENDPOINTS_FILE).unlink(missing_ok=True)
        if self.haproxy_dir is not None:
            shutil.rmtree(self.haproxy_dir, ignore_errors=True)
            self.haproxy_dir = None
        for proc in reversed(self.started):
            proc.stop()
        self.started.clear()


INGRESS_PORTS = 50  # replica ports per protocol: replicas, and the ports a replaced replica leaves in quarantine


def ingress_ports() -> tuple[int, int]:
    """First ports of two blocks of ``INGRESS_PORTS`` free loopback ports: the replicas' HTTP and gRPC ports.

    With direct ingress each replica serves on a port Serve hands out from a range, 30000-31000 by
    default, knowing only its own Ray's replicas. Two stacks on one machine then take turns on the same
    ports: when a replica stops, another stack's replica can take its port before HAProxy has dropped
    it, and requests go to the other stack (seen as 401s for tokens that stack never issued while
    replicas were replaced under load). So each stack gets blocks of its own, picked at random below
    the system's ephemeral ports (32768 and up on Linux, where ``free_port`` and outgoing connections
    take theirs) among blocks where nothing listens now.
    """
    blocks = random.sample(range(10_000, 32_768 - 2 * INGRESS_PORTS, 2 * INGRESS_PORTS), 200)
    for first in blocks:
        if not any(port_is_open("127.0.0.1", port, timeout=0.05) for port in range(first, first + 2 * INGRESS_PORTS)):
            return first, first + INGRESS_PORTS
    raise ServiceStartError("no free block of loopback ports for the Serve replicas")


def deploy_app(env_vars: dict[str, str] | None) -> None:
    """Start Serve, apply the graph schema, create the actors and run the app; a Ray task (``Stack.deploy``).

    Start-up is a chain of Ray worker processes (Serve's controller, then its proxies, then the
    replicas), so what is off the chain runs beside it: Serve starts while the graph server finishes
    booting and the schema is applied, and the actors' processes start meanwhile. The schema is in
    place before the app serves a request; the actors answer before this returns. The app runs from its
    declarative config (``serve_app.serve_config``), so that a later ``serve deploy`` of an edited one updates it
    in place; ``env_vars`` are the settings its processes get where they do not inherit them.
    """
    import ray
    from ray import serve

    s = get_settings()
    with ThreadPoolExecutor(1, thread_name_prefix="serve-start") as pool:
        serve_started = pool.submit(serve.start, http_options={"host": s.http_host, "port": s.http_port})
        import serve_app  # the rest loads while Serve starts
        from actors.registry import create_actors
        from graph.driver import wait_for_graph
        from graph.schema import apply_schema

        wait_for_graph(s.neo4j_uri, s.neo4j_user, s.neo4j_password, s.neo4j_database, timeout=90)
        apply_schema(s.neo4j_uri, s.neo4j_user, s.neo4j_password, s.neo4j_database)
        actors = create_actors(s)
        serve_started.result()
    serve_app.apply_config(serve_app.serve_config(s, env_vars))
    ray.get([actor.ping.remote() for actor in actors], timeout=120)


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

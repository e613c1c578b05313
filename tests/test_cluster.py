"""raygram on a real two-node Ray cluster on this machine, and the loss of one node under load.

A head (``ray start --head``) and a worker node (``ray start --address=...``, its own temp dir), each a
``ray start --block`` subprocess whose process tree is the node: its raylet, agents and the worker processes
of the actors and tasks placed there. raygram joins through ``RAY_ADDRESS`` (``raygram up`` in a subprocess,
with its own Redis, graph and state folder) with ``RAY_SCHEDULING=SPREAD`` and two hosts of each kind, so
its actors land on both nodes. Then, while a small load of posts, likes and follows runs, every process of
the worker node is killed (``SIGKILL``, by pid): the actors restart on the head, every acknowledged write is
still there, the home feeds converge, and the API answers throughout but for a bounded failover window.

Nothing here uses ``ray stop`` (which stops every Ray on the machine): each process is stopped by pid.
A small driver subprocess reads the cluster's actor table (the test process may already hold another Ray).
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from launcher import free_port
from tests.conftest import TEST_ENV
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(300)

BIN = Path(sys.executable).parent
FAILOVER_BOUND = 45.0  # seconds after the kill within which requests may fail; none may fail after it
HOST_ACTORS = ("inbox-shards-", "celebrity-outboxes-", "stream-consumers-")

# Reads the live cluster's actor table and nodes for the test, one JSON line per request line.
PROBE = """
import json, os, sys, ray
answers = os.fdopen(os.dup(1), "w")  # Ray prints to the driver's stdout (a node's death, say): keep it apart
os.dup2(2, 1)
ray.init(address=sys.argv[1], log_to_driver=False)
for _ in sys.stdin:
    nodes = {n["NodeID"]: {"alive": n["Alive"], "metrics_port": n.get("MetricsExportPort")} for n in ray.nodes()}
    actors = [{"name": a["Name"], "cls": a["ActorClassName"], "state": a["State"], "node": a["Address"]["NodeID"],
               "pid": a["Pid"]} for a in ray._private.state.actors().values()]
    print(json.dumps({"nodes": nodes, "actors": actors}), file=answers, flush=True)
"""


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it, alive now."""
    tree, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        if Path(f"/proc/{pid}").exists():
            found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def kill_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


@dataclass
class RayNode:
    """One ``ray start --block`` and its process tree."""

    name: str
    process: subprocess.Popen
    temp_dir: Path
    metrics_port: int

    def pids(self) -> list[int]:
        return process_tree(self.process.pid)

    def kill(self) -> list[int]:
        """SIGKILL the whole node at once, the way a machine is lost; the pids killed."""
        pids = self.pids()
        kill_pids(pids, signal.SIGKILL)
        self.process.wait(timeout=10)
        return pids

    def stop(self) -> None:
        pids = self.pids()
        kill_pids(pids, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.2)
        kill_pids([p for p in pids if Path(f"/proc/{p}").exists()], signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def fallback_proxy_ports() -> dict[str, str]:
    """Ports of a node's own for Serve's fallback proxy (every Ray binds 8500 otherwise; see ``Stack.serve_env``)."""
    return {
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(free_port()),
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(free_port()),
    }


def start_node(name: str, args: list[str], env: dict[str, str], log: Path) -> RayNode:
    temp_dir = Path(tempfile.mkdtemp(prefix=f"rg-{name}-"))  # short: Ray's socket paths live under it
    metrics_port = free_port()
    command = [
        str(BIN / "ray"), "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1",
        f"--temp-dir={temp_dir}", f"--metrics-export-port={metrics_port}",
        f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}", "--include-log-monitor=false", "--disable-usage-stats", *args,
    ]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return RayNode(name, process, temp_dir, metrics_port)


@dataclass
class Cluster:
    head: RayNode
    worker: RayNode
    address: str
    base_url: str
    probe: subprocess.Popen
    state_dir: Path

    def snapshot(self) -> dict[str, Any]:
        assert self.probe.stdin is not None and self.probe.stdout is not None
        self.probe.stdin.write("?\n")
        self.probe.stdin.flush()
        return json.loads(self.probe.stdout.readline())

    def node_ids(self) -> dict[str, str]:
        """Node name ("head" or "worker") → Ray node id (told apart by their metrics ports)."""
        ports = {self.head.metrics_port: "head", self.worker.metrics_port: "worker"}
        return {ports[n["metrics_port"]]: nid for nid, n in self.snapshot()["nodes"].items() if n["alive"]}

    def placement(self) -> dict[str, tuple[str, str]]:
        """Every raygram host actor and Serve replica that is not dead → (state, node id)."""
        return {
            a["name"]: (a["state"], a["node"])
            for a in self.snapshot()["actors"]
            if a["state"] != "DEAD" and (a["name"].startswith(HOST_ACTORS) or "Replica" in a["cls"])
        }


def _wait_http(url: str, timeout: float) -> None:
    def up() -> bool:
        try:
            return httpx.get(url, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, bool, f"{url} answers", timeout)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    state_dir = tmp_path_factory.mktemp("raygram-cluster")
    gcs_port = free_port()
    address = f"127.0.0.1:{gcs_port}"
    http_port = free_port()
    settings = {
        **TEST_ENV,
        "STATE_DIR": str(state_dir),
        "RAY_ADDRESS": address,
        "RAY_NAMESPACE": f"raygram-cluster-{uuid.uuid4().hex[:8]}",
        "REDIS_PORT": str(free_port()),
        "GRAPH_BOLT_PORT": str(free_port()),
        "GRAPH_HTTP_PORT": str(free_port()),
        "HTTP_PORT": str(http_port),
        "MEDIA_URL_SECRET": uuid.uuid4().hex,  # shared by every node, as multi-node deployments need
        "RAY_SCHEDULING": "SPREAD",
        "INBOX_HOSTS": "2",
        "OUTBOX_HOSTS": "2",
        "CONSUMER_HOSTS": "2",
        "SERVE_REPLICAS": "2",
    }
    # Ray's token authentication, with a token of this cluster's own (not the user's ~/.ray/auth_token).
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex + uuid.uuid4().hex}
    # Not what the session's own local stack exported (its Serve ports and files, and the switch that keeps a
    # local Ray on 127.0.0.1, which would keep the worker node from joining): this cluster is a stack of its own.
    session_only = ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    base_env = {k: v for k, v in os.environ.items() if k not in session_only and not k.startswith("RAY_SERVE_")} | auth
    node_env = {**base_env, **settings, **fallback_proxy_ports()}
    node_env.pop("RAY_ADDRESS")
    started: list[RayNode] = []
    raygram: subprocess.Popen | None = None
    probe: subprocess.Popen | None = None
    try:
        head = start_node("head", ["--head", f"--port={gcs_port}", "--include-dashboard=false"], node_env,
                          state_dir / "ray-head.log")  # fmt: skip
        started.append(head)
        wait_for(lambda: (head.temp_dir / "ray_current_cluster").exists(), bool, "the head node is up", 90)
        # Serve runs a proxy on every node, bound to HTTP_PORT: on one machine the worker's needs a port of its own.
        # Likewise Serve's fallback proxy (8500 in every Ray by default: requests would reach other stacks').
        worker_env = {**node_env, "RAY_SERVE_WORKER_PROXY_HTTP_PORT": str(free_port()), **fallback_proxy_ports()}
        worker = start_node("worker", [f"--address={address}"], worker_env, state_dir / "ray-worker.log")
        started.append(worker)
        with (state_dir / "probe.log").open("ab") as err:
            probe = subprocess.Popen(
                [sys.executable, "-c", PROBE, address], env=base_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=err, text=True, start_new_session=True,
            )  # fmt: skip
        running = Cluster(head, worker, address, f"http://127.0.0.1:{http_port}", probe, state_dir)
        # Both nodes first: actors created while the worker is still joining would all land on the head.
        wait_for(lambda: len(running.node_ids()) == 2, bool, "both nodes joined", 90)
        with (state_dir / "raygram.log").open("ab") as out:
            raygram = subprocess.Popen(
                [str(BIN / "raygram"), "up"], env={**base_env, **settings}, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        _wait_http(f"{running.base_url}/health", 180)
        yield running
    finally:
        if raygram is not None and raygram.poll() is None:
            raygram.send_signal(signal.SIGTERM)  # stops the Redis and graph it started, by their pids
            try:
                raygram.wait(timeout=60)
            except subprocess.TimeoutExpired:
                kill_pids(process_tree(raygram.pid), signal.SIGKILL)
        if probe is not None:
            kill_pids([probe.pid], signal.SIGKILL)
            probe.wait(timeout=10)
        for node in reversed(started):
            node.stop()


@dataclass
class Account:
    id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def sign_up(http: httpx.Client, app_token: str) -> Account:
    name = f"c{uuid.uuid4().hex[:12]}"
    response = http.post(
        "/api/v1/accounts",
        headers={"Authorization": f"Bearer {app_token}"},
        data={"username": name, "email": f"{name}@example.org", "password": "correct horse battery", "agreement": "1"},
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    me = http.get("/api/v1/accounts/verify_credentials", headers={"Authorization": f"Bearer {token}"})
    return Account(me.json()["id"], token)


def app_token(http: httpx.Client) -> str:
    app = http.post("/api/v1/apps", data={"client_name": "cluster", "scopes": "read write follow push"}).json()
    grant = {"grant_type": "client_credentials", "client_id": app["client_id"], "client_secret": app["client_secret"],
             "scope": "read write follow push"}  # fmt: skip
    return http.post("/oauth/token", data=grant).json()["access_token"]


@dataclass
class Load:
    """Posts, likes and follows from a few threads; what was acknowledged, and when requests failed."""

    http_base: str
    authors: list[Account]
    readers: list[Account]
    posts: list[tuple[str, str]] = field(default_factory=list)  # (author id, status id)
    likes: list[tuple[Account, str]] = field(default_factory=list)
    follows: list[tuple[Account, str]] = field(default_factory=list)
    done: list[float] = field(default_factory=list)  # when each request finished, acknowledged or not
    failures: list[tuple[float, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _one(self, http: httpx.Client, rng: random.Random) -> None:
        kind = rng.choice(["post", "post", "like", "follow", "read"])
        try:
            if kind == "post":
                author = rng.choice(self.authors)
                r = http.post("/api/v1/statuses", headers=author.headers, data={"status": f"hello {uuid.uuid4()}"})
                if r.status_code == 200:
                    with self.lock:
                        self.posts.append((author.id, r.json()["id"]))
            elif kind == "like" and self.posts:
                reader = rng.choice(self.readers)
                _, status = rng.choice(self.posts)
                r = http.post(f"/api/v1/statuses/{status}/favourite", headers=reader.headers)
                if r.status_code == 200:
                    with self.lock:
                        self.likes.append((reader, status))
            elif kind == "follow":
                reader = rng.choice(self.readers)
                target = rng.choice(self.readers)
                if target is reader:
                    return
                r = http.post(f"/api/v1/accounts/{target.id}/follow", headers=reader.headers)
                if r.status_code == 200:
                    with self.lock:
                        self.follows.append((reader, target.id))
            else:
                r = http.get("/api/v1/timelines/home", headers=rng.choice(self.readers).headers)
            outcome = None if r.status_code == 200 else f"{kind} {r.status_code} {r.text[:120]}"
        except httpx.HTTPError as exc:
            outcome = f"{kind} {exc.__class__.__name__}: {exc}"
        with self.lock:
            now = time.monotonic()
            self.done.append(now)
            if outcome is not None:
                self.failures.append((now, outcome))

    def run(self, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=self.http_base, timeout=20) as http:
            while not self.stop.is_set():
                self._one(http, rng)
                time.sleep(0.15)


def png() -> bytes:
    """A small PNG no other upload shares (its pixels are random)."""
    from PIL import Image

    image = Image.frombytes("RGB", (32, 32), os.urandom(32 * 32 * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def ran_media_task(node: RayNode) -> bool:
    """Whether a worker of ``node`` ran a media task: Ray marks each task's start in its worker's log."""
    return any(
        b":task_name:process_media" in log.read_bytes() for log in node.temp_dir.glob("session_*/logs/worker-*.out")
    )


def process_media_on_both(http: httpx.Client, cluster: Cluster, uploader: Account) -> int:
    """Upload photos, two at a time, until media tasks ran on both nodes; how many it took."""
    uploaded = 0
    while not (ran_media_task(cluster.head) and ran_media_task(cluster.worker)):
        assert uploaded < 12, "media tasks ran on one node only"
        ids = []
        for _ in range(2):
            response = http.post(
                "/api/v2/media", headers=uploader.headers, files={"file": ("a.png", png(), "image/png")}
            )
            assert response.status_code in (200, 202), response.text
            ids.append(response.json()["id"])
        uploaded += 2
        for media in ids:
            wait_for(
                lambda m=media: http.get(f"/api/v1/media/{m}", headers=uploader.headers).status_code == 200,
                bool,
                f"media {media} processed",
                90,
            )
    return uploaded


def home_ids(http: httpx.Client, reader: Account) -> set[str]:
    seen: set[str] = set()
    params: dict[str, str] = {"limit": "40"}
    for _ in range(20):
        page = http.get("/api/v1/timelines/home", headers=reader.headers, params=params)
        if page.status_code != 200 or not page.json():
            break
        seen |= {s["id"] for s in page.json()}
        params["max_id"] = page.json()[-1]["id"]
    return seen


def test_losing_a_node_under_load_loses_nothing(cluster: Cluster) -> None:
    nodes = cluster.node_ids()
    placed = wait_for(
        lambda: (p := cluster.placement()) and {node for _, node in p.values()} == set(nodes.values()) and p,
        bool,
        "the actors on both nodes",
        60,
    )
    on_worker = sorted(name for name, (_, node) in placed.items() if node == nodes["worker"])
    assert any(name.startswith(HOST_ACTORS) for name in on_worker), placed

    with httpx.Client(base_url=cluster.base_url, timeout=30) as http:
        token = app_token(http)
        authors = [sign_up(http, token) for _ in range(3)]
        readers = [sign_up(http, token) for _ in range(4)]
        uploads = process_media_on_both(http, cluster, authors[0])
        for reader in readers:  # every reader follows every author before the load: their feeds are known
            for author in authors:
                assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.headers).status_code == 200

        load = Load(cluster.base_url, authors, readers)
        threads = [threading.Thread(target=load.run, args=(seed,), daemon=True) for seed in range(3)]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: len(load.posts) >= 5 and load.likes, bool, "the load is under way", 60)
            before = len(load.done)
            killed_at = time.monotonic()
            killed = cluster.worker.kill()
            assert len(killed) >= 3, killed  # the node: ray start, its raylet and worker processes

            def restarted_on_head() -> bool:
                alive = cluster.node_ids()
                placement = cluster.placement()
                return set(alive) == {"head"} and all(
                    state == "ALIVE" and node == alive["head"] for name, (state, node) in placement.items()
                ) and all(name in placement for name in on_worker if name.startswith(HOST_ACTORS))  # fmt: skip

            wait_for(restarted_on_head, bool, "the worker node's actors restarted on the head", 120)
            failover = time.monotonic() - killed_at
            acknowledged_at_failover = (len(load.posts), len(load.likes), len(load.follows))
            # The load goes on past the failover: writes acknowledged after it count as much.
            wait_for(lambda: len(load.posts) >= acknowledged_at_failover[0] + 5, bool, "posts after the failover", 60)
        finally:
            load.stop.set()
            for thread in threads:
                thread.join(timeout=30)
        assert len(load.done) > before + 10, "requests ran while the node was lost"
        late = [f for f in load.failures if f[0] > killed_at + FAILOVER_BOUND]
        early = [f for f in load.failures if f[0] < killed_at]
        print(
            f"\nfailover {failover:.1f}s; {len(load.done)} requests, {len(load.failures)} failed "
            f"({len(load.failures) - len(early)} after the kill); acknowledged {len(load.posts)} posts, "
            f"{len(load.likes)} likes, {len(load.follows)} follows; killed {len(killed)} processes; "
            f"on the worker: {on_worker}; media tasks on both nodes after {uploads} uploads; "
            f"failures (seconds after the kill): {[(round(at - killed_at, 1), what) for at, what in load.failures]}"
        )
        assert not early, early
        assert not late, late

        # Nothing acknowledged is lost: every post, like and follow reads back through the API.
        for _, status in load.posts:
            assert http.get(f"/api/v1/statuses/{status}", headers=readers[0].headers).status_code == 200, status
        for reader, status in load.likes:
            assert http.get(f"/api/v1/statuses/{status}", headers=reader.headers).json()["favourited"], status
        for reader, target in load.follows:
            found = http.get("/api/v1/accounts/relationships", headers=reader.headers, params={"id[]": target})
            assert found.json()[0]["following"], (reader.id, target)
        # Feeds converge: every reader's home holds every acknowledged post of the authors they follow.
        expected = {status for _, status in load.posts}
        for reader in readers:
            wait_for(
                lambda r=reader: expected <= home_ids(http, r), bool, f"{reader.id}'s home feed converged", 60, 1.0
            )

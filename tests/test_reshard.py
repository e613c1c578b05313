"""Shard and consumer counts change across a restart of the same state folder, and nothing is lost.

Inbox and outbox shards are routing only (users and authors map to shards by
a stable hash; timelines, outboxes and story trays are in Redis, keyed by
user), so their counts may change freely. Fan-out consumers are names in the
event stream's ``fanout`` group: a start with fewer of them must hand on the
events the retired names had taken and not acknowledged
(``actors.consumer.adopt_retired``), and remove the names.

The test runs ``raygram up`` three times on one state folder, as an operator
would (its own Redis and graph each time, so it does not use the session
stack), with different counts: inbox 2 → 5 → 3, outbox 1 → 3 → 2, fan-out
consumers 3 → 1 → 4 (on two hosts at the end). It joins a Ray of its own
(``ray start --head``, ``RAY_ADDRESS``) that keeps running across the starts, as
a cluster does: the detached host actors of one start are still there at the
next, and the next must replace those of other counts
(``actors.registry.replace_stale_hosts``). Before the first stop, the stream
consumers' process is frozen from outside (SIGSTOP) while posts are fanned
out, until the consumers that the second start retires hold events they took
and never acknowledged; posts, likes and follows made meanwhile were
acknowledged. The frozen process is killed only when the second start replaces
it. ``FANOUT_CLAIM_IDLE_MS`` and ``SWEEP_GRACE_SECONDS`` are ten minutes, so
only the adoption, not the re-claim of idle events nor the sweeper's re-emitting
of undelivered posts, can deliver those. After each restart every
acknowledged post, like and follow is there, every home feed becomes exactly
the posts of the authors its reader follows, and the group holds only the
configured consumers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from config import Settings
from launcher import free_port
from redis_store.events import STREAM
from tests.conftest import TEST_ENV
from tests.test_cluster import Account, RayNode, app_token, kill_pids, process_tree, sign_up, start_node
from tests.test_feed import follow, post
from tests.waiting import wait_for

BIN = Path(sys.executable).parent
GROUP = "fanout"
PHASES = (  # the counts of each start, in order
    {"INBOX_SHARDS": "2", "OUTBOX_SHARDS": "1", "FANOUT_WORKERS": "3"},
    {"INBOX_SHARDS": "5", "OUTBOX_SHARDS": "3", "FANOUT_WORKERS": "1", "INBOX_HOSTS": "2"},
    {"INBOX_SHARDS": "3", "OUTBOX_SHARDS": "2", "FANOUT_WORKERS": "4", "CONSUMER_HOSTS": "2"},
)


@dataclass
class World:
    """The accounts, and every write the API acknowledged."""

    celebrity: Account  # followed by every reader: past the test's celebrity threshold, read from its outbox
    authors: list[Account]
    readers: list[Account]
    follows: set[tuple[str, str]] = field(default_factory=set)  # (follower id, followed id)
    posts: dict[str, str] = field(default_factory=dict)  # status id → author id
    likes: set[tuple[str, str]] = field(default_factory=set)  # (account id, status id)

    def by_id(self) -> dict[str, Account]:
        return {a.id: a for a in (self.celebrity, *self.authors, *self.readers)}

    def expected_home(self, reader: Account) -> set[str]:
        followed = {target for follower, target in self.follows if follower == reader.id}
        return {status for status, author in self.posts.items() if author in followed}


class Deployment:
    """``raygram up`` on one state folder, fixed ports and a Ray of its own, started and stopped from outside."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.http_port, self.redis_port, gcs_port = free_port(), free_port(), free_port()
        self.settings = {
            **TEST_ENV,
            "STATE_DIR": str(state_dir),
            "RAY_ADDRESS": f"127.0.0.1:{gcs_port}",
            "REDIS_PORT": str(self.redis_port),
            "GRAPH_BOLT_PORT": str(free_port()),
            "GRAPH_HTTP_PORT": str(free_port()),
            "HTTP_PORT": str(self.http_port),
            "RAY_NAMESPACE": f"raygram-reshard-{uuid.uuid4().hex[:8]}",
            "SERVE_REPLICAS": "1",
            # Only adoption may hand on a retired consumer's events: not the re-claim of idle ones, nor the sweeper's
            # re-emitting of posts whose fan-out is not done.
            "FANOUT_CLAIM_IDLE_MS": "600000",
            "SWEEP_GRACE_SECONDS": "600",
        }
        # Not the session stack's settings or Serve ports, which a stack of the session exported to this process;
        # Ray's token authentication with a token of this Ray's own.
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k.lower() not in Settings.model_fields
            and k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
            and not k.startswith("RAY_SERVE_")
        } | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex + uuid.uuid4().hex}
        node_env = {**self.env, **self.settings}
        node_env.pop("RAY_ADDRESS")
        # Serve's fallback proxy on ports of this Ray's own: every Ray binds 8500 and 9500 otherwise.
        node_env["RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"] = str(free_port())
        node_env["RAY_SERVE_FALLBACK_PROXY_GRPC_PORT"] = str(free_port())
        self.ray: RayNode = start_node(
            "reshard", ["--head", f"--port={gcs_port}", "--include-dashboard=false"], node_env,
            state_dir.parent / "ray-head.log",
        )  # fmt: skip
        self.process: subprocess.Popen | None = None
        self.base_url = f"http://127.0.0.1:{self.http_port}"

    def start(self, counts: dict[str, str]) -> None:
        wait_for(lambda: (self.ray.temp_dir / "ray_current_cluster").exists(), bool, "Ray's head node is up", 90)
        (self.state_dir / "stack.json").unlink(missing_ok=True)
        with (self.state_dir.parent / "raygram.log").open("ab") as out:
            self.process = subprocess.Popen(
                [str(BIN / "raygram"), "up"],
                env={**self.env, **self.settings, **counts},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def deployed() -> bool:  # stack.json is written once the actors and the app of this start run
            assert self.process is not None and self.process.poll() is None, "raygram up exited"
            if not (self.state_dir / "stack.json").exists():
                return False
            try:
                return httpx.get(f"{self.base_url}/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(deployed, bool, "raygram up to deploy", timeout=240, interval=0.5)

    def stop(self) -> None:
        """SIGTERM ``raygram up``: it stops the Redis and graph it started; Ray, its actors and Serve stay up."""
        if self.process is None or self.process.poll() is not None:
            return
        pids = process_tree(self.process.pid)
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pass
        kill_pids([p for p in pids if Path(f"/proc/{p}").exists()], signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=10)

    def consumer_host_pids(self) -> list[int]:
        """The stream consumers' processes (Ray titles an actor's process ``ray::StreamConsumers``)."""
        found = []
        for pid in self.ray.pids():
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::StreamConsumers"):
                    found.append(pid)
            except OSError:
                continue
        return found

    def redis(self) -> redis.Redis:
        return redis.Redis(port=self.redis_port, decode_responses=True)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    (tmp_path / "state").mkdir()
    running = Deployment(tmp_path / "state")
    try:
        yield running
    finally:
        try:
            running.stop()
        finally:
            running.ray.stop()


def pending_by_consumer(client: redis.Redis) -> dict[str, int]:
    return {c["name"]: int(c["pending"]) for c in client.xinfo_consumers(STREAM, GROUP)}


def home_all(http: httpx.Client, reader: Account) -> set[str]:
    """Every post in the reader's home feed, page by page."""
    found: set[str] = set()
    params: dict[str, str] = {"limit": "40"}
    while True:
        response = http.get("/api/v1/timelines/home", headers=reader.headers, params=params)
        assert response.status_code == 200, response.text
        page = [s["id"] for s in response.json()]
        if not page:
            return found
        found |= set(page)
        params["max_id"] = min(page, key=int)


def write(http: httpx.Client, world: World, rounds: int) -> None:
    """Posts from every author and the celebrity, and a like of each by a reader, sent concurrently."""

    def one(i: int) -> None:
        author = [world.celebrity, *world.authors][i % (len(world.authors) + 1)]
        status = post(http, author, f"post {i} {uuid.uuid4().hex[:6]}")
        world.posts[status["id"]] = author.id
        liker = world.readers[i % len(world.readers)]
        response = http.post(f"/api/v1/statuses/{status['id']}/favourite", headers=liker.headers)
        assert response.status_code == 200, response.text
        world.likes.add((liker.id, status["id"]))

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(one, range(rounds)))


def check_everything(http: httpx.Client, client: redis.Redis, world: World, consumers: int) -> None:
    """Every acknowledged write is there, every home feed converges, and the group has only ``consumers`` names."""
    for status_id in world.posts:
        assert http.get(f"/api/v1/statuses/{status_id}").status_code == 200, f"post {status_id} lost"
    accounts = world.by_id()
    for account_id, status_id in world.likes:
        seen = http.get(f"/api/v1/statuses/{status_id}", headers=accounts[account_id].headers).json()
        assert seen["favourited"], f"the like of {status_id} by {account_id} lost"
    for follower, target in world.follows:
        relation = http.get(
            "/api/v1/accounts/relationships", params={"id[]": target}, headers=accounts[follower].headers
        ).json()
        assert relation[0]["following"], f"the follow of {target} by {follower} lost"
    for reader in world.readers:
        expected = world.expected_home(reader)
        wait_for(lambda r=reader: home_all(http, r), lambda seen, e=expected: seen == e,
                 f"the home feed of {reader.id}", timeout=90, interval=1.0)  # fmt: skip
    names = {f"fanout-{i}" for i in range(consumers)}
    wait_for(lambda: pending_by_consumer(client), lambda p: set(p) <= names and not any(p.values()),
             f"only {sorted(names)} in the group, nothing pending", timeout=60)  # fmt: skip


@pytest.mark.timeout(900)
def test_shard_and_consumer_counts_change_across_restarts_losing_nothing(deployment: Deployment) -> None:
    deployment.start(PHASES[0])
    with httpx.Client(base_url=deployment.base_url, timeout=60) as http:
        token = app_token(http)
        world = World(sign_up(http, token), [sign_up(http, token) for _ in range(2)],
                      [sign_up(http, token) for _ in range(4)])  # fmt: skip
        for i, reader in enumerate(world.readers):
            for target in (world.celebrity, world.authors[i % 2]):
                follow(http, reader, target)
                world.follows.add((reader.id, target.id))
            home_all(http, reader)  # an active reader: posts are pushed to their inbox from now on
        (pid,) = deployment.consumer_host_pids()
        # Fan posts out until the consumers the next start retires hold taken, unacknowledged events, then freeze
        # their process there, from outside.
        held: dict[str, int] = {}
        for rounds in range(1, 11):
            write(http, world, 12)
            os.kill(pid, signal.SIGSTOP)
            held = pending_by_consumer(deployment.redis())
            if held.get("fanout-1", 0) + held.get("fanout-2", 0) > 0:
                print(f"pending at the freeze, after {rounds} rounds of posts: {held}")
                break
            os.kill(pid, signal.SIGCONT)
        else:
            pytest.fail(f"the consumers to retire never held an event at the freeze: {held}")
        write(http, world, 6)  # acknowledged while nothing consumes
    deployment.stop()

    for phase, counts in enumerate(PHASES[1:], start=1):
        deployment.start(counts)
        assert pid not in deployment.consumer_host_pids(), "the frozen host of other counts was not replaced"
        client = deployment.redis()
        with httpx.Client(base_url=deployment.base_url, timeout=60) as http:
            check_everything(http, client, world, int(counts["FANOUT_WORKERS"]))
            reader, target = world.readers[phase], world.authors[(phase + 1) % 2]
            if (reader.id, target.id) not in world.follows:
                follow(http, reader, target)
                world.follows.add((reader.id, target.id))
            write(http, world, 8)
            check_everything(http, client, world, int(counts["FANOUT_WORKERS"]))
        deployment.stop()

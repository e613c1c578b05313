"""Feed benchmarks (docs/performance.md): fan-out, celebrity posts and reads, likes, against same-run baselines.

1. Fan-out: a post by an author with 10k active followers, timed through the
   ``FanoutWorker`` path (and end to end from the HTTP POST), as inbox writes
   per second against a raw pipelined-Redis loop making the same writes. The
   followers are written into the graph only; the first fan-out rebuilds the
   author's follower list in Redis from it (timed apart), the measured ones
   page that list.
2. Celebrity post: the POST round trip and the time until the outbox has it,
   for a celebrity with 1k followers and one with 100k: pull must not scale
   with the audience. Each is promoted by the real path: all followers but
   one are written into the graph, the last follows through the API, which
   crosses the threshold; the fan-out workers then fill the outbox and every
   follower's celebrity set before switching to pull (timed).
3. Home-read cost against the number of celebrities followed (0, 1, 10,
   50): each celebrity promoted by follows through the API, readers
   following ordinary authors too, reads sent open loop at a fixed rate;
   p50, p99 and CPU per read of the Serve and store processes.
4. Likes over HTTP with 32 connections, every request a new like, against the
   same baseline server making the same Redis writes (``bench/likes_bench.py``).

Home reads under a realistic mix, against the bare baseline, are ``bench/mix_bench.py``'s.

The stack is the one ``raygram up`` and the tests start (``stack.Stack``), on
free loopback ports in a temporary state folder; only what this run started
is stopped. Large follower sets are written straight into the graph, as the
tests do, because signing up 100k users over HTTP would take hours.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import ray
import redis.asyncio as aioredis

from actors.registry import ActorDirectory, fanout_name, group_by_shard, host_name
from bench.cpu import cpu_by_role, delta
from config import Settings
from graph.driver import GraphClient
from graph.follows import FollowGraph
from graph.statuses import new_status
from ids import SnowflakeGenerator
from redis_store.client import claim_id_generator, redis_from
from redis_store.followers import COMPLETE, FollowerLists, followers_key
from redis_store.timelines import active_key, celeb_ready_key, celebs_key, member, outbox_key, timeline_key
from stack import Stack, wait_for_http

FANOUT_FOLLOWERS = 10_000
FANOUT_RUNS = 3
CELEBRITY_SIZES = (1_000, 100_000)
CELEBRITY_POSTS = 20
PROMOTION_PATIENCE = 300.0  # seconds for the fan-out workers to promote an author
READ_COST_CELEBRITIES = (0, 1, 10, 50)  # celebrities followed, one group of readers each
READ_COST_READERS = 4  # readers per group, read in turn
READ_COST_AUTHORS = 20  # ordinary authors every reader follows (their inbox)
READ_COST_AUTHOR_POSTS = 5  # posts per ordinary author
READ_COST_CELEBRITY_POSTS = 25  # posts per celebrity: a full outbox page each (a page of 20, plus 5)
READ_COST_RATE = 20.0  # home reads per second, open loop
READ_COST_WARMUP_SECONDS = 2.0
READ_COST_SECONDS = 10.0
SEED_BATCH = 2_000  # followers per graph transaction
PROJECT_ROOT = Path(__file__).resolve().parent.parent  # where ``-m bench.baseline_server`` resolves

BENCH_ENV = {
    # Cheap password hashing: sign-up is set-up here, not what is measured.
    "ARGON2_TIME_COST": "1",
    "ARGON2_MEMORY_KIB": "8192",
    "ARGON2_PARALLELISM": "1",
    "SIGNUP_RATE_LIMIT": "100000",
    # Per account and hour: the likes benchmark has each user like hundreds of posts in seconds.
    "FAVOURITE_RATE_LIMIT": "10000000",
    # Low, so that the celebrity benchmarks promote authors through real follows; the fan-out author's
    # followers are written into the graph, with no follow through the API, so it stays ordinary.
    # Cache TTLs are the defaults: a benchmark must not keep records warmer than production does.
    "CELEBRITY_THRESHOLD": "100",
}


# -- figures -----------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def heading(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 76 - len(title)), flush=True)


def row(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<44} {value:>16}  {note}".rstrip(), flush=True)


def verdict(ok: bool) -> str:
    return "goal met" if ok else "goal MISSED"


# -- the running stack and seeding -------------------------------------------


@dataclass
class Account:
    id: int
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Bench:
    """Clients on the running stack plus the helpers that seed it."""

    stack: Stack
    http: aiohttp.ClientSession
    redis: aioredis.Redis
    graph: GraphClient
    ids: SnowflakeGenerator
    app_token: str = ""
    seeded: list[int] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return self.stack.settings

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    async def _json(self, method: str, path: str, **kwargs: object) -> dict:
        async with self.http.request(method, self.base_url + path, **kwargs) as response:  # type: ignore[arg-type]
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"{method} {path}: {response.status} {body[:300]!r}")
            return orjson.loads(body)

    async def sign_up(self, prefix: str) -> Account:
        """A real account over HTTP, as a client would make it, so that it has a bearer token."""
        if not self.app_token:
            app = await self._json("POST", "/api/v1/apps", data={"client_name": "bench", "scopes": "read write"})
            token = await self._json(
                "POST",
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": app["client_id"],
                    "client_secret": app["client_secret"],
                    "scope": "read write",
                },
            )
            self.app_token = token["access_token"]
        username = f"{prefix}{uuid.uuid4().hex[:10]}"
        created = await self._json(
            "POST",
            "/api/v1/accounts",
            headers={"Authorization": f"Bearer {self.app_token}"},
            data={
                "username": username,
                "email": f"{username}@bench.example",
                "password": "bench password 1",
                "agreement": "true",
            },
        )
        me = await self._json(
            "GET", "/api/v1/accounts/verify_credentials", headers={"Authorization": f"Bearer {created['access_token']}"}
        )
        return Account(int(me["id"]), username, created["access_token"])

    async def post(self, author: Account, text: str) -> dict:
        return await self._json("POST", "/api/v1/statuses", headers=author.headers, data={"status": text})

    async def seed_followers(self, author_id: int, count: int, *, active: bool) -> list[int]:
        """``count`` follower accounts made straight in the graph, ``SEED_BATCH`` per transaction."""
        ids = [self.ids.next_id() for _ in range(count)]
        for start in range(0, count, SEED_BATCH):
            await self.graph.write(
                """
                MATCH (a:Account {id: $author})
                UNWIND $ids AS fid
                CREATE (f:Account {id: fid, username: 'seed' + toString(fid), username_key: 'seed' + toString(fid),
                                   email_key: toString(fid) + '@seed.example', followers_count: 0,
                                   following_count: 1, statuses_count: 0, celebrity: false, created_at: 0})
                CREATE (f)-[:FOLLOWS {id: fid, created_at: 0}]->(a)
                """,
                author=author_id,
                ids=ids[start : start + SEED_BATCH],
            )
        await self.graph.write(
            "MATCH (a:Account {id: $id}) SET a.followers_count = a.followers_count + $n", id=author_id, n=count
        )
        if active:
            for start in range(0, count, SEED_BATCH):
                await self.redis.mset({active_key(i): 1 for i in ids[start : start + SEED_BATCH]})
        return ids

    async def status_in_graph(self, author_id: int, text: str, *, delivered: bool) -> int:
        """A post written the way ``StatusService.create`` writes it, without its event (no fan-out yet)."""
        status_id = self.ids.next_id()
        record = new_status(status_id, author_id, int(time.time() * 1000), text=text, delivered=delivered)
        await self.graph.write(
            """
            MATCH (a:Account {id: $status.account_id})
            CREATE (s:Status) SET s = $status
            SET a.statuses_count = a.statuses_count + 1, a.last_status_at = $status.created_at
            """,
            status=record,
        )
        return status_id

    async def inboxes_holding(self, users: list[int], status_id: int) -> int:
        """How many of ``users``' inboxes hold ``status_id`` (pipelined ZSCORE)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.zscore(timeline_key(user), member(status_id))
            return sum(score is not None for score in await pipe.execute())


@contextmanager
def running_bench_stack() -> Iterator[Stack]:
    """The stack the tests use, on free loopback ports and in a temporary state folder, with the benchmark's
    settings in the environment: started, and stopped afterwards (only what it started, even half-started)."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="raygram-bench-") as state_dir:
        stack = Stack.isolated(Path(state_dir), "bench", BENCH_ENV)
        try:
            stack.start_services()
            stack.start_ray(dashboard=False, num_cpus=4)
            stack.deploy()
            wait_for_http(f"{stack.settings.base_url}/health")
            print(f"  (stack up in {time.perf_counter() - started:.0f}s at {stack.settings.base_url})", flush=True)
            yield stack
        finally:
            stack.stop()


# -- 1. fan-out ----------------------------------------------------------------


async def raw_fanout(redis: aioredis.Redis, followers: list[int], status_id: int, settings: Settings) -> float:
    """The same inbox writes with nothing around them: ZADD + trim per user, pipelined by the same groups.

    Pages and shard groups match what ``FanoutWorker`` sends each ``InboxShard``,
    so both sides make the same number of round trips of the same size.
    """
    cap, page = settings.timeline_max, settings.follower_page_size
    entry = member(status_id)

    async def write(users: list[int]) -> None:
        async with redis.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.zadd(timeline_key(user), {entry: 0})
                pipe.zremrangebyrank(timeline_key(user), 0, -cap - 1)
            await pipe.execute()

    started = time.perf_counter()
    for start in range(0, len(followers), page):
        groups = group_by_shard(followers[start : start + page], settings.inbox_shards)
        await asyncio.gather(*(write(users) for users in groups.values()))
    return time.perf_counter() - started


async def wait_until(check: Callable[[], Awaitable[bool]], patience: float, interval: float) -> float:
    """Seconds until ``check`` holds, polling every ``interval``; raises after ``patience`` seconds."""
    started = time.perf_counter()
    while not await check():
        if time.perf_counter() - started > patience:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)
    return time.perf_counter() - started


async def fanout_bench(bench: Bench) -> None:
    heading(f"1. fan-out: one post to {FANOUT_FOLLOWERS:,} active followers")
    settings = bench.settings
    author = await bench.sign_up("fanout")
    seeding = time.perf_counter()
    followers = await bench.seed_followers(author.id, FANOUT_FOLLOWERS, active=True)
    print(f"  (seeded {len(followers):,} followers in {time.perf_counter() - seeding:.1f}s)", flush=True)
    worker = ray.get_actor(host_name(fanout_name(0), settings), namespace=settings.ray_namespace)

    # The first fan-out finds no follower list: it pages the graph and rebuilds the list on the way.
    status_id = await bench.status_in_graph(author.id, "fan-out that rebuilds the list", delivered=False)
    started = time.perf_counter()
    await worker.fan_out.remote(status_id, author.id)
    rebuilding = time.perf_counter() - started
    if await bench.redis.zscore(followers_key(author.id), COMPLETE) is None:
        raise RuntimeError("the first fan-out did not leave a complete follower list")
    list_bytes = await bench.redis.memory_usage(followers_key(author.id), samples=0)

    # Inside: the FanoutWorker's own path (list paging, one deliver per shard and page, mark delivered).
    inside: list[float] = []
    for run in range(FANOUT_RUNS + 1):  # the first run warms the worker's connections
        status_id = await bench.status_in_graph(author.id, f"fan-out inside {run}", delivered=False)
        started = time.perf_counter()
        await worker.fan_out.remote(status_id, author.id)
        elapsed = time.perf_counter() - started
        holding = await bench.inboxes_holding(followers, status_id)
        if holding != len(followers):
            raise RuntimeError(f"fan-out reached {holding} of {len(followers)} inboxes")
        if run:
            inside.append(elapsed)

    # End to end: from the POST until the worker acknowledged every shard (the post's ``delivered`` flag).
    end_to_end: list[float] = []
    for run in range(FANOUT_RUNS):
        started = time.perf_counter()
        status_id = int((await bench.post(author, f"fan-out over HTTP {run}"))["id"])

        async def delivered(status_id: int = status_id) -> bool:
            rows = await bench.graph.read("MATCH (s:Status {id: $id}) RETURN s.delivered AS d", id=status_id)
            return bool(rows and rows[0]["d"])

        await wait_until(delivered, patience=120, interval=0.01)
        end_to_end.append(time.perf_counter() - started)
        holding = await bench.inboxes_holding(followers, status_id)
        if holding != len(followers):
            raise RuntimeError(f"fan-out reached {holding} of {len(followers)} inboxes")

    # Where the time goes: the follower pages alone (from the list, and from the graph as before the list),
    # and the shard deliveries alone.
    lists, graph_follows = FollowerLists(bench.redis, settings.follower_list_days), FollowGraph(bench.graph)
    from_list: list[float] = []
    from_graph: list[float] = []
    delivering: list[float] = []
    inboxes = ActorDirectory(settings).inboxes  # inboxes[k]: the actor hosting inbox shard k
    for _ in range(FANOUT_RUNS):
        for source, times in ((lists.page, from_list), (graph_follows.follower_ids, from_graph)):
            started, after, pages = time.perf_counter(), 0, []
            while page := await source(author.id, after, settings.follower_page_size):
                pages.append(page)
                after = page[-1]
                if len(page) < settings.follower_page_size:
                    break
            times.append(time.perf_counter() - started)
            if sum(map(len, pages)) != len(followers):
                raise RuntimeError(f"paging found {sum(map(len, pages))} of {len(followers)} followers")
        fake = bench.ids.next_id()
        started = time.perf_counter()
        for page in pages:
            groups = group_by_shard(page, settings.inbox_shards)
            await asyncio.gather(*(inboxes[k].deliver.remote([(fake, None)], users) for k, users in groups.items()))
        delivering.append(time.perf_counter() - started)

    raw = [await raw_fanout(bench.redis, followers, bench.ids.next_id(), settings) for _ in range(FANOUT_RUNS)]

    n = len(followers)
    inside_rate, raw_rate = n / median(inside), n / median(raw)
    row("first fan-out, rebuilding the follower list", f"{rebuilding * 1000:,.0f} ms", f"{n / rebuilding:,.0f}/s")
    row("  the list in Redis (MEMORY USAGE)", f"{list_bytes / 1e6:,.2f} MB", f"{list_bytes / n:,.0f} bytes/follower")
    row("FeedManager.distribute (median)", f"{median(inside) * 1000:,.0f} ms", f"{inside_rate:,.0f} inbox writes/s")
    row("POST → delivered to all (median)", f"{median(end_to_end) * 1000:,.0f} ms", f"{n / median(end_to_end):,.0f}/s")
    row("  of which: follower pages from the Redis list", f"{median(from_list) * 1000:,.0f} ms")
    row("  (the same pages from the graph)", f"{median(from_graph) * 1000:,.0f} ms")
    row(
        "  of which: InboxShard.deliver calls",
        f"{median(delivering) * 1000:,.0f} ms",
        f"{n / median(delivering):,.0f}/s",
    )
    row("baseline: raw pipelined Redis (median)", f"{median(raw) * 1000:,.0f} ms", f"{raw_rate:,.0f} inbox writes/s")
    ratio = inside_rate / raw_rate
    row("ratio fan-out / baseline", f"{ratio:.0%}", f"goal >= 80 %: {verdict(ratio >= 0.8)}")


# -- 2. celebrity posts ----------------------------------------------------------


async def follow(bench: Bench, follower: Account, followee_id: int) -> None:
    """A follow through the API, as a client makes it (the follow service checks the threshold)."""
    answer = await bench._json("POST", f"/api/v1/accounts/{followee_id}/follow", headers=follower.headers)
    if answer.get("following") is not True:
        raise RuntimeError(f"follow of {followee_id} not acknowledged: {answer}")


async def wait_promoted(bench: Bench, author_ids: list[int]) -> float:
    """Seconds until the fan-out workers finished promoting every author (``celeb:ready``, set last)."""

    async def ready() -> bool:
        return all(await asyncio.gather(*(bench.redis.exists(celeb_ready_key(a)) for a in author_ids)))

    return await wait_until(ready, patience=PROMOTION_PATIENCE, interval=0.02)


async def celebrity_bench(bench: Bench) -> None:
    sizes = " and ".join(f"{n:,}" for n in CELEBRITY_SIZES)
    threshold = bench.settings.celebrity_threshold
    heading(f"2. celebrity post: {sizes} followers, promoted by a follow, {CELEBRITY_POSTS} posts each")
    fan = await bench.sign_up("fan")
    celebrities: dict[int, Account] = {}
    for size in CELEBRITY_SIZES:
        author = await bench.sign_up(f"celeb{size}")
        seeding = time.perf_counter()
        await bench.seed_followers(author.id, size - 1, active=False)
        print(f"  (seeded {size - 1:,} followers in {time.perf_counter() - seeding:.1f}s)", flush=True)
        # The last follower comes through the API: the follow crosses the threshold and the real promotion
        # runs (outbox filled, every follower's celebrity set, then ``celeb:ready``).
        started = time.perf_counter()
        await follow(bench, fan, author.id)
        answered = time.perf_counter() - started
        promoted = await wait_promoted(bench, [author.id]) + answered
        if not await bench.redis.sismember(celebs_key(fan.id), author.id):
            raise RuntimeError(f"promotion of {author.username} left the follower's celebrity set without them")
        row(f"{size:>7,} followers: follow → promoted (threshold {threshold})", f"{promoted:.1f} s")
        celebrities[size] = author

    round_trip: dict[int, list[float]] = {size: [] for size in CELEBRITY_SIZES}
    to_outbox: dict[int, list[float]] = {size: [] for size in CELEBRITY_SIZES}
    for index in range(CELEBRITY_POSTS + 2):  # two warm-up rounds; sizes interleaved so drift hits both alike
        for size, author in celebrities.items():
            started = time.perf_counter()
            status_id = int((await bench.post(author, f"celebrity post {index}"))["id"])
            answered = time.perf_counter() - started

            async def in_outbox(author_id: int = author.id, status_id: int = status_id) -> bool:
                return await bench.redis.zscore(outbox_key(author_id), member(status_id)) is not None

            await wait_until(in_outbox, patience=30, interval=0.001)
            if index >= 2:
                round_trip[size].append(answered)
                to_outbox[size].append(time.perf_counter() - started)

    for size in CELEBRITY_SIZES:
        row(
            f"{size:>7,} followers: POST round trip (median, p90)",
            f"{median(round_trip[size]) * 1000:.1f} ms",
            f"p90 {percentile(round_trip[size], 0.9) * 1000:.1f} ms",
        )
        row(
            f"{size:>7,} followers: POST → in outbox (median, p90)",
            f"{median(to_outbox[size]) * 1000:.1f} ms",
            f"p90 {percentile(to_outbox[size], 0.9) * 1000:.1f} ms",
        )
    small, large = CELEBRITY_SIZES[0], CELEBRITY_SIZES[-1]
    for label, figures in (("round trip", round_trip), ("to outbox", to_outbox)):
        ratio = median(figures[large]) / median(figures[small])
        row(f"ratio {large:,} / {small:,} ({label})", f"{ratio:.2f}x", f"goal <= 1.2x: {verdict(ratio <= 1.2)}")


# -- 3. home-read cost against followed celebrities ----------------------------------


async def accounts_in_graph(bench: Bench, count: int) -> list[int]:
    """``count`` accounts written straight into the graph, with every property sign-up gives one; their ids."""
    authors = [bench.ids.next_id() for _ in range(count)]
    now = int(time.time() * 1000)
    await bench.graph.write(
        """
        UNWIND $ids AS aid
        CREATE (:Account {id: aid, username: 'author' + toString(aid), username_key: 'author' + toString(aid),
                          email_key: toString(aid) + '@author.example', display_name: 'An Author', note: 'bench',
                          locked: false, bot: false, discoverable: true, created_at: $now, last_active_at: $now,
                          last_status_at: $now, followers_count: 0, following_count: 0, statuses_count: 0,
                          celebrity: false})
        """,
        ids=authors,
        now=now,
    )
    return authors


async def authors_in_graph(bench: Bench, count: int, posts_each: int) -> list[int]:
    """``count`` accounts written straight into the graph, each with ``posts_each`` posts (already delivered),
    with the counters ``StatusService.create`` keeps."""
    authors = await accounts_in_graph(bench, count)
    posts = [
        new_status(
            bench.ids.next_id(),
            author,
            int(time.time() * 1000),
            text=f"Post {index} by {author}: a caption of ordinary length, with a line break\nand an <angle>.",
            delivered=True,
        )
        for index in range(posts_each)
        for author in authors
    ]
    for start in range(0, len(posts), SEED_BATCH):
        await bench.graph.write(
            """
            UNWIND $rows AS r
            MATCH (a:Account {id: r.account_id})
            CREATE (s:Status) SET s = r
            SET a.statuses_count = a.statuses_count + 1, a.last_status_at = r.created_at
            """,
            rows=posts[start : start + SEED_BATCH],
        )
    return authors


async def follow_in_graph(bench: Bench, follower: int, followees: list[int]) -> None:
    """Follow edges and counters as ``FollowGraph.follow`` writes them, for authors that stay ordinary."""
    now = int(time.time() * 1000)
    await bench.graph.write(
        """
        MATCH (r:Account {id: $follower})
        UNWIND $follows AS pair
        MATCH (a:Account {id: pair[0]})
        CREATE (r)-[:FOLLOWS {id: pair[1], created_at: $now}]->(a)
        SET r.following_count = r.following_count + 1, a.followers_count = a.followers_count + 1
        """,
        follower=follower,
        follows=[[a, bench.ids.next_id()] for a in followees],
        now=now,
    )


async def fixed_rate_reads(
    url: str, readers: list[Account], rate: float, warmup: float, seconds: float
) -> tuple[list[float], int, dict[str, float]]:
    """GETs of ``url`` open loop at ``rate``/s, readers in turn; (latencies from the due time, errors, CPU by role)
    of the measured ``seconds`` after ``warmup``."""
    latencies: list[float] = []
    errors = 0

    async def one(session: aiohttp.ClientSession, reader: Account, due: float, counted: bool) -> None:
        nonlocal errors
        async with session.get(url, headers=reader.headers) as response:
            await response.read()
            if counted:
                if response.status == 200:
                    latencies.append(time.perf_counter() - due)
                else:
                    errors += 1

    async with aiohttp.ClientSession() as session:
        tasks = []
        start = time.perf_counter()
        cpu_before: dict[str, float] = {}
        total = int((warmup + seconds) * rate)
        for n in range(total):
            due = start + n / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if n == int(warmup * rate):
                cpu_before = cpu_by_role()
            tasks.append(asyncio.create_task(one(session, readers[n % len(readers)], due, n >= warmup * rate)))
        await asyncio.sleep(max(0.0, start + total / rate - time.perf_counter()))
        cpu = delta(cpu_before, cpu_by_role())
        await asyncio.gather(*tasks)
    return latencies, errors, cpu


async def celebrity_reads_bench(bench: Bench) -> None:
    counts = READ_COST_CELEBRITIES
    heading(f"3. home read against followed celebrities ({', '.join(map(str, counts))}), promoted by follows")
    threshold = bench.settings.celebrity_threshold
    celebrities = await authors_in_graph(bench, max(counts), READ_COST_CELEBRITY_POSTS)
    ordinary = await authors_in_graph(bench, READ_COST_AUTHORS, READ_COST_AUTHOR_POSTS)
    for celebrity in celebrities:  # one short of the threshold: the readers' follows through the API cross it
        await bench.seed_followers(celebrity, threshold - 1, active=False)
    readers = {count: [await bench.sign_up(f"reader{count}_") for _ in range(READ_COST_READERS)] for count in counts}
    for group in readers.values():
        for reader in group:
            await follow_in_graph(bench, reader.id, ordinary)
    started = time.perf_counter()

    async def follow_all(reader: Account, followees: list[int]) -> None:
        for celebrity in followees:  # one at a time per reader: concurrent follows by one account deadlock the graph
            await follow(bench, reader, celebrity)

    await asyncio.gather(
        *(follow_all(reader, celebrities[:count]) for count, group in readers.items() for reader in group)
    )
    promoted = await wait_promoted(bench, celebrities)
    follows = sum(count * len(group) for count, group in readers.items())
    print(
        f"  ({follows} follows through the API promoted {len(celebrities)} authors past {threshold} followers "
        f"in {time.perf_counter() - started:.1f}s, the last promotion {promoted:.1f}s after the last follow)",
        flush=True,
    )
    path = bench.base_url + "/api/v1/timelines/home"
    for count, group in readers.items():  # the first read rebuilds each timeline from the graph
        for reader in group:
            async with bench.http.get(path, headers=reader.headers) as response:
                page = orjson.loads(await response.read())
                if response.status != 200 or len(page) != 20:
                    raise RuntimeError(f"first home read: {response.status} {str(page)[:300]}")
            merged = await bench.redis.scard(celebs_key(reader.id))
            if merged != count:
                raise RuntimeError(f"a reader following {count} celebrities merges {merged} outboxes")

    figures = {}
    for count, group in readers.items():
        latencies, errors, cpu = await fixed_rate_reads(
            path, group, READ_COST_RATE, READ_COST_WARMUP_SECONDS, READ_COST_SECONDS
        )
        reads = max(len(latencies) + errors, 1)
        serving = sum(cpu.get(role, 0.0) for role in ("serve replica", "serve proxy", "haproxy")) * 1000 / reads
        stores = sum(cpu.get(role, 0.0) for role in ("redis", "graph")) * 1000 / reads
        figures[count] = serving + stores
        row(
            f"{count:>2} celebrities followed: p50, p99",
            f"{percentile(latencies, 0.5) * 1000:.1f} ms",
            f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, {len(latencies)} reads at {READ_COST_RATE:g}/s"
            + (f", {errors} errors" if errors else ""),
        )
        row(
            "   CPU per read: Serve (replicas, proxies), stores",
            f"{serving:.2f} ms",
            f"+ {stores:.2f} ms Redis and graph",
        )
    base, top = min(counts), max(counts)
    ratio = figures[top] / max(figures[base], 1e-9)
    row(f"CPU per read, {top} celebrities / {base}", f"{ratio:.2f}x", "the merge reads one outbox page per celebrity")


# -- the load harness of the likes benchmark ------------------------------------------------


SERVING_ROLES = ("serve replica", "serve proxy", "haproxy", "baseline server", "redis")


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    cpu: dict[str, float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def cpu_ms_per_request(self, role: str) -> float:
        return self.cpu.get(role, 0.0) * 1000 / max(self.requests, 1)


# Sends one request on the session and returns its status, or None when there is no more work to send.
Send = Callable[[aiohttp.ClientSession], Awaitable[int | None]]


async def run_load(send: Send, connections: int, warmup: float, seconds: float) -> LoadResult:
    """``connections`` clients each sending one request after another: a warm-up, then ``seconds`` measured."""
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(until: float, latencies: list[float], errors: list[int]) -> None:
            while time.perf_counter() < until:
                started = time.perf_counter()
                status = await send(session)
                if status is None:
                    return
                if status != 200:
                    errors.append(status)
                latencies.append(time.perf_counter() - started)

        warm_until = time.perf_counter() + warmup
        await asyncio.gather(*(client(warm_until, [], []) for _ in range(connections)))
        latencies: list[float] = []
        errors: list[int] = []
        cpu_before = cpu_by_role()
        started = time.perf_counter()
        await asyncio.gather(*(client(started + seconds, latencies, errors) for _ in range(connections)))
        elapsed = time.perf_counter() - started
        cpu = delta(cpu_before, cpu_by_role())
    return LoadResult(len(latencies), len(errors), elapsed, latencies, cpu)


# -- running them ------------------------------------------------------------------


async def run_all(stack: Stack, names: list[str]) -> None:
    settings = stack.settings
    redis = redis_from(settings)
    graph = GraphClient(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            bench = Bench(stack, http, redis, graph, await claim_id_generator(redis))
            for name in names:
                await BENCHMARKS[name](bench)
    finally:
        await graph.close()
        await redis.aclose()


async def likes_bench(bench: Bench) -> None:
    """Imported when run: ``bench.likes_bench`` builds on this module, so importing it at the top would be circular."""
    from bench.likes_bench import likes_bench as run

    await run(bench)


BENCHMARKS: dict[str, Callable[[Bench], Awaitable[None]]] = {
    "fanout": fanout_bench,
    "celebrity": celebrity_bench,
    "celebrity-reads": celebrity_reads_bench,
    "likes": likes_bench,
}


def main(argv: list[str] | None = None) -> None:
    """Run the named benchmarks (``python -m bench feed celebrity``: one of them while tuning), or all."""
    names = list(argv if argv is not None else sys.argv[1:]) or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    print(f"feed benchmarks: {os.cpu_count()} CPUs, Ray {ray.__version__}", flush=True)
    started = time.perf_counter()
    with running_bench_stack() as stack:
        asyncio.run(run_all(stack, names))
    print(f"\nfeed benchmarks done in {time.perf_counter() - started:.0f}s", flush=True)


if __name__ == "__main__":
    main()

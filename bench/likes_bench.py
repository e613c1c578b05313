"""Likes per second over HTTP at 32 connections, against a bare aiohttp server making the same Redis writes.

Every request is a real new like: each side gets its own posts, and the
(post, user) pairs are handed out once each, so no request is a no-op
``already liked`` answer. Posts and users are made over HTTP (``Bench.post``,
``Bench.sign_up``) so the graph and caches hold what production holds; before
measuring, every post is read once through raygram (status, author and token
caches warm) and every user's favourites are loaded (``GET /api/v1/favourites``),
so neither side pays a cold start the other does not.

The baseline (``bench/baseline_server.py``) does the like's irreducible work:
token lookup, cached status and author, ``LikeStore.change`` (same Lua, same
event), the same entity. Its likes go through the same event stream, so the
persister and notifier work behind both alike; the stream is drained between
the two runs so that one side's backlog does not eat the other's CPU.

Afterwards the posts' like counters in Redis must add up to the number of
likes answered: proof that each answered request changed state.

Then the cost of durable likes: the like call alone (``LikeStore.change``:
the Lua step and its event) against a scratch server run with ``appendfsync
everysec`` and then ``always`` (raygram's), each answered as soon as Redis
replies or only after ``WAITAOF`` (``redis_store.durability``), at one and at
``LIKE_CONNECTIONS`` concurrent callers. Under ``everysec`` the pinned Valkey
holds ``WAITAOF`` until its next 100 ms tick (and then does not fsync).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import orjson
import redis.asyncio as aioredis

from bench.feed_bench import (
    PROJECT_ROOT,
    SERVING_ROLES,
    Account,
    Bench,
    LoadResult,
    heading,
    percentile,
    row,
    run_load,
)
from launcher import ManagedProcess, free_port, port_is_open
from redis_store.client import connect
from redis_store.events import STREAM
from redis_store.likes import LikeStore, count_key
from redis_store.server import server_binary
from stack import wait_for_http

LIKE_USERS = 64
LIKE_AUTHORS = 4  # each posts 2 × LIKE_POSTS / LIKE_AUTHORS, under the default post rate limit (300/window)
LIKE_POSTS = 300  # per side: 64 × 300 = 19,200 new pairs each
LIKE_CONNECTIONS = 32
LIKE_WARMUP_SECONDS = 3.0
LIKE_SECONDS = 10.0
SEED_CONCURRENCY = 8  # sign-ups and posts in flight while seeding
DRAIN_PATIENCE = 120.0  # seconds to wait for the persister and notifier to catch up between runs
EVENT_GROUPS = ("likes", "notify")  # consumer groups that do work per like
CALL_SECONDS = 3.0  # per mode and concurrency, for the like call alone
CALL_USERS = 64
CALL_ID_BASE = 9_000_000_000_000_000_000  # ids no account or post has: these likes touch only their own keys


Pair = tuple[int, Account]  # (post id, liker)
T = TypeVar("T")


def favourite_url(base_url: str, status_id: int) -> str:
    return f"{base_url}/api/v1/statuses/{status_id}/favourite"


async def bounded_gather(jobs: list[Coroutine[Any, Any, T]], limit: int) -> list[T]:
    """``asyncio.gather`` with at most ``limit`` coroutines running: seeding should not swamp two replicas."""
    gate = asyncio.Semaphore(limit)

    async def gated(job: Coroutine[Any, Any, T]) -> T:
        async with gate:
            return await job

    return await asyncio.gather(*(gated(job) for job in jobs))


async def seed(bench: Bench) -> tuple[list[Account], list[int], list[int]]:
    """Likers, and two disjoint sets of posts (raygram's, the baseline's), all made over HTTP."""
    first = await bench.sign_up("liker")  # makes the app token once, before the concurrent sign-ups
    others = [bench.sign_up("liker") for _ in range(LIKE_USERS - 1 + LIKE_AUTHORS)]
    people = [first, *await bounded_gather(others, SEED_CONCURRENCY)]
    users, authors = people[:LIKE_USERS], people[LIKE_USERS:]
    texts = [f"Like bench post {i}: a caption of ordinary length, with a line break\nand an <angle>." for i in range(2)]
    posts = await bounded_gather(
        [bench.post(authors[i // 2 % LIKE_AUTHORS], texts[i % 2]) for i in range(2 * LIKE_POSTS)], SEED_CONCURRENCY
    )
    ids = [int(p["id"]) for p in posts]
    return users, ids[0::2], ids[1::2]  # interleaved, so both sets have the same authors, texts' length and ages


async def warm(bench: Bench, users: list[Account], posts: list[int]) -> None:
    """What a user's first like would otherwise load: caches of every post and author, tokens, favourites."""

    async def read(path: str, user: Account) -> None:
        async with bench.http.get(bench.base_url + path, headers=user.headers) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")

    jobs = [read(f"/api/v1/statuses/{p}", users[i % len(users)]) for i, p in enumerate(posts)]
    jobs += [read("/api/v1/favourites", user) for user in users]
    await bounded_gather(jobs, SEED_CONCURRENCY)


async def like_load(
    base_url: str, pairs: Iterator[Pair], connections: int, warmup: float, seconds: float
) -> tuple[LoadResult, int, bool]:
    """``connections`` clients each liking one new pair after another: a warm-up, then ``seconds`` measured.

    Returns the measured result, how many likes were answered 200 in all
    (warm-up included, for the counter check), and whether the pairs ran out.
    """
    answered = 0
    ran_out = False

    async def like_next(session: aiohttp.ClientSession) -> int | None:
        nonlocal answered, ran_out
        pair = next(pairs, None)
        if pair is None:
            ran_out = True
            return None
        status_id, user = pair
        async with session.post(favourite_url(base_url, status_id), headers=user.headers) as response:
            await response.read()
            answered += response.status == 200
            return response.status

    result = await run_load(like_next, connections, warmup, seconds)
    return result, answered, ran_out


async def drain_events(bench: Bench) -> float:
    """Seconds until the like persister and the notifier have acked every event (bounded by DRAIN_PATIENCE)."""
    started = time.perf_counter()
    while time.perf_counter() - started < DRAIN_PATIENCE:
        groups = {g["name"]: g for g in await bench.redis.xinfo_groups(STREAM)}
        behind = [
            name
            for name in EVENT_GROUPS
            if name in groups and (groups[name]["pending"] or (groups[name].get("lag") or 0))
        ]
        if not behind:
            return time.perf_counter() - started
        await asyncio.sleep(0.1)
    print(f"  (event consumers still behind after {DRAIN_PATIENCE:.0f}s; continuing)", flush=True)
    return time.perf_counter() - started


async def like_once(bench: Bench, url: str, user: Account) -> dict:
    async with bench.http.post(url, headers=user.headers) as response:
        body = await response.read()
        if response.status != 200:
            raise RuntimeError(f"POST {url}: {response.status} {body[:300]!r}")
        return orjson.loads(body)


def shape(value: object) -> object:
    """The keys of a JSON body, nested: what two servers' answers must share to be compared fairly."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    return None


@asynccontextmanager
async def baseline_server(bench: Bench) -> AsyncIterator[str]:
    """The bare aiohttp + Redis server on a free port, stopped on the way out; yields its base URL."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.baseline_server",
        "--port",
        str(port),
        "--redis-url",
        bench.settings.redis_url,
        "--base-url",
        bench.base_url,
        "--stream-maxlen",
        str(bench.settings.event_stream_max),
        cwd=PROJECT_ROOT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(wait_for_http, f"{url}/health", 30)
        yield url
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


def print_result(name: str, result: LoadResult) -> None:
    latency = result.latencies
    row(
        name,
        f"{result.rate:,.0f} req/s",
        f"p50 {percentile(latency, 0.5) * 1000:.1f} ms, p99 {percentile(latency, 0.99) * 1000:.1f} ms"
        + (f", {result.errors} errors" if result.errors else ""),
    )
    spent = ", ".join(
        f"{role} {result.cpu_ms_per_request(role):.2f}"
        for role in sorted(result.cpu, key=lambda r: -result.cpu[r])
        if result.cpu_ms_per_request(role) >= 0.01
    )
    if spent:
        print(f"    CPU ms per request: {spent}", flush=True)


async def likes_bench(bench: Bench) -> None:
    heading(f"4. likes: {LIKE_CONNECTIONS} connections, {LIKE_SECONDS:.0f}s, every request a new like")
    seeding = time.perf_counter()
    users, ours_posts, base_posts = await seed(bench)
    await warm(bench, users, ours_posts + base_posts)
    pairs_per_side = len(users) * len(ours_posts)
    print(
        f"  ({len(users)} likers, {LIKE_AUTHORS} authors, 2 × {LIKE_POSTS} posts: {pairs_per_side:,} new pairs per"
        f" side; seeded in {time.perf_counter() - seeding:.1f}s)",
        flush=True,
    )
    sides = {
        "raygram via Serve": itertools.product(ours_posts, users),
        "baseline aiohttp + Redis": itertools.product(base_posts, users),
    }
    results: dict[str, LoadResult] = {}
    async with baseline_server(bench) as baseline_url:
        urls = {"raygram via Serve": bench.base_url, "baseline aiohttp + Redis": baseline_url}
        bodies = {}
        for name, pairs in sides.items():  # one like each, from each side's own pairs
            status_id, user = next(pairs)
            bodies[name] = await like_once(bench, favourite_url(urls[name], status_id), user)
        ours_body, base_body = bodies.values()
        same = shape(ours_body) == shape(base_body)
        state = all(b["favourited"] is True and b["favourites_count"] == 1 for b in bodies.values())
        print(
            f"  (raygram and baseline like bodies: {'same keys' if same else 'DIFFERENT keys (unfair comparison)'}"
            f"{'' if state else '; UNEXPECTED favourited/count'})",
            flush=True,
        )
        for name, pairs in sides.items():
            drained = await drain_events(bench)
            print(f"  (event consumers caught up in {drained:.1f}s before the {name.split()[0]} run)", flush=True)
            result, answered, ran_out = await like_load(
                urls[name], pairs, LIKE_CONNECTIONS, LIKE_WARMUP_SECONDS, LIKE_SECONDS
            )
            results[name] = result
            posts = ours_posts if name.startswith("raygram") else base_posts
            counted = sum(int(v or 0) for v in await bench.redis.mget([count_key(p) for p in posts]))
            expected = answered + 1  # the shape check's like
            check = "" if counted == expected else f" (MISMATCH: {counted:,} counted, {expected:,} answered)"
            note = " (RAN OUT of new pairs: the measured window was cut short)" if ran_out else ""
            print_result(name, result)
            print(f"    new likes counted in Redis: {counted:,} of {expected:,} answered{check}{note}", flush=True)
        drained = await drain_events(bench)
        print(f"  (event consumers caught up {drained:.1f}s after the baseline run)", flush=True)

    ours, base = results["raygram via Serve"], results["baseline aiohttp + Redis"]
    row("ratio raygram / baseline (req/s)", f"{ours.rate / base.rate:.0%}", "no goal stated in the issue")
    ours_cpu = sum(ours.cpu_ms_per_request(role) for role in SERVING_ROLES)
    base_cpu = sum(base.cpu_ms_per_request(role) for role in SERVING_ROLES)
    row(
        "serving CPU per like, raygram / baseline",
        f"{ours_cpu:.2f} / {base_cpu:.2f} ms",
        f"raygram spends {ours_cpu / base_cpu:.1f}x the baseline's CPU per like",
    )
    await durability_cost(bench)


@asynccontextmanager
async def scratch_redis(fsync_policy: str) -> AsyncIterator[aioredis.Redis]:
    """A throwaway server like the embedded one (``redis_store.server``) but for its ``appendfsync`` policy."""
    with tempfile.TemporaryDirectory(prefix="raygram-fsync-") as folder:
        port = free_port()
        server = ManagedProcess(f"redis ({fsync_policy})", Path(folder) / "redis.pid", Path(folder) / "redis.log")
        argv = [server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--dir", folder, "--save", ""]
        server.start([*argv, "--appendonly", "yes", "--appendfsync", fsync_policy])
        try:
            server.wait_ready(lambda: port_is_open("127.0.0.1", port), 30)
            redis = connect(f"redis://127.0.0.1:{port}/0")
            try:
                yield redis
            finally:
                await redis.aclose()
        finally:
            server.stop()


async def like_call_load(
    bench: Bench, redis: aioredis.Redis, wait: bool, connections: int, posts: Iterator[int]
) -> LoadResult:
    """New likes through ``LikeStore.change`` alone, each by one of ``CALL_USERS`` made-up users of a new post."""
    store = LikeStore(redis, bench.settings.model_copy(update={"redis_wait_fsync": wait}))
    users = [CALL_ID_BASE + i for i in range(CALL_USERS)]
    for user in users:
        await store.load_favourites(user, [], complete=True)

    async def like_one(_: aiohttp.ClientSession) -> int:
        status_id = next(posts)
        user = users[status_id % CALL_USERS]
        event = {"account_id": user, "status_id": status_id, "status_account_id": user, "like_id": bench.ids.next_id()}
        changed, _count = await store.change("like.created", user, status_id, event["like_id"], 0, event)
        return 200 if changed is True else 500

    return await run_load(like_one, connections, 0.5, CALL_SECONDS)


async def durability_cost(bench: Bench) -> None:
    """What a durable like costs: the fsync policy, and WAITAOF behind the call, on a server of its own."""
    heading("4b. the like call alone (Lua + event) by appendfsync policy, answered at once or after WAITAOF")
    posts = itertools.count(CALL_ID_BASE + CALL_USERS)  # a new post for every like
    for policy in ("everysec", "always"):
        async with scratch_redis(policy) as redis:
            for connections in (1, LIKE_CONNECTIONS):
                for wait in (False, True):
                    result = await like_call_load(bench, redis, wait, connections, posts)
                    callers = f"{connections} caller{'s' if connections > 1 else ''}"
                    print_result(f"{policy}, {callers}, {'WAITAOF' if wait else 'no wait'}", result)

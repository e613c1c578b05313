"""Tag-timeline benchmark (docs/performance.md): reads at 100k tagged posts, against the raw Redis read.

Seeding: ``AUTHORS`` accounts and ``POSTS`` public posts written straight into
the graph in batches (each with one to three tags drawn from a Zipf over
``TAGS`` tags, so one tag is hot; a third marked as having media), their
``TAGGED`` edges, and the same posts indexed into the tag and public
timelines through ``DiscoveryStore.add_posts``, the call the discovery
indexer makes. 100k posts over HTTP would take hours; the read path measured
is the real one.

Measured, open loop at ``RATE`` requests per second for ``SECONDS`` after a
warm-up (latency counted from each request's due time, so queueing shows),
anonymous GETs of ``/api/v1/timelines/tag/:hashtag`` in a mix: the hot tag
at random ``max_id`` cursors inside its timeline, a mid tag, ``any[]`` of
three tags, ``all[]`` of two, ``only_media``. Status and account caches keep
their default TTLs, so deep random pages miss and go to the graph, as
production reads would.

Baseline, same run, same schedule: the raw Redis read of the same page
(``ZREVRANGEBYLEX`` of the tag's key, one round trip) from this process, the
floor any implementation answering from Redis pays. Goal: tag-timeline p99 <=
50 ms.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import ray
import redis.asyncio as aioredis

from bench.feed_bench import SEED_BATCH, Bench, authors_in_graph, heading, percentile, row, running_bench_stack, verdict
from graph.driver import GraphClient
from graph.statuses import new_status
from redis_store.client import claim_id_generator, redis_from
from redis_store.discovery import DiscoveryStore, PublicPost
from redis_store.timelines import member, tag_timeline_key
from stack import Stack

POSTS = 100_000
AUTHORS = 500
TAGS = 1_000
RATE = 20.0
WARMUP_SECONDS = 5.0
SECONDS = 30.0
GOAL_P99_MS = 50.0
PAGE = 20


def tag_name(rank: int) -> str:
    return f"bench{rank}"


def tags_of_post(rng: random.Random) -> list[str]:
    """One to three distinct tags, Zipf over ``TAGS`` (rank 0 is the hot tag)."""
    weights = [1 / (r + 1) for r in range(TAGS)]
    picked = rng.choices(range(TAGS), weights=weights, k=rng.randint(1, 3))
    return [tag_name(r) for r in dict.fromkeys(picked)]


async def seed(bench: Bench, store: DiscoveryStore, rng: random.Random) -> None:
    started = time.perf_counter()
    authors = await authors_in_graph(bench, AUTHORS, 0)
    await bench.graph.write(
        "UNWIND $tags AS t CREATE (:Tag {name: t.name, id: t.id, followers_count: 0})",
        tags=[{"name": tag_name(r), "id": bench.ids.next_id()} for r in range(TAGS)],
    )
    now = int(time.time() * 1000)
    for start in range(0, POSTS, SEED_BATCH):
        records = []
        for _ in range(min(SEED_BATCH, POSTS - start)):
            status_id = bench.ids.next_id()
            records.append(
                new_status(
                    status_id,
                    rng.choice(authors),
                    now,
                    text="a caption with its tags",
                    tags=tags_of_post(rng),
                    delivered=True,
                )
            )
        await bench.graph.write(
            """
            UNWIND $rows AS r
            CREATE (s:Status) SET s = r
            WITH s, r UNWIND r.tags AS name MATCH (t:Tag {name: name}) CREATE (s)-[:TAGGED]->(t)
            """,
            rows=records,
        )
        await store.add_posts(
            [PublicPost(r["id"], r["account_id"], r["created_at"], r["tags"], rng.random() < 1 / 3) for r in records]
        )
    sizes = [await bench.redis.zcard(tag_timeline_key(tag_name(r))) for r in (0, 10, 100)]
    row("seeded posts", f"{POSTS:,}", f"in {time.perf_counter() - started:.0f}s")
    row("hot / 10th / 100th tag timeline sizes", " / ".join(f"{n:,}" for n in sizes), "(capped)")


Request = Callable[[], Awaitable[bool]]


async def open_loop(requests: list[Request]) -> tuple[dict[int, float], int]:
    """Send ``requests`` in turn at ``RATE``/s; (latency in ms from the due time by request index, for those after
    the warm-up, errors)."""
    latencies: dict[int, float] = {}
    errors = 0

    async def one(n: int, due: float) -> None:
        nonlocal errors
        ok = await requests[n]()
        if n >= WARMUP_SECONDS * RATE:
            if ok:
                latencies[n] = (time.perf_counter() - due) * 1000
            else:
                errors += 1

    tasks = []
    start = time.perf_counter()
    for n in range(len(requests)):
        due = start + n / RATE
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(n, due)))
    await asyncio.gather(*tasks)
    return latencies, errors


async def cursors(redis: aioredis.Redis, tag: str, count: int, rng: random.Random) -> list[str | None]:
    members = await redis.zrange(tag_timeline_key(tag), 0, -1)
    return [None] + [str(int(m)) for m in rng.sample(members, min(count, len(members)))]


async def measure(bench: Bench, rng: random.Random) -> None:
    hot, mid, other = tag_name(0), tag_name(10), tag_name(1)
    hot_cursors = await cursors(bench.redis, hot, 2000, rng)
    shapes: list[tuple[str, str, dict[str, object]]] = [
        ("hot tag", hot, {}),
        ("hot tag", hot, {}),
        ("10th tag", mid, {}),
        ("any[] of 3 tags", hot, {"any[]": [other, mid]}),
        ("all[] of 2 tags", hot, {"all[]": other}),
        ("only_media", hot, {"only_media": "true"}),
    ]
    url = bench.base_url + "/api/v1/timelines/tag/"
    total = int((WARMUP_SECONDS + SECONDS) * RATE)
    plan = [(shapes[n % len(shapes)], rng.choice(hot_cursors)) for n in range(total)]

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:

        def http_request(tag: str, params: dict[str, object], cursor: str | None) -> Request:
            query = {**params, "limit": PAGE, **({"max_id": cursor} if cursor else {})}

            async def send() -> bool:
                async with session.get(url + tag, params=query) as response:
                    await response.read()
                    return response.status == 200

            return send

        def raw_request(tag: str, cursor: str | None) -> Request:
            hi = f"({member(int(cursor))}" if cursor else "+"

            async def send() -> bool:
                await bench.redis.zrevrangebylex(tag_timeline_key(tag), hi, "-", 0, PAGE)
                return True

            return send

        by_index, errors = await open_loop([http_request(tag, params, c) for (_, tag, params), c in plan])
        raw_by_index, _ = await open_loop([raw_request(tag, c) for (_, tag, _), c in plan])
    served, raw = list(by_index.values()), list(raw_by_index.values())
    p99, raw_p99 = percentile(served, 0.99), percentile(raw, 0.99)
    load = os.getloadavg()
    row("offered rate", f"{RATE:.0f} req/s", f"{SECONDS:.0f}s measured, open loop")
    row("tag timeline p50 / p99", f"{percentile(served, 0.5):.1f} / {p99:.1f} ms", f"{errors} errors")
    for label in dict.fromkeys(label for label, _, _ in shapes):
        mine = [ms for n, ms in by_index.items() if plan[n][0][0] == label]
        row(f"  {label} p50 / p99", f"{percentile(mine, 0.5):.1f} / {percentile(mine, 0.99):.1f} ms")
    row("raw Redis page read p50 / p99", f"{percentile(raw, 0.5):.2f} / {raw_p99:.2f} ms", "baseline, same run")
    row("load average (1/5/15 min)", f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    row("goal: tag timeline p99 <= 50 ms", verdict(p99 <= GOAL_P99_MS and errors == 0))


async def run(stack: Stack) -> None:
    settings = stack.settings
    redis = redis_from(settings)
    graph = GraphClient(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database)
    rng = random.Random(20261130)
    try:
        async with aiohttp.ClientSession() as http:
            bench = Bench(stack, http, redis, graph, await claim_id_generator(redis))
            store = DiscoveryStore(redis, settings.tag_timeline_max, settings.public_timeline_max)
            heading(f"tag timelines at {POSTS:,} tagged posts ({TAGS:,} tags, Zipf)")
            await seed(bench, store, rng)
            await measure(bench, rng)
    finally:
        await graph.close()
        await redis.aclose()


def main(argv: list[str] | None = None) -> None:
    del argv  # no options
    print(f"tag-timeline benchmark: {os.cpu_count()} CPUs, Ray {ray.__version__}", flush=True)
    started = time.perf_counter()
    with running_bench_stack() as stack:
        asyncio.run(run(stack))
    print(f"\ntag-timeline benchmark done in {time.perf_counter() - started:.0f}s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

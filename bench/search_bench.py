"""Status search at 100k indexed posts: p50/p99 over HTTP, against the same queries asked of the engine directly.

Set-up (not measured): ``AUTHORS`` accounts and ``POSTS`` posts are written
straight into the graph in bulk (making 100k posts over HTTP would take
hours), with captions of 5-15 words drawn from a Zipf-like vocabulary of
``VOCABULARY`` words, 80 % public, 10 % unlisted, 10 % private. The index is
then built in bulk by the production path: the search host's rebuild from
the graph (``actors.search``), timed. The reader is a real account (signed
up over HTTP) following half the authors, so a private post counts for it
when its author is one of those.

Measured: ``CONNECTIONS`` clients each sending ``GET /api/v2/search?type=
statuses`` one after another for ``SECONDS`` after a warm-up, cycling through
``QUERIES``: common, middling and rare words, and pairs of words. Each answer
is a full page of hydrated posts, as a client gets it.

Baseline, same run: the same queries, with the same visibility rule and the
same followed authors, asked of the engine itself (``PostIndex.search`` on
the same index file, in this process, one after another): the engine's own
cost, against which raygram's p99 is printed as a ratio. The difference is
the rest of a request: HTTP, the replica, the viewer's follows from the graph,
the actor call, hydration.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time

import aiohttp
import ray

from actors.post_index import PostIndex, StatusQuery
from actors.registry import SEARCH_INDEXER, host_name
from actors.search import index_path
from bench.feed_bench import Account, Bench, accounts_in_graph, heading, percentile, row, run_load, running_bench_stack
from graph.driver import GraphClient
from graph.follows import FollowGraph
from graph.statuses import new_status
from redis_store.client import claim_id_generator, redis_from
from services.search import FOLLOWED_LIMIT
from stack import Stack

POSTS = 100_000
AUTHORS = 200
VOCABULARY = 5_000
BATCH = 2_000  # posts per graph transaction
CONNECTIONS = 4
WARMUP_SECONDS = 3.0
SECONDS = 20.0
LIMIT = 20
SEED = 12
# Word ranks: the commonest word is in most captions, a rank-3000 word in a few dozen.
QUERIES = (
    [[rank] for rank in range(0, 10)]
    + [[rank] for rank in range(100, 110)]
    + [[rank] for rank in range(3000, 3010)]
    + [[rank, 40 + rank] for rank in range(0, 10)]
)


def vocabulary() -> list[str]:
    """Pronounceable made-up words, the same every run."""
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    chooser = random.Random(SEED)
    words: set[str] = set()
    while len(words) < VOCABULARY:
        words.add("".join(chooser.choice(syllables) for _ in range(chooser.randint(2, 4))))
    return sorted(words, key=lambda w: (len(w), w))


def query_texts(words: list[str]) -> list[str]:
    return [" ".join(words[rank] for rank in ranks) for ranks in QUERIES]


async def seed_graph(bench: Bench, words: list[str]) -> tuple[list[int], float]:
    """The authors and ``POSTS`` posts, in bulk; (author ids, seconds spent)."""
    started = time.perf_counter()
    now = int(time.time() * 1000)
    authors = await accounts_in_graph(bench, AUTHORS)
    chooser = random.Random(SEED)
    weights = [1 / (rank + 1) for rank in range(VOCABULARY)]
    visibilities = ["public"] * 8 + ["unlisted", "private"]
    for start in range(0, POSTS, BATCH):
        rows = [
            new_status(
                bench.ids.next_id(),
                authors[i % AUTHORS],
                now,
                text=" ".join(chooser.choices(words, weights, k=chooser.randint(5, 15))),
                visibility=chooser.choice(visibilities),
                delivered=True,
            )
            for i in range(start, min(POSTS, start + BATCH))
        ]
        await bench.graph.write("UNWIND $rows AS r CREATE (s:Status) SET s = r", rows=rows)
    await bench.graph.write(
        "MATCH (a:Account) WHERE a.id IN $ids SET a.statuses_count = $each", ids=authors, each=POSTS // AUTHORS
    )
    return authors, time.perf_counter() - started


async def follow_in_graph(bench: Bench, reader: Account, followees: list[int]) -> None:
    await bench.graph.write(
        """
        UNWIND $follows AS pair
        MATCH (r:Account {id: $reader}), (a:Account {id: pair[0]})
        CREATE (r)-[:FOLLOWS {id: pair[1], created_at: 0}]->(a)
        SET r.following_count = r.following_count + 1, a.followers_count = a.followers_count + 1
        """,
        reader=reader.id,
        follows=[[a, bench.ids.next_id()] for a in followees],
    )


async def http_search(bench: Bench, reader: Account, queries: list[str]) -> tuple[list[float], int, int]:
    """(latencies, requests answered 200, errors) of the measured window."""
    cycle = itertools.cycle(queries)
    url = f"{bench.base_url}/api/v2/search"

    async def send(session: aiohttp.ClientSession) -> int:
        params = {"q": next(cycle), "type": "statuses", "limit": str(LIMIT)}
        async with session.get(url, params=params, headers=reader.headers) as response:
            await response.read()
            return response.status

    result = await run_load(send, CONNECTIONS, WARMUP_SECONDS, SECONDS)
    return result.latencies, result.requests - result.errors, result.errors


def engine_search(index: PostIndex, queries: list[StatusQuery], seconds: float) -> list[float]:
    """The same queries asked of the engine directly, one after another, for ``seconds``."""
    latencies: list[float] = []
    cycle = itertools.cycle(queries)
    for query in queries:  # warm-up: each query once
        index.search(query)
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        query = next(cycle)
        started = time.perf_counter()
        index.search(query)
        latencies.append(time.perf_counter() - started)
    return latencies


async def search_bench(bench: Bench) -> None:
    heading(f"status search at {POSTS:,} indexed posts: HTTP against the engine alone")
    words = vocabulary()
    authors, seeded = await seed_graph(bench, words)
    reader = await bench.sign_up("searcher")
    await follow_in_graph(bench, reader, authors[: AUTHORS // 2])
    row("posts written to the graph (bulk)", f"{POSTS:,}", f"{seeded:.0f}s")

    settings = bench.settings
    host = ray.get_actor(host_name(SEARCH_INDEXER, settings), namespace=settings.ray_namespace)
    started = time.perf_counter()
    indexed = await host.rebuild_search_index.remote()
    took = time.perf_counter() - started
    row("index rebuilt from the graph", f"{indexed:,} posts", f"{took:.1f}s, {indexed / took:,.0f} posts/s")

    queries = query_texts(words)
    followed = await FollowGraph(bench.graph).followed_authors(reader.id, FOLLOWED_LIMIT)
    direct = [StatusQuery(q, reader.id, followed, limit=LIMIT) for q in queries]
    index = PostIndex(index_path(settings))
    try:
        short = [q.text for q in direct if len(index.search(q)) < LIMIT]
        if short:
            print(f"  ({len(short)} of {len(queries)} queries match fewer than {LIMIT} posts: {', '.join(short[:3])}…)")
        load = os.getloadavg()
        latencies, answered, errors = await http_search(bench, reader, queries)
        engine = await asyncio.to_thread(engine_search, index, direct, SECONDS)
    finally:
        index.close()
    end = os.getloadavg()
    ours_p99, base_p99 = percentile(latencies, 0.99) * 1000, percentile(engine, 0.99) * 1000
    row(
        f"raygram GET /api/v2/search, {CONNECTIONS} connections",
        f"p99 {ours_p99:.1f} ms",
        f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, {answered / SECONDS:,.0f} req/s"
        + (f", {errors} errors" if errors else ""),
    )
    row(
        "engine alone (PostIndex.search), one caller",
        f"p99 {base_p99:.2f} ms",
        f"p50 {percentile(engine, 0.5) * 1000:.2f} ms, {len(engine) / SECONDS:,.0f} queries/s",
    )
    row("ratio raygram / engine (p99)", f"{ours_p99 / base_p99:.0f}x", "no goal stated in the issue")
    print(f"  (load average {load[0]:.1f} before the HTTP run, {end[0]:.1f} after the engine run)", flush=True)


def main(argv: list[str] | None = None) -> None:
    print(f"search benchmark: {os.cpu_count()} CPUs, Ray {ray.__version__}", flush=True)
    started = time.perf_counter()
    with running_bench_stack() as stack:
        asyncio.run(_run(stack))
    print(f"\nsearch benchmark done in {time.perf_counter() - started:.0f}s", flush=True)


async def _run(stack: Stack) -> None:
    settings = stack.settings
    redis = redis_from(settings)
    graph = GraphClient(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            await search_bench(Bench(stack, http, redis, graph, await claim_id_generator(redis)))
    finally:
        await graph.close()
        await redis.aclose()


if __name__ == "__main__":
    main()

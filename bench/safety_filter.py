"""What the home feed's block/mute filter costs a read: ``python -m bench.safety_filter``.

Starts a Redis and a graph of its own (no Ray: the filter runs in the API
process), gives a viewer blocks and mutes in the graph, and times
``FeedManager.filter_home`` over a hydrated page of 20 posts:

* off: the page only deduplicated (what ``filter_home`` did before blocks and mutes);
* on: the relations look-up (one Redis ``HMGET`` of the viewer's cached relations) plus the predicates;
* graph: the same facts asked of the graph per page (``relations_among``), what the cache saves.

Each is the median of many runs, in microseconds per page, on whatever else
the machine is doing (say how loaded it was when you quote it).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from actors.registry import ActorDirectory
from graph.driver import GraphClient, wait_for_graph
from graph.follows import FollowGraph
from graph.relations import RelationGraph
from graph.schema import apply_schema
from graph.statuses import StatusGraph, new_status
from graph.tags import TagGraph
from redis_store.client import redis_from
from redis_store.durability import Durability
from redis_store.followers import FollowerLists
from redis_store.relations import RelationCache
from redis_store.stories import StoryStore
from redis_store.timelines import TimelineStore
from services.feed import FeedManager, dedupe_reblogs
from services.hydrate import HydratedStatus
from services.relations import RelationService
from stack import Stack

PAGE = 20


async def timed(run, rounds: int) -> float:
    """Median microseconds of ``run()`` over ``rounds`` calls (after a warm-up)."""
    for _ in range(20):
        await run()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        await run()
        samples.append((time.perf_counter() - start) * 1e6)
    return statistics.median(samples)


async def measure(stack: Stack, relations_count: int, rounds: int) -> dict[str, float]:
    settings = stack.settings
    redis = redis_from(settings)
    graph = GraphClient(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database)
    try:
        ids = iter(range(10**15, 10**16))
        viewer, authors, others = next(ids), [next(ids) for _ in range(10)], [next(ids) for _ in range(relations_count)]
        await graph.write(
            "UNWIND $ids AS i CREATE (:Account {id: i, username: 'u' + toString(i), username_key: 'u' + toString(i)})",
            ids=[viewer, *authors, *others],
        )
        relation_graph = RelationGraph(graph)
        for n, other in enumerate(others):  # half blocked, half muted: none of them on the page
            if n % 2:
                await relation_graph.block(viewer, other, next(ids), 0)
            else:
                await relation_graph.mute(viewer, other, True, 0, next(ids), 0)
        relations = RelationService(relation_graph, RelationCache(redis))
        feed = FeedManager(
            settings,
            TimelineStore.from_settings(settings, redis),
            FollowGraph(graph),
            FollowerLists(redis, settings.follower_list_days),
            StatusGraph(graph),
            ActorDirectory(settings),
            relations,
            StoryStore(redis, settings.story_tray_max, Durability.configured(settings)),
            TagGraph(graph),
        )
        page = [
            HydratedStatus(new_status(next(ids), authors[i % len(authors)], 0), {"id": authors[i % len(authors)]})
            for i in range(PAGE)
        ]
        page_accounts = {a for post in page for a in (post.status["account_id"],)}

        async def off() -> None:
            dedupe_reblogs(page)

        async def on() -> None:
            assert len(await feed.filter_home(viewer, page)) == PAGE

        async def graph_per_page() -> None:
            await relation_graph.relations_among(viewer, sorted(page_accounts), 0)

        return {
            "off": await timed(off, rounds),
            "on": await timed(on, rounds),
            "graph": await timed(graph_per_page, max(rounds // 10, 50)),
        }
    finally:
        await graph.close()
        await redis.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relations", type=int, default=200, help="blocks + mutes the viewer has")
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as state:
        stack = Stack.isolated(Path(state), "safety", {})
        try:
            stack.start_services()
            s = stack.settings
            wait_for_graph(s.neo4j_uri, s.neo4j_user, s.neo4j_password, s.neo4j_database, timeout=90)
            apply_schema(s.neo4j_uri, s.neo4j_user, s.neo4j_password, s.neo4j_database)
            figures = asyncio.run(measure(stack, args.relations, args.rounds))
        finally:
            stack.stop()
    print(f"home page of {PAGE}, viewer with {args.relations} blocks/mutes (median µs per page)")
    for name, value in figures.items():
        print(f"  {name:6s} {value:9.1f}")


if __name__ == "__main__":
    main()

"""Redis' own figures (``INFO``) of the configured Redis: its one server, or every primary of a Redis Cluster.

On a cluster a plain ``INFO`` answers for whichever node the client picks, so
memory read that way is one node's share. Operators' figures (``raygram status``,
the sampled ``raygram_redis_memory_bytes``: ``actors.sampler``) are the sum over
the primaries, where the data lives (replicas hold copies), and per node where
one node running full matters on its own.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from redis_store.slots import is_cluster


async def primaries_info(redis: aioredis.Redis, section: str | None = None) -> dict[str, dict[str, Any]]:
    """``INFO [section]`` of every primary, by its address (``host:port``); one entry for a single server."""
    if not is_cluster(redis):
        kwargs = redis.connection_pool.connection_kwargs
        address = f"{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}"
        return {address: await redis.info(section)}
    primaries = redis.get_primaries()  # type: ignore[attr-defined]
    replies = await redis.info(section, target_nodes=RedisCluster.PRIMARIES)  # type: ignore[call-arg]
    if len(primaries) == 1:  # one target node: redis-py answers with its reply alone
        return {primaries[0].name: replies}
    return dict(replies)


def memory_totals(infos: dict[str, dict[str, Any]]) -> tuple[int, int]:
    """(used_memory, maxmemory) summed over the nodes; the limit is 0 (none) if any node has none."""
    used = sum(int(info["used_memory"]) for info in infos.values())
    limits = [int(info.get("maxmemory", 0)) for info in infos.values()]
    return used, 0 if not limits or 0 in limits else sum(limits)

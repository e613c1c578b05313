"""Redis connections (redis-py's asyncio client; hiredis parses replies when installed).

One server (``REDIS_URL``) or a Redis Cluster (``REDIS_CLUSTER_URLS``): the
rest of the code is the same for both, because every key it uses carries the
hash tag of the user or post it belongs to (``redis_store.slots``), every Lua
script gets all its keys in ``KEYS`` and those keys share one tag, and work
that spans users is split per slot (``slots.by_slot``).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

from config import Settings
from redis_store.worker_lease import LeasedGenerator, lease_generator


def _patience(fail_fast: bool) -> dict[str, Any]:
    """Background actors are patient (about 7 s of retries). Serving processes ask for ``fail_fast``: a request
    must learn within about a second that Redis is down, to degrade or answer 503 (``services.availability``); the
    socket timeout stays above the longest wait a command asks for (WAITAOF)."""
    if fail_fast:
        retry, timeouts = Retry(ExponentialBackoff(cap=0.25, base=0.05), retries=2), (1.0, 3.0)
    else:
        retry, timeouts = Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=8), (None, None)
    return {
        "decode_responses": True,
        "health_check_interval": 30,
        "retry": retry,
        "socket_connect_timeout": timeouts[0],
        "socket_timeout": timeouts[1],
    }


def connect(url: str, *, fail_fast: bool = False) -> aioredis.Redis:
    """A client of one server that reconnects and retries when the server restarts or a connection drops.

    Retried writes are safe: every multi-step write is a Lua script that checks
    its own preconditions, so running it twice does what running it once did.
    """
    return aioredis.Redis.from_url(url, retry_on_error=[ConnectionError, TimeoutError], **_patience(fail_fast))


def connect_cluster(urls: str, *, fail_fast: bool = False) -> RedisCluster:
    """A client of the Redis Cluster whose nodes ``urls`` (comma-separated) name; it finds the other nodes and
    follows slots as they move (MOVED/ASK), with the same patience as ``connect``."""
    nodes = []
    for url in (u.strip() for u in urls.split(",") if u.strip()):
        parsed = aioredis.connection.parse_url(url)
        nodes.append(ClusterNode(parsed.get("host", "127.0.0.1"), int(parsed.get("port", 6379))))
    return RedisCluster(startup_nodes=nodes, **_patience(fail_fast))


def redis_from(settings: Settings, *, fail_fast: bool = False) -> aioredis.Redis:
    """The configured Redis: the cluster when ``REDIS_CLUSTER_URLS`` is set, else the server at ``REDIS_URL`` (the
    embedded one's port when that is empty).

    Typed as ``Redis``: ``RedisCluster`` answers the same commands, and the code relies on no other.
    """
    if settings.redis_cluster_urls:
        return connect_cluster(settings.redis_cluster_urls, fail_fast=fail_fast)  # type: ignore[return-value]
    return connect(settings.redis_url or f"redis://127.0.0.1:{settings.redis_port}/0", fail_fast=fail_fast)


async def claim_id_generator(redis: aioredis.Redis) -> LeasedGenerator:
    """A snowflake generator with a worker id no other live process holds (a lease; see ``worker_lease``)."""
    return await lease_generator(redis)

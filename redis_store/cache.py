"""Read-aside caches of graph records (statuses, accounts), short TTL, invalidated on change.

Keys: ``<prefix>:<id>`` (``status:42``, ``account:42``), a JSON string written only with ``EX``
(``status_cache_seconds``, ``account_cache_seconds``): every entry expires. A status is cached with its
unsigned media attachments (``services.hydrate``).

Each record is a key of its own, used by single-key commands and no script, so it needs no hash tag; reading
many is one ``MGET`` on a single server and one per slot on a Redis Cluster (``slots.mget``, ``slots.queue_mget``).
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from redis_store.slots import QueuedMget, mget, queue_mget


class RecordCache:
    """JSON records by id under ``<prefix>:<id>``; ``get_many`` is one MGET (or shares a pipeline's round trip)."""

    def __init__(self, redis: aioredis.Redis, prefix: str, ttl_seconds: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl_seconds

    def key(self, record_id: int) -> str:
        return f"{self.prefix}:{record_id}"

    async def get_many(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        if not ids:
            return {}
        return self.decode(ids, await mget(self.redis, [self.key(i) for i in ids]))

    def queue_get_many(self, pipe: Pipeline, ids: list[int]) -> QueuedMget:
        """``get_many``'s read on a pipeline, so that it shares a round trip; ``decode`` reads its values."""
        return queue_mget(pipe, [self.key(i) for i in ids])

    @staticmethod
    def decode(ids: list[int], values: list[bytes | str | None]) -> dict[int, dict[str, Any]]:
        return {i: orjson.loads(v) for i, v in zip(ids, values, strict=True) if v is not None}

    async def put_many(self, records: dict[int, dict[str, Any]]) -> None:
        if not records:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for record_id, record in records.items():
                pipe.set(self.key(record_id), orjson.dumps(record), ex=self.ttl)
            await pipe.execute()

    async def invalidate(self, *ids: int) -> None:
        if ids:  # a cluster client splits a DEL of many keys per slot
            await self.redis.delete(*(self.key(i) for i in ids))

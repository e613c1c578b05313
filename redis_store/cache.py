"""Read-aside caches of graph records (statuses, accounts), short TTL, invalidated on change.

Keys: ``{prefix}:{id}`` (``status:{id}``, ``account:{id}``), a JSON string written only with ``EX``
(``status_cache_seconds``, ``account_cache_seconds``): every entry expires. A status is cached with its
unsigned media attachments (``services.hydrate``).
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline


class RecordCache:
    """JSON records by id under ``{prefix}:{id}``; ``get_many`` is one MGET (or shares a pipeline's round trip)."""

    def __init__(self, redis: aioredis.Redis, prefix: str, ttl_seconds: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl_seconds

    def key(self, record_id: int) -> str:
        return f"{self.prefix}:{record_id}"

    async def get_many(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        if not ids:
            return {}
        return self.decode(ids, await self.redis.mget([self.key(i) for i in ids]))

    def queue_get_many(self, pipe: Pipeline, ids: list[int]) -> None:
        """``get_many``'s MGET on a pipeline, so that it shares a round trip; ``decode`` reads its reply."""
        pipe.mget([self.key(i) for i in ids])

    @staticmethod
    def decode(ids: list[int], values: list[bytes | None]) -> dict[int, dict[str, Any]]:
        return {i: orjson.loads(v) for i, v in zip(ids, values, strict=True) if v is not None}

    async def put_many(self, records: dict[int, dict[str, Any]]) -> None:
        if not records:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for record_id, record in records.items():
                pipe.set(self.key(record_id), orjson.dumps(record), ex=self.ttl)
            await pipe.execute()

    async def invalidate(self, *ids: int) -> None:
        if ids:
            await self.redis.delete(*(self.key(i) for i in ids))

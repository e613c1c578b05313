"""Each user's bookmarked post ids in Redis, so that hydration marks ``bookmarked`` with one call per page.

  ``bm:{user}``   set of status ids, plus a marker member: ``loaded`` (the set holds every bookmark) or
                  ``partial`` (only the ``MAX_ENTRIES`` most recent: a miss then asks the graph). Expires
                  ``TTL_SECONDS`` after loading; dropped on every bookmark change and loaded again on the next read.
  ``bmv:{user}``  counter, bumped by every change: a load writes the set only if it did not move while it read
                  the graph, so a load racing a change cannot cache the state from before it.

The graph (``graph.bookmarks``) is the system of record. Both keys carry the user's hash tag
(``redis_store.slots``: ``bm:{42}``), so ``_STORE`` runs in one slot of a Redis Cluster.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from redis_store.slots import tagged

TTL_SECONDS = 86_400
MAX_ENTRIES = 5_000
LOADED, PARTIAL = "loaded", "partial"


def bookmarks_key(user_id: int) -> str:
    return tagged("bm", user_id)


def version_key(user_id: int) -> str:
    return tagged("bmv", user_id)


# KEYS: bm:{u}, bmv:{u}; ARGV: version read before loading, ttl, marker, then the status ids.
_STORE = """
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
for i = 3, #ARGV, 1000 do redis.call('SADD', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV))) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


class BookmarkCache:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._store = redis.register_script(_STORE)

    async def lookup(self, user_id: int, status_ids: list[int]) -> tuple[str | None, set[int]]:
        """(``loaded``, ``partial`` or None when the set must be loaded; which of ``status_ids`` are in it)."""
        flags = await self.redis.smismember(bookmarks_key(user_id), [LOADED, PARTIAL, *status_ids])
        marker = LOADED if flags[0] else PARTIAL if flags[1] else None
        return marker, {s for s, found in zip(status_ids, flags[2:], strict=True) if found}

    async def version(self, user_id: int) -> str:
        raw = await self.redis.get(version_key(user_id))
        return raw.decode() if isinstance(raw, bytes) else (raw or "0")

    async def store(self, user_id: int, version: str, status_ids: list[int], complete: bool) -> bool:
        marker = LOADED if complete else PARTIAL
        return bool(
            await self._store(
                keys=[bookmarks_key(user_id), version_key(user_id)], args=[version, TTL_SECONDS, marker, *status_ids]
            )
        )

    async def invalidate(self, user_id: int) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incr(version_key(user_id))
            pipe.expire(version_key(user_id), 2 * TTL_SECONDS)
            pipe.delete(bookmarks_key(user_id))
            await pipe.execute()

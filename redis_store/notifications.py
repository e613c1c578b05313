"""Notifications in Redis: a capped list per user, records by id, live push by pub/sub.

``notifs:{user}`` is a sorted set of zero-padded notification ids (ranged
lexicographically, like timelines); ``notifs:{user}:records`` is a hash, id →
the record as JSON. Adding one is a single Lua call that also collapses
duplicates (``notif:seen:{user}:...``: the same actor doing the same thing to
the same post notifies once), trims the list and its records to the cap and
publishes on the user's streaming channel (``stream:{user}``). Every key of a
user carries the user's hash tag (``redis_store.slots``), so the call runs in
one slot of a Redis Cluster; ``markers:{user}`` holds the user's markers.

What a user does here is answered only once it is on disk (``WAITAOF``,
``redis_store.durability``): markers, dismissals and clears live only in
Redis, and a notification coming back after the user removed it, or an
unread count going back, would be a lost acknowledged write. Notifications
themselves are written by the ``Notifier`` from durable events, before the
event is acked (see ``actors.notifier``).
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

from redis_store.durability import Durability
from redis_store.slots import tagged
from redis_store.timelines import PageBounds, member


def list_key(user_id: int) -> str:
    return tagged("notifs", user_id)


def records_key(user_id: int) -> str:
    """Hash: the user's notification records by id (the list's members without their zero padding)."""
    return tagged("notifs", user_id, "records")


def dedupe_key(record: dict[str, Any]) -> str:
    """Set while the same notification (recipient, type, actor, post) must not be made again."""
    return tagged(
        "notif:seen", record["recipient_id"], record["type"], record["account_id"], record.get("status_id") or ""
    )


def channel(user_id: int) -> str:
    """The pub/sub channel a user's streaming connections listen on, on every Serve replica; in the user's slot,
    like the keys of the scripts that publish on it."""
    return tagged("stream", user_id)


def marker_key(user_id: int) -> str:
    return tagged("markers", user_id)


# KEYS: notifs:{u}, notifs:{u}:records, dedupe key, channel; ARGV: member, id, record json, cap, dedupe ttl, push json
_ADD = """
if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'EX', ARGV[5]) == false then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[1], 0, ARGV[1])
local size = redis.call('ZCARD', KEYS[1])
local cap = tonumber(ARGV[4])
if size > cap then
  for _, old in ipairs(redis.call('ZRANGE', KEYS[1], 0, size - cap - 1)) do
    redis.call('HDEL', KEYS[2], (string.gsub(old, '^0+', '')))
  end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, size - cap - 1)
end
redis.call('PUBLISH', KEYS[4], ARGV[6])
return 1
"""


class NotificationStore:
    def __init__(
        self,
        redis: aioredis.Redis,
        cap: int,
        dedupe_seconds: int = 7 * 86_400,
        durability: Durability | None = None,
    ) -> None:
        self.redis = redis
        self.cap = cap
        self.dedupe_seconds = dedupe_seconds
        self.durability = durability or Durability.configured()
        self._add = redis.register_script(_ADD)

    async def add(self, record: dict[str, Any]) -> bool:
        """Store and push a notification; False if it duplicates one already made."""
        recipient = record["recipient_id"]
        push = orjson.dumps({"event": "notification", "id": record["id"]})
        added = await self._add(
            keys=[list_key(recipient), records_key(recipient), dedupe_key(record), channel(recipient)],
            args=[member(record["id"]), record["id"], orjson.dumps(record), self.cap, self.dedupe_seconds, push],
        )
        return bool(added)

    async def page_ids(self, user_id: int, bounds: PageBounds, count: int) -> list[int]:
        key = list_key(user_id)
        if bounds.ascending:
            raw = await self.redis.zrangebylex(key, bounds.lo, bounds.hi, start=0, num=count)
        else:
            raw = await self.redis.zrevrangebylex(key, bounds.hi, bounds.lo, start=0, num=count)
        return [int(m) for m in raw]

    async def records(self, user_id: int, ids: list[int]) -> dict[int, dict[str, Any]]:
        if not ids:
            return {}
        values = await self.redis.hmget(records_key(user_id), [str(i) for i in ids])
        return {i: orjson.loads(v) for i, v in zip(ids, values, strict=True) if v is not None}

    async def dismiss(self, user_id: int, notification_id: int) -> bool:
        # Not a transaction (WAITAOF cannot wait inside one): the list entry goes first, and a reader that
        # sees it without its record skips it.
        async with self.durability.pipeline(self.redis) as pipe:
            pipe.zrem(list_key(user_id), member(notification_id))
            pipe.hdel(records_key(user_id), str(notification_id))
            removed, _ = await self.durability.execute(pipe, [list_key(user_id)])
        return bool(removed)

    async def clear(self, user_id: int) -> None:
        async with self.durability.pipeline(self.redis) as pipe:
            pipe.delete(list_key(user_id))  # the list first, as in ``dismiss``
            pipe.delete(records_key(user_id))
            await self.durability.execute(pipe, [list_key(user_id)])

    async def count_after(self, user_id: int, after_id: int | None) -> int:
        low = f"({member(after_id)}" if after_id else "-"
        return int(await self.redis.zlexcount(list_key(user_id), low, "+"))

    async def get_markers(self, user_id: int) -> dict[str, dict[str, Any]]:
        raw = await self.redis.hgetall(marker_key(user_id))
        return {timeline: orjson.loads(value) for timeline, value in raw.items()}

    async def set_markers(self, user_id: int, markers: dict[str, dict[str, Any]]) -> None:
        """Store the user's markers (timeline → marker), durably."""
        async with self.durability.pipeline(self.redis) as pipe:
            pipe.hset(marker_key(user_id), mapping={t: orjson.dumps(m) for t, m in markers.items()})
            await self.durability.execute(pipe, [marker_key(user_id)])

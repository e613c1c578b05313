"""Stories in Redis: each active story's record, the author's active set, every user's story tray, who saw what.

Every set is a sorted set scored by the story's deadline (Unix ms, exact in a
double), so "still active" is a score range from ``now``, pruning is one
``ZREMRANGEBYSCORE``, and a set expires (``PEXPIREAT``) with its last entry.
Reads range from ``now`` and never return an entry past its deadline, however
late the clean-up runs.

Keys (each capped or expiring):
  ``story:{id}``          JSON record of an active story (author, media keys, deadline, options);
                          expires at the deadline; deleted when the author ends the story early
  ``stories:by:{author}`` the author's active stories: at most ``story_max_active`` live entries;
                          expires with its last deadline
  ``stories:tray:{user}`` stories fanned out to the user (authors they follow): capped at
                          ``story_tray_max``, pruned by deadline, expires with its last deadline
  ``stories:seen:{user}`` stories the user has seen, scored by the story's deadline: capped like the
                          tray, pruned by deadline, expires with its last deadline
  ``story:views:{id}``    viewer → time of their first view (each viewer once); expires at the deadline
  ``stories:due``         key of every set above that holds entries → its earliest deadline, so the
                          expiry actor (``actors.story_expiry``) prunes exactly the sets that need it:
                          one entry per non-empty set, removed when the set empties

The scripts take every key they touch in ``KEYS``; ``stories:due`` makes them
cross-slot, so on Redis Cluster they would need a due index per slot (not done).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from redis_store.durability import Durability

DUE = "stories:due"
AUTHOR_MAX = 1000  # entries kept in an author's set: far above ``story_max_active`` live ones
StoryEntry = tuple[int, int]  # (story id, deadline in Unix ms)


def record_key(story_id: int) -> str:
    return f"story:{story_id}"


def author_key(author_id: int) -> str:
    return f"stories:by:{author_id}"


def tray_key(user_id: int) -> str:
    return f"stories:tray:{user_id}"


def seen_key(user_id: int) -> str:
    return f"stories:seen:{user_id}"


def views_key(story_id: int) -> str:
    return f"story:views:{story_id}"


# KEYS[1] = stories:due, KEYS[2..] = deadline-scored sets; ARGV = now, cap, then pairs (member, deadline).
# Adds the entries to every set, drops what is past its deadline, trims each set to ``cap`` (the entries
# that expire soonest go first), makes it expire with its last entry, and records its earliest deadline
# in the due index (``LT``: an earlier deadline already there stays).
_ADD = """
local now, cap = ARGV[1], tonumber(ARGV[2])
for i = 2, #KEYS do
  local key = KEYS[i]
  for j = 3, #ARGV, 2 do redis.call('ZADD', key, ARGV[j + 1], ARGV[j]) end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local size = redis.call('ZCARD', key)
  if size > cap then redis.call('ZREMRANGEBYRANK', key, 0, size - cap - 1) end
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIREAT', key, last[2])
    redis.call('ZADD', KEYS[1], 'LT', first[2], key)
  end
end
return 1
"""

# KEYS[1] = stories:due, KEYS[2..] = sets; ARGV[1] = now. Drops expired entries of each set and keeps its
# due entry right: the new earliest deadline, or none once the set is empty.
_PRUNE = """
for i = 2, #KEYS do
  local key = KEYS[i]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if first[2] then redis.call('ZADD', KEYS[1], first[2], key) else redis.call('ZREM', KEYS[1], key) end
end
return 1
"""


@dataclass(frozen=True)
class TrayRead:
    """What a carousel read needs from Redis: active story ids (tray, own, followed celebrities')."""

    tray: list[int]
    own: list[int]
    celebrities: dict[int, list[int]]


class StoryStore:
    def __init__(self, redis: aioredis.Redis, tray_max: int, durability: Durability) -> None:
        self.redis = redis
        self.tray_max = tray_max
        self.durability = durability
        self._add = redis.register_script(_ADD)
        self._prune = redis.register_script(_PRUNE)

    # -- writes --------------------------------------------------------------

    async def publish(self, story: dict[str, Any], now_ms: int) -> None:
        """An active story: its record (expiring at its deadline) and its entry among the author's stories."""
        deadline = story["expires_at"]
        await self.redis.set(record_key(story["id"]), orjson.dumps(story), pxat=deadline)
        keys = [DUE, author_key(story["account_id"])]
        await self._add(keys=keys, args=[now_ms, AUTHOR_MAX, story["id"], deadline])

    async def end(self, story_id: int, author_id: int) -> None:
        """The author ended the story: it is no longer anyone's to read (trays are cleaned by fan-out)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(record_key(story_id), views_key(story_id))
            pipe.zrem(author_key(author_id), story_id)
            await pipe.execute()

    async def deliver(self, entries: list[StoryEntry], user_ids: list[int], now_ms: int) -> None:
        """Add stories (id, deadline) to the trays of ``user_ids`` (one round trip)."""
        if entries and user_ids:
            args: list[int] = [now_ms, self.tray_max]
            for story_id, deadline in entries:
                args += (story_id, deadline)
            await self._add(keys=[DUE, *(tray_key(u) for u in user_ids)], args=args)

    async def remove(self, story_ids: list[int], user_ids: list[int]) -> None:
        if story_ids and user_ids:
            async with self.redis.pipeline(transaction=False) as pipe:
                for user_id in user_ids:
                    pipe.zrem(tray_key(user_id), *story_ids)
                await pipe.execute()

    async def mark_seen(self, story_id: int, deadline: int, viewer_id: int, now_ms: int) -> bool:
        """Record a view, durably: the viewer's first view of the story counts; True if this was it."""
        pipe = self.durability.pipeline(self.redis)
        pipe.zadd(views_key(story_id), {str(viewer_id): now_ms}, nx=True)
        pipe.pexpireat(views_key(story_id), deadline)
        pipe.evalsha(self._add.sha, 2, DUE, seen_key(viewer_id), now_ms, self.tray_max, story_id, deadline)
        try:
            replies = await self.durability.execute(pipe, [views_key(story_id), seen_key(viewer_id)])
        except NoScriptError:  # a restarted Redis lost the script: load it and write again (all idempotent)
            self._add.sha = await self.redis.script_load(self._add.script)
            return await self.mark_seen(story_id, deadline, viewer_id, now_ms)
        return bool(replies[0])

    async def prune_due(self, now_ms: int, batch: int) -> int:
        """Prune up to ``batch`` sets whose earliest entry has expired; returns how many were pruned."""
        keys = await self.redis.zrangebyscore(DUE, "-inf", now_ms, start=0, num=batch)
        if keys:
            await self._prune(keys=[DUE, *keys], args=[now_ms])
        return len(keys)

    # -- reads ---------------------------------------------------------------

    async def read(self, user_id: int, celebrity_key: str, now_ms: int) -> TrayRead:
        """The user's tray, own stories and followed celebrities' stories still active at ``now_ms``.

        ``celebrity_key`` is the user's set of followed celebrities (``redis_store.timelines``): their
        stories are pulled at read time, as their posts are. Two round trips.
        """
        after = f"({now_ms}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(tray_key(user_id), after, "+inf", start=0, num=self.tray_max)
            pipe.zrangebyscore(author_key(user_id), after, "+inf")
            pipe.smembers(celebrity_key)
            tray, own, celebrities = await pipe.execute()
        pulled: dict[int, list[int]] = {}
        if celebrities:
            authors = sorted(int(c) for c in celebrities)
            async with self.redis.pipeline(transaction=False) as pipe:
                for author in authors:
                    pipe.zrangebyscore(author_key(author), after, "+inf")
                for author, ids in zip(authors, await pipe.execute(), strict=True):
                    pulled[author] = [int(i) for i in ids]
        return TrayRead([int(i) for i in tray], [int(i) for i in own], pulled)

    async def own(self, author_id: int, now_ms: int) -> list[int]:
        return [entry[0] for entry in await self.active_of(author_id, now_ms)]

    async def active_of(self, author_id: int, now_ms: int) -> list[StoryEntry]:
        """The author's active stories at ``now_ms``: (id, deadline), oldest deadline first."""
        found = await self.redis.zrangebyscore(author_key(author_id), f"({now_ms}", "+inf", withscores=True)
        return [(int(member), int(score)) for member, score in found]

    async def records(self, story_ids: list[int], viewer_id: int) -> tuple[dict[int, dict[str, Any]], set[int]]:
        """(records of the stories still stored, by id; which of them the viewer has seen): one round trip."""
        if not story_ids:
            return {}, set()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.mget([record_key(s) for s in story_ids])
            pipe.zmscore(seen_key(viewer_id), story_ids)
            raw, seen_scores = await pipe.execute()
        records = {s: orjson.loads(r) for s, r in zip(story_ids, raw, strict=True) if r is not None}
        seen = {s for s, score in zip(story_ids, seen_scores, strict=True) if score is not None}
        return records, seen

    async def record(self, story_id: int) -> dict[str, Any] | None:
        raw = await self.redis.get(record_key(story_id))
        return orjson.loads(raw) if raw is not None else None

    async def viewers(self, story_id: int, limit: int) -> list[int]:
        """Who viewed the story, newest view first."""
        return [int(v) for v in await self.redis.zrevrange(views_key(story_id), 0, limit - 1)]

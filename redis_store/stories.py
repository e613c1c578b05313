"""Stories in Redis: each active story's record, the author's active set, every user's story tray, who saw what.

Every set is a sorted set scored by the story's deadline (Unix ms, exact in a
double), so "still active" is a score range from ``now``, pruning is one
``ZREMRANGEBYSCORE``, and a set expires (``PEXPIREAT``) with its last entry.
Reads range from ``now`` and never return an entry past its deadline, however
late the clean-up runs.

Keys (each capped or expiring; the part in braces is the hash tag, see ``redis_store.slots``):
  ``story:{id}``          JSON record of an active story (author, media keys, deadline, options);
                          expires at the deadline; deleted when the author ends the story early
  ``story:{id}:views``    viewer → time of their first view (each viewer once); expires at the deadline
  ``stories:by:{author}`` the author's active stories: at most ``story_max_active`` live entries;
                          expires with its last deadline
  ``stories:tray:{user}`` stories fanned out to the user (authors they follow): capped at
                          ``story_tray_max``, pruned by deadline, expires with its last deadline
  ``stories:seen:{user}`` stories the user has seen, scored by the story's deadline: capped like the
                          tray, pruned by deadline, expires with its last deadline
  ``stories:due``         key of every set above that holds entries → a deadline no later than its
                          earliest one, so the expiry actor (``actors.story_expiry``) prunes exactly the
                          sets that need it: one entry per non-empty set, removed when the set empties

On a Redis Cluster the sets of different users live in different slots and
``stories:due`` in yet another, so no script touches the due index and a set:
the scripts work on sets of one slot (``_ADD``, ``_PRUNE``: all of a batch's
sets at once on one server, one call per slot on a cluster, ``slots.by_slot``)
and the due index is written on its own, in the same pipeline:

* Adding writes the due entries first (``ZADD LT`` the earliest new deadline),
  then the entries. The due index is housekeeping, never what a read relies
  on: a due entry for a set that is empty or due later only costs the
  expiry actor a look. On one server the pipeline keeps that order; a
  cluster sends its per-node batches concurrently, so a crash in between may
  leave a new entry without its due entry: it is pruned once the set's next
  write indexes the set again, or goes with the whole set at its last
  deadline. Either way no read shows it, and the entries themselves (a
  tray's story, a view) are written, and acknowledged, as before.
* Pruning takes the due sets (with the score each was due at), prunes them,
  and then moves each due entry to the set's new earliest deadline, or drops
  it, only if it still has the score the pruning started from (``_SETTLE``):
  an entry an add lowered meanwhile stays. An add that lands between the
  prune and the settle without lowering the due score may leave its entry
  to be pruned at the set's next due time instead: late, never visible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from redis_store.durability import Durability
from redis_store.slots import by_slot, queue_mget, queue_script, tagged

DUE = "stories:due"
AUTHOR_MAX = 1000  # entries kept in an author's set: far above ``story_max_active`` live ones
StoryEntry = tuple[int, int]  # (story id, deadline in Unix ms)


def record_key(story_id: int) -> str:
    return tagged("story", story_id)


def views_key(story_id: int) -> str:
    return tagged("story", story_id, "views")


def author_key(author_id: int) -> str:
    return tagged("stories:by", author_id)


def tray_key(user_id: int) -> str:
    return tagged("stories:tray", user_id)


def seen_key(user_id: int) -> str:
    return tagged("stories:seen", user_id)


# KEYS = deadline-scored sets (one slot); ARGV = now, cap, then pairs (member, deadline). Adds the entries to
# every set, drops what is past its deadline, trims each set to ``cap`` (the entries that expire soonest go
# first) and makes it expire with its last entry.
_ADD = """
local now, cap = ARGV[1], tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  for j = 3, #ARGV, 2 do redis.call('ZADD', key, ARGV[j + 1], ARGV[j]) end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local size = redis.call('ZCARD', key)
  if size > cap then redis.call('ZREMRANGEBYRANK', key, 0, size - cap - 1) end
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then redis.call('PEXPIREAT', key, last[2]) end
end
return 1
"""

# KEYS = sets (one slot); ARGV[1] = now. Drops the expired entries of each set; returns, per set, its earliest
# deadline left, or '' once it is empty.
_PRUNE = """
local firsts = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  firsts[i] = first[2] or ''
end
return firsts
"""

# KEYS[1] = stories:due; ARGV = triples (set key, the score it was due at, its earliest deadline now or '').
# Moves each set's due entry to its earliest deadline, or drops it when the set is empty, unless an add
# changed the entry since the set was pruned (the set keys are members here, never keys the script opens).
_SETTLE = """
for i = 1, #ARGV, 3 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    if ARGV[i + 2] == '' then redis.call('ZREM', KEYS[1], ARGV[i])
    else redis.call('ZADD', KEYS[1], ARGV[i + 2], ARGV[i]) end
  end
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
        self._settle = redis.register_script(_SETTLE)

    async def _send(self, queue: Callable[[Pipeline], None], written: Sequence[str] | None = None) -> list[Any]:
        """One pipeline of what ``queue`` puts on it; durable (``WAITAOF`` on the primaries of ``written``) when
        ``written`` is given. A server that lost the scripts (restarted) gets them loaded and the pipeline sent
        again: everything queued here is idempotent."""
        try:
            return await self._send_once(queue, written)
        except NoScriptError:
            for script in (self._add, self._prune):
                script.sha = await self.redis.script_load(script.script)
            return await self._send_once(queue, written)

    async def _send_once(self, queue: Callable[[Pipeline], None], written: Sequence[str] | None) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        queue(pipe)
        return await (pipe.execute() if written is None else self.durability.execute(pipe, written))

    def _queue_add(self, pipe: Pipeline, keys: list[str], entries: list[StoryEntry], now_ms: int, cap: int) -> None:
        """The due entries of ``keys``, then the entries themselves: one ``_ADD`` per slot of the sets."""
        pipe.zadd(DUE, dict.fromkeys(keys, min(deadline for _, deadline in entries)), lt=True)
        args: list[int] = [now_ms, cap]
        for story_id, deadline in entries:
            args += (story_id, deadline)
        for group in by_slot(self.redis, keys, str):
            queue_script(pipe, self._add, group, args)

    # -- writes --------------------------------------------------------------

    async def publish(self, story: dict[str, Any], now_ms: int) -> None:
        """An active story: its record (expiring at its deadline) and its entry among the author's stories."""
        deadline = story["expires_at"]

        def queue(pipe: Pipeline) -> None:
            pipe.set(record_key(story["id"]), orjson.dumps(story), pxat=deadline)
            self._queue_add(pipe, [author_key(story["account_id"])], [(story["id"], deadline)], now_ms, AUTHOR_MAX)

        await self._send(queue)

    async def end(self, story_id: int, author_id: int) -> None:
        """The author ended the story: it is no longer anyone's to read (trays are cleaned by fan-out).

        The record first (its absence is what hides the story), then the author's entry; two slots, so no
        transaction: a crash in between leaves an entry whose record is gone, which every read skips."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(record_key(story_id), views_key(story_id))
            pipe.zrem(author_key(author_id), story_id)
            await pipe.execute()

    async def deliver(self, entries: list[StoryEntry], user_ids: list[int], now_ms: int) -> None:
        """Add stories (id, deadline) to the trays of ``user_ids``: one round trip (one script per slot)."""
        if entries and user_ids:
            keys = [tray_key(u) for u in user_ids]
            await self._send(lambda pipe: self._queue_add(pipe, keys, entries, now_ms, self.tray_max))

    async def remove(self, story_ids: list[int], user_ids: list[int]) -> None:
        if story_ids and user_ids:
            async with self.redis.pipeline(transaction=False) as pipe:
                for user_id in user_ids:
                    pipe.zrem(tray_key(user_id), *story_ids)
                await pipe.execute()

    async def mark_seen(self, story_id: int, deadline: int, viewer_id: int, now_ms: int) -> bool:
        """Record a view, durably: the viewer's first view of the story counts; True if this was it."""
        views, seen = views_key(story_id), seen_key(viewer_id)

        def queue(pipe: Pipeline) -> None:
            pipe.zadd(views, {str(viewer_id): now_ms}, nx=True)
            pipe.pexpireat(views, deadline)
            self._queue_add(pipe, [seen], [(story_id, deadline)], now_ms, self.tray_max)

        replies = await self._send(queue, [views, seen, DUE])
        return bool(replies[0])

    async def prune_due(self, now_ms: int, batch: int) -> int:
        """Prune up to ``batch`` sets whose earliest entry has expired; returns how many were pruned."""
        due = await self.redis.zrangebyscore(DUE, "-inf", now_ms, start=0, num=batch, withscores=True)
        if not due:
            return 0
        groups = by_slot(self.redis, due, lambda entry: entry[0])

        def queue(pipe: Pipeline) -> None:
            for group in groups:
                queue_script(pipe, self._prune, [key for key, _ in group], [now_ms])

        settle: list[str | int] = []
        for group, firsts in zip(groups, await self._send(queue), strict=True):
            for (key, score), first in zip(group, firsts, strict=True):
                settle += (key, int(score), first)
        await self._settle(keys=[DUE], args=settle)
        return len(due)

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
            stored = queue_mget(pipe, [record_key(s) for s in story_ids])
            pipe.zmscore(seen_key(viewer_id), story_ids)
            replies = await pipe.execute()
        raw, seen_scores = stored.values(replies), replies[-1]
        records = {s: orjson.loads(r) for s, r in zip(story_ids, raw, strict=True) if r is not None}
        seen = {s for s, score in zip(story_ids, seen_scores, strict=True) if score is not None}
        return records, seen

    async def record(self, story_id: int) -> dict[str, Any] | None:
        raw = await self.redis.get(record_key(story_id))
        return orjson.loads(raw) if raw is not None else None

    async def viewers(self, story_id: int, limit: int) -> list[int]:
        """Who viewed the story, newest view first."""
        return [int(v) for v in await self.redis.zrevrange(views_key(story_id), 0, limit - 1)]

"""Likes in Redis: instant to the user, persisted to the graph behind.

On one server a like is one atomic Lua call: it counts the liker's rate-limit
hit (``redis_store.ratelimit``, refusing the like past the limit), adds the
post to the liker's favourites (``favs:{user}``, scored by like time), bumps
the post's counter (``likes:n:{status}``) and appends a ``like.created`` event
to the stream in the same step, so an acknowledged like is always on its way
to the graph. The call is answered only once the append-only file holding it
is on disk (``WAITAOF``, ``redis_store.durability``): a like is not rebuilt
from the graph after a Redis crash, since until the persister has run Redis
holds the only copy.
Liking twice changes nothing. A counter that is missing (first like, expired,
or data lost) starts from the graph's persisted count; a favourites set that
is missing is loaded from the graph once, marked by a sentinel member.

On a Redis Cluster the user's keys, the post's counter and the stream live in
three slots, so the like takes three round trips, in this order:

  1. in the user's slot (``_DECIDE``, fsynced before going on): the rate limit,
     the decision and the change of ``favs:{user}``, and the event, numbered
     by the user's sequence, written to the user's outbox ``likes:out:{user}``;
  2. the event appended to the stream (``_PUBLISH``, fsynced before the answer)
     beside the counter's ``INCRBY`` (``_COUNT``, not waited for);
  3. the event forgotten by the outbox, unless a newer change of the pair
     replaced it meanwhile.

Nothing is answered before step 2's event is on disk, so an acknowledged like
is on its way to the graph as on one server. A crash (of the serving process,
or a failed Redis call) before the answer leaves the like in ``favs:`` and
its event in the outbox: the client's retry finds the like made (nothing to
change) and publishes the waiting event, and any later like or unlike of the
user publishes events left waiting longer than ``ABANDONED_MS``. Publishing
twice is harmless: the stream's slot keeps each pair's last published sequence
number (``{events}:liked:{user}:{status}``, ``PUBLISHED_TTL_MS``) and appends
only newer ones, which also keeps a pair's like and unlike in the order they
were made when their publishers race; past that memory a copy of a pair's
latest change may be appended again, and the consumers are idempotent (the
persister writes a state, the notifier's duplicate guard notifies once).
A crash after step 2 only leaves an outbox entry, published again later and
then skipped. The counter is the one thing a crash can get wrong: a retry
does not bump it again, and an ``INCRBY`` lost with its node counts one like
too few or too many, until the counter expires (``like_count_ttl_seconds``)
and the graph's persisted count takes over. A like made in step 1 whose
client never retries and whose user never changes a like again stays in
``favs:`` without reaching the graph until ``favs:`` expires; it was never
acknowledged.

The graph is the system of record once a like is persisted, so everything
here is bounded and reloads on a miss:

  ``favs:{user}``      sorted set, the user's newest likes (at most ``favourites_load_limit``, plus one
                       sentinel); expires ``inactive_days`` after the user's last like change or load.
                       Past the cap the oldest likes are dropped and the set turns ``partial``: the
                       sentinel's score then says up to which like time it may miss likes, so a like of
                       a newer post is still decided here and only an older one asks the graph (to like
                       or unlike it, to show it liked, to list it among the favourites). The graph
                       shows the unlike of such an old post once the persister has written it.
  ``likes:n:{status}`` string, a post's live like count; expires ``like_count_ttl_seconds`` after its
                       last change, by when the persister has long written every change to the graph's
                       ``favourites_count``, and the cached status record (``status_cache_seconds``,
                       far shorter) holds that count, which reads fall back to.
  ``shared:{user}``    hash, original post id → the user's reblog of it (the viewer's reblog state);
                       at most twice ``favourites_load_limit`` entries (pruned to the newest), expires
                       like ``favs:``.
  ``likes:out:{user}`` hash (a cluster only), post → its change waiting for the stream, and ``#seq``;
                       emptied as the events are published; expires like ``favs:``.

Every key carries its owner's hash tag (``redis_store.slots``): ``{user}`` and
``{status}`` above are the ids inside braces, ``favs:{42}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from config import Settings
from redis_store.durability import Durability
from redis_store.events import STREAM
from redis_store.ratelimit import RATE_HIT_LUA, OverLimit, RateLimit
from redis_store.slots import QueuedMget, is_cluster, queue_mget, queue_script, tagged
from redis_store.timelines import member

T = TypeVar("T")

LOADED = "loaded"  # sentinel member (score -1): the favourites set holds all the user's likes
# Sentinel member: only the newest likes are held. Score -1: a miss proves nothing. Score -2 - f: every like
# missing from the set has a score of at most f, so a miss for a post made later than f proves it is not liked.
PARTIAL = "partial"
CLOCK_SKEW_MS = 60_000  # how far apart the clocks of two id-minting processes may be, at most
# A cluster's like waits in the user's outbox until its event is on the stream. Past this age its publisher is taken
# for dead (a serving process gives up on Redis within a few seconds), and the user's next change publishes it.
ABANDONED_MS = 10_000
# How long the stream's slot remembers a pair's last published change: longer than a late publisher can lag
# behind (ABANDONED_MS and a request's retries), so a late copy of an older change is never appended after a newer.
PUBLISHED_TTL_MS = 60_000

# The favourites' side of a like or unlike, shared by both scripts below. ARGV: member, score, initial count,
# event data, maxlen, event type, '1' once the graph was consulted for this pair, the post's own score minus the
# clock skew, favourites cap, counter ttl ms, favourites ttl ms, rate window ms, rate limit (both '' without a
# rate-limit key). Returns 1 (changed), 0 (nothing to change), -1 (the user's favourites are not loaded yet) or
# -2 (they are partial and may miss a like of this post).
_FAVS_LUA = """
local function change_favs(favs)
  if redis.call('EXISTS', favs) == 0 then return -1 end
  local liked = redis.call('ZSCORE', favs, ARGV[1])
  local partial = tonumber(redis.call('ZSCORE', favs, 'partial'))
  if not liked and ARGV[7] ~= '1' and partial and (partial == -1 or tonumber(ARGV[8]) <= -2 - partial) then
    return -2
  end
  local like = ARGV[6] == 'like.created'
  if (like and liked) or (not like and not liked) then return 0 end
  if like then
    redis.call('ZADD', favs, ARGV[2], ARGV[1])
    local extra = redis.call('ZCOUNT', favs, 0, '+inf') - tonumber(ARGV[9])
    if extra > 0 then  -- past the cap: drop the oldest likes, remember up to when the set may miss some
      local last = redis.call('ZRANGE', favs, 0, '+inf', 'BYSCORE', 'LIMIT', extra - 1, 1, 'WITHSCORES')
      local evicted = tonumber(last[2])
      redis.call('ZREMRANGEBYSCORE', favs, 0, evicted)
      if partial ~= -1 then
        local floor = evicted
        if partial then floor = math.max(floor, -2 - partial) end
        redis.call('ZREM', favs, 'loaded')
        redis.call('ZADD', favs, -2 - floor, 'partial')
      end
    end
  else
    redis.call('ZREM', favs, ARGV[1])
  end
  redis.call('PEXPIRE', favs, ARGV[11])
  return 1
end
"""

# One server: the whole like in one atomic step. KEYS: favs:{user}, likes:n:{status}, the event stream, and
# optionally the liker's rate-limit counter; ARGV: as ``_FAVS_LUA``. Returns {changed (1/0), count}; {-1, 0} or
# {-2, 0} as ``change_favs``; {-3, hits, ms until the window ends} when the hit is past the limit.
_CHANGE = (
    RATE_HIT_LUA
    + _FAVS_LUA
    + """
if KEYS[4] then  -- the rate limit first: a refused like changes nothing else
  local hits, ttl = rate_hit(KEYS[4], ARGV[12])
  if hits > tonumber(ARGV[13]) then return {-3, hits, ttl} end
end
local changed = change_favs(KEYS[1])
if changed < 0 then return {changed, 0} end
if changed == 0 then return {0, tonumber(redis.call('GET', KEYS[2]) or ARGV[3])} end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], ARGV[3]) end
local n = redis.call('INCRBY', KEYS[2], ARGV[6] == 'like.created' and 1 or -1)
redis.call('PEXPIRE', KEYS[2], ARGV[10])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'type', ARGV[6], 'data', ARGV[4])
return {1, n}
"""
)

# A cluster, step 1, in the user's slot: decide and record. KEYS: favs:{user}, likes:out:{user}, and optionally
# the liker's rate-limit counter (rl:favourite:{user}); ARGV: as ``_FAVS_LUA``, then the age (ms) past which
# another change's unpublished event counts as abandoned. A change gets the next sequence number of the user's
# changes (at least the server's clock in microseconds, so it keeps growing if the outbox expired) and waits in
# the outbox (field: the post; value: "seq type data") until it is on the stream. Returns {changed, then
# (seq, type, data) of each event to publish now}: the change's own event; for a change already made (a
# retry), the event still waiting for it; and any other event waiting for longer than the abandon age.
# {-1} / {-2} as ``change_favs``, {-3, hits, ms until the window ends} past the rate limit.
_DECIDE = (
    RATE_HIT_LUA
    + _FAVS_LUA
    + """
if KEYS[3] then
  local hits, ttl = rate_hit(KEYS[3], ARGV[12])
  if hits > tonumber(ARGV[13]) then return {-3, hits, ttl} end
end
local changed = change_favs(KEYS[1])
if changed < 0 then return {changed} end
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local out = {changed}
local function publish(entry)
  local seq, kind, data = string.match(entry, '^(%d+) (%S+) (.*)$')
  out[#out + 1] = seq; out[#out + 1] = kind; out[#out + 1] = data
end
if changed == 1 then
  local seq = math.max(now, tonumber(redis.call('HGET', KEYS[2], '#seq') or 0) + 1)
  local entry = string.format('%.0f', seq) .. ' ' .. ARGV[6] .. ' ' .. ARGV[4]
  redis.call('HSET', KEYS[2], '#seq', string.format('%.0f', seq), ARGV[1], entry)
  publish(entry)
else
  local waiting = redis.call('HGET', KEYS[2], ARGV[1])
  if waiting then publish(waiting) end
end
if redis.call('HLEN', KEYS[2]) > 2 then  -- rare: a publisher died before its event reached the stream
  local flat = redis.call('HGETALL', KEYS[2])
  for i = 1, #flat, 2 do
    local field, entry = flat[i], flat[i + 1]
    if field ~= '#seq' and field ~= ARGV[1] and now - tonumber(string.match(entry, '^%d+')) > ARGV[14] * 1000 then
      publish(entry)
    end
  end
end
redis.call('PEXPIRE', KEYS[2], ARGV[11])
return out
"""
)

# A cluster, step 2, in the stream's slot. KEYS: the event stream, the pair's last published sequence number
# ({events}:liked:{user}:{status}); ARGV: seq, that key's ttl ms, maxlen, event type, data. Appends the event unless
# this or a later change of the pair is on the stream already (a retry, or a late publisher overtaken by the next
# change): per pair, the stream stays in the order the changes were made. Returns 1 if appended.
_PUBLISH = """
local last = redis.call('GET', KEYS[2])
if last and tonumber(last) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'type', ARGV[4], 'data', ARGV[5])
return 1
"""

# A cluster, step 2 as well, in the post's slot. KEYS: likes:n:{status}; ARGV: initial count, +1/-1, ttl ms.
_COUNT = """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], ARGV[1]) end
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return n
"""

# A cluster, step 3, in the user's slot. KEYS: likes:out:{user}; ARGV: pairs (post member, entry). Forgets the
# published entries that no newer change replaced meanwhile.
_PUBLISHED = """
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return 1
"""

# KEYS: shared:{u}; ARGV: original id, reblog id ('' to forget), cap, ttl ms. Changes a loaded hash only; past
# twice the cap it keeps the newest ``cap`` reblogs (and the "loaded" marker).
_REMEMBER_REBLOG = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
local cap = tonumber(ARGV[3])
if redis.call('HLEN', KEYS[1]) > 2 * cap + 1 then
  local flat, rows = redis.call('HGETALL', KEYS[1]), {}
  for i = 1, #flat, 2 do
    if flat[i] ~= 'loaded' then rows[#rows + 1] = {flat[i], flat[i + 1]} end
  end
  local function newer(a, b)
    if #a[2] ~= #b[2] then return #a[2] > #b[2] end
    return a[2] > b[2]
  end
  table.sort(rows, newer)
  for i = cap + 1, #rows do redis.call('HDEL', KEYS[1], rows[i][1]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""


# KEYS: favs:{u}, shared:{u}; ARGV: pairs (status id, the post's score minus the clock skew). The viewer's own state
# of a page (its like counts are other posts' keys, read beside it): {favs loaded, shares loaded, then per post:
# liked (1), or not known here (2: the favourites are partial and may miss an older like of this post), shared}.
_VIEW = """
local out = {redis.call('EXISTS', KEYS[1]), redis.call('EXISTS', KEYS[2])}
local partial = tonumber(redis.call('ZSCORE', KEYS[1], 'partial'))
for i = 1, #ARGV, 2 do
  local sid = ARGV[i]
  if redis.call('ZSCORE', KEYS[1], string.rep('0', 19 - #sid) .. sid) then
    out[#out + 1] = 1
  elseif partial and (partial == -1 or tonumber(ARGV[i + 1]) <= -2 - partial) then
    out[#out + 1] = 2
  else
    out[#out + 1] = 0
  end
  out[#out + 1] = redis.call('HEXISTS', KEYS[2], sid)
end
return out
"""


@dataclass(frozen=True)
class PageView:
    """What one ``view`` call tells about a page of posts, for one viewer."""

    favourites_loaded: bool
    reblogs_loaded: bool
    counts: dict[int, int]
    liked: set[int]
    reblogged: set[int]
    unknown: frozenset[int] = frozenset()  # posts whose like state only the graph knows (older than the set)


def reblogs_key(user_id: int) -> str:
    """Hash: original post id → the user's reblog of it ("loaded" marks it filled from the graph)."""
    return tagged("shared", user_id)


def favs_key(user_id: int) -> str:
    return tagged("favs", user_id)


def outbox_key(user_id: int) -> str:
    """Hash (on a cluster only): the user's like changes recorded but maybe not yet on the event stream."""
    return tagged("likes:out", user_id)


def published_key(user_id: int, status_id: int) -> str:
    """String, in the stream's slot (on a cluster only): the sequence number of the pair's last published change."""
    return f"{STREAM}:liked:{user_id}:{status_id}"


def partial_score(oldest_like_id: int | None) -> int:
    """The PARTIAL sentinel's score for a set whose likes older than ``oldest_like_id`` may be missing."""
    return -1 if oldest_like_id is None else -2 - like_score(oldest_like_id)


def count_key(status_id: int) -> str:
    return tagged("likes:n", status_id)


def like_score(like_id: int) -> int:
    """The like's snowflake without its sequence bits: exact in a double, ordered by time."""
    return like_id >> 12


def post_score(status_id: int) -> int:
    """The lowest score a like of the post can have: it was made after the post, give or take the clock skew."""
    return like_score(status_id) - (CLOCK_SKEW_MS << 10)


class LikeStore:
    def __init__(self, redis: aioredis.Redis, settings: Settings, in_steps: bool | None = None) -> None:
        """``in_steps``: change likes in the cluster's three steps; a cluster must (the default there), one server
        may (its tests of the steps' crash cases do)."""
        self.redis = redis
        self.stream_maxlen = settings.event_stream_max
        self.favourites_max = settings.favourites_load_limit
        self.count_ttl_ms = settings.like_count_ttl_seconds * 1000
        self.state_ttl_ms = settings.inactive_days * 86_400_000
        self.durability = Durability.configured(settings)
        self.in_steps = is_cluster(redis) if in_steps is None else in_steps
        self._change = redis.register_script(_CHANGE)
        self._decide = redis.register_script(_DECIDE)
        self._publish = redis.register_script(_PUBLISH)
        self._count = redis.register_script(_COUNT)
        self._published = redis.register_script(_PUBLISHED)
        self._view = redis.register_script(_VIEW)
        self._remember_reblog = redis.register_script(_REMEMBER_REBLOG)

    async def view(self, user_id: int, status_ids: list[int]) -> PageView:
        return (await self.view_along(user_id, status_ids))[0]

    async def view_along(
        self, user_id: int | None, status_ids: list[int], alongside: Callable[[Pipeline], QueuedMget] | None = None
    ) -> tuple[PageView, list[str | None] | None]:
        """The page's view (only its counts for an anonymous viewer) in one round trip, which also carries the
        read ``alongside`` queues on the pipeline (hydration's authors); returns both (the read's values)."""
        replies, (counts_read, other) = await _run_pipeline(
            self.redis, [self._view], lambda pipe: self._queue_view(pipe, user_id, status_ids, alongside)
        )
        counts = {s: int(v) for s, v in zip(status_ids, counts_read.values(replies), strict=True) if v is not None}
        values = other.values(replies) if other is not None else None
        if user_id is None:
            return PageView(True, True, counts, set(), set()), values
        raw = replies[0]
        liked, unknown, reblogged = set(), set(), set()
        for i, status_id in enumerate(status_ids):
            like_state, is_shared = raw[2 + 2 * i : 4 + 2 * i]
            if like_state == 1:
                liked.add(status_id)
            elif like_state == 2:
                unknown.add(status_id)
            if is_shared:
                reblogged.add(status_id)
        return PageView(bool(raw[0]), bool(raw[1]), counts, liked, reblogged, frozenset(unknown)), values

    def _queue_view(
        self,
        pipe: Pipeline,
        user_id: int | None,
        status_ids: list[int],
        alongside: Callable[[Pipeline], QueuedMget] | None,
    ) -> tuple[QueuedMget, QueuedMget | None]:
        if user_id is not None:
            args = [value for status_id in status_ids for value in (status_id, post_score(status_id))]
            queue_script(pipe, self._view, [favs_key(user_id), reblogs_key(user_id)], args)
        counts = queue_mget(pipe, [count_key(s) for s in status_ids])
        return counts, alongside(pipe) if alongside is not None else None

    async def change(
        self,
        event_type: str,
        user_id: int,
        status_id: int,
        like_id: int,
        persisted_count: int,
        event: dict,
        graph_checked: bool = False,
        rate: RateLimit | None = None,
    ) -> tuple[bool | str, int]:
        """Apply a like or unlike: (whether anything changed, the post's like count).

        Instead of a bool, "load" means the user's favourites must be loaded from the graph first, and
        "check" that they were loaded partially and the graph must say whether this post is liked.
        With ``rate``, the same call first counts one hit against that limit and raises ``OverLimit``
        (having changed nothing else) when it is past it; pass it on the first call of a request only.
        """
        args: list[Any] = [
            member(status_id),
            like_score(like_id),
            persisted_count,
            orjson.dumps(event),
            self.stream_maxlen,
            event_type,
            "1" if graph_checked else "0",
            post_score(status_id),
            self.favourites_max,
            self.count_ttl_ms,
            self.state_ttl_ms,
            rate.window_ms if rate else "",
            rate.limit if rate else "",
        ]
        rate_key = [rate.key] if rate is not None else []
        if self.in_steps:
            reply = await self._change_in_steps(user_id, status_id, persisted_count, rate_key, args)
        else:
            keys = [favs_key(user_id), count_key(status_id), STREAM, *rate_key]
            reply = await self.durability.run_script(self.redis, self._change, keys=keys, args=args)
        if rate is not None and reply[0] == -3:
            raise OverLimit(rate.decision(int(reply[1]), int(reply[2])))
        changed, count = reply
        return {-1: "load", -2: "check"}.get(changed, bool(changed)), int(count)

    async def _change_in_steps(
        self, user_id: int, status_id: int, persisted_count: int, rate_key: list[str], args: list[Any]
    ) -> list[int]:
        """A cluster's like, in the order the module docstring explains; returns what ``_CHANGE`` would."""
        favs, outbox = favs_key(user_id), outbox_key(user_id)

        def decide(pipe: Pipeline) -> None:
            queue_script(pipe, self._decide, [favs, outbox, *rate_key], [*args, ABANDONED_MS])
            pipe.get(count_key(status_id))  # the count to answer with when nothing changes

        (decided, count), _ = await _run_pipeline(self.redis, [self._decide], decide, self.durability, [favs])
        changed = int(decided[0])
        if changed < 0:  # refused by the rate limit ({-3, hits, ttl}), or the favourites must be loaded or checked
            return list(decided) if changed == -3 else [changed, 0]
        triples = (decided[i : i + 3] for i in range(1, len(decided), 3))
        waiting = [(seq, kind, data, orjson.loads(data)) for seq, kind, data in triples]
        if waiting:  # the change's own event (if it changed anything), a retry's, abandoned ones

            def publish(pipe: Pipeline) -> None:
                for seq, kind, data, pair in waiting:
                    keys = [STREAM, published_key(pair["account_id"], pair["status_id"])]
                    queue_script(pipe, self._publish, keys, [seq, PUBLISHED_TTL_MS, self.stream_maxlen, kind, data])
                if changed:
                    delta = 1 if args[5] == "like.created" else -1
                    queue_script(pipe, self._count, [count_key(status_id)], [persisted_count, delta, self.count_ttl_ms])

            published, _ = await _run_pipeline(
                self.redis, [self._publish, self._count], publish, self.durability, [STREAM]
            )
            if changed:
                count = published[-1]
            done = [v for seq, kind, data, pair in waiting for v in (member(pair["status_id"]), f"{seq} {kind} {data}")]
            await self._published(keys=[outbox], args=done)
        return [changed, int(count if count is not None else persisted_count)]

    async def remember_like(self, user_id: int, status_id: int, like_id: int) -> None:
        """Record a like the graph knows of but the partial favourites set did not hold."""
        await self.redis.zadd(favs_key(user_id), {member(status_id): like_score(like_id)})

    async def favourites_loaded(self, user_id: int) -> bool:
        return bool(await self.redis.exists(favs_key(user_id)))

    async def load_favourites(self, user_id: int, likes: list[tuple[int, int]], complete: bool) -> None:
        """Fill a user's favourites from the graph's newest (status id, like id) pairs, plus the sentinel."""
        mapping = {member(status_id): like_score(like_id) for status_id, like_id in likes}
        sentinel = {LOADED: -1} if complete else {PARTIAL: partial_score(likes[-1][1] if likes else None)}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(favs_key(user_id), {**sentinel, **mapping}, nx=True)
            pipe.pexpire(favs_key(user_id), self.state_ttl_ms)
            await pipe.execute()

    async def reblogs_loaded(self, user_id: int) -> bool:
        return bool(await self.redis.exists(reblogs_key(user_id)))

    async def load_reblogs(self, user_id: int, pairs: list[tuple[int, int]]) -> None:
        """Fill a user's reblog state from the graph's newest (original id, reblog id) pairs."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(reblogs_key(user_id), mapping={LOADED: 1, **{str(orig): rid for orig, rid in pairs}})
            pipe.pexpire(reblogs_key(user_id), self.state_ttl_ms)
            await pipe.execute()

    async def remember_reblog(self, user_id: int, original_id: int, reblog_id: int | None) -> None:
        """Record (or, with None, forget) the user's reblog of a post, if their reblog state is loaded."""
        await self._remember_reblog(
            keys=[reblogs_key(user_id)],
            args=[original_id, "" if reblog_id is None else reblog_id, self.favourites_max, self.state_ttl_ms],
        )

    async def favourites_page(
        self, user_id: int, max_id: int | None, since_id: int | None, limit: int
    ) -> tuple[list[tuple[int, int]], int | None]:
        """The user's likes this set answers for, most recent first, as (status id, like cursor) pairs; and when
        the set is partial, the cursor (a like id) at and below which only the graph knows them."""
        key = favs_key(user_id)
        async with self.redis.pipeline(transaction=False) as pipe:  # both in the user's slot
            pipe.zscore(key, PARTIAL)
            pipe.zrangebyscore(key, 0, "+inf", start=0, num=1, withscores=True)
            partial, oldest = await pipe.execute()
        floor = None
        if partial is not None:  # a score of -1 says nothing: then only what is older than the set is missing
            floor = int(-2 - partial) if partial <= -2 else (int(oldest[0][1]) - 1 if oldest else None)
        low = max(like_score(since_id) if since_id is not None else -1, floor if floor is not None else -1)
        high = f"({like_score(max_id)}" if max_id is not None else "+inf"
        rows = await self.redis.zrevrangebyscore(key, high, f"({low}", start=0, num=limit, withscores=True)
        return [(int(m), int(score) << 12) for m, score in rows], None if floor is None else (floor + 1) << 12


async def _run_pipeline(
    redis: aioredis.Redis,
    scripts: list[AsyncScript],
    queue: Callable[[Pipeline], T],
    durability: Durability | None = None,
    written: list[str] | None = None,
) -> tuple[list[Any], T]:
    """Queue commands with ``queue`` on a non-transactional pipeline and run it, fsynced for the ``written`` keys
    with ``durability``; returns the replies and what ``queue`` returned. A server that lost the ``scripts``
    (restarted) gets them loaded, then the pipeline runs once more (every script here may run twice)."""
    for attempt in (1, 2):
        pipe = redis.pipeline(transaction=False)
        queued = queue(pipe)
        try:
            replies = await (durability.execute(pipe, written or []) if durability else pipe.execute())
            return replies, queued
        except NoScriptError:
            if attempt == 2:
                raise
            for script in scripts:
                script.sha = await redis.script_load(script.script)
    raise AssertionError("unreachable")

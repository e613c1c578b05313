"""Likes in Redis: instant to the user, persisted to the graph behind.

A like is one atomic Lua call: it counts the liker's rate-limit hit
(``redis_store.ratelimit``, refusing the like past the limit), adds the post
to the liker's favourites (``favs:{user}``, scored by like time), bumps the
post's counter (``likes:n:{status}``) and appends a ``like.created`` event to
the stream in the same step, so an acknowledged like is always on its way to
the graph. The call is answered only once the append-only file holding it is on disk
(``WAITAOF``, ``redis_store.durability``): a like is not rebuilt from the
graph after a Redis crash, since until the persister has run Redis holds the
only copy.
Liking twice changes nothing. A counter that is missing (first like, expired,
or data lost) starts from the graph's persisted count; a favourites set that
is missing is loaded from the graph once, marked by a sentinel member.

The graph is the system of record once a like is persisted, so everything
here is bounded and reloads on a miss:

  ``favs:{user}``     sorted set, the user's newest likes (at most ``favourites_load_limit``, plus one
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
  ``shared:{user}``   hash, original post id → the user's reblog of it (the viewer's reblog state);
                      at most twice ``favourites_load_limit`` entries (pruned to the newest), expires
                      like ``favs:``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from config import Settings
from redis_store.durability import Durability
from redis_store.events import STREAM
from redis_store.ratelimit import RATE_HIT_LUA, OverLimit, RateLimit
from redis_store.timelines import member

LOADED = "loaded"  # sentinel member (score -1): the favourites set holds all the user's likes
# Sentinel member: only the newest likes are held. Score -1: a miss proves nothing. Score -2 - f: every like
# missing from the set has a score of at most f, so a miss for a post made later than f proves it is not liked.
PARTIAL = "partial"
CLOCK_SKEW_MS = 60_000  # how far apart the clocks of two id-minting processes may be, at most

# KEYS: favs:{user}, likes:n:{status}, stream, and optionally the liker's rate-limit counter; ARGV: member, score,
# initial count, event data, maxlen, event type, '1' once the graph was consulted for this pair, the post's own score
# minus the clock skew, favourites cap, counter ttl ms, favourites ttl ms, then with a counter: window ms, limit.
# Returns {changed (1/0), count}; {-1, 0} when the user's favourites are not loaded yet; {-2, 0} when they are
# partial and may miss a like of this post; {-3, hits, ms until the window ends} when the hit is past the limit.
_CHANGE = (
    RATE_HIT_LUA
    + """
if KEYS[4] then  -- the rate limit first: a refused like changes nothing else
  local hits, ttl = rate_hit(KEYS[4], ARGV[12])
  if hits > tonumber(ARGV[13]) then return {-3, hits, ttl} end
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0} end
local liked = redis.call('ZSCORE', KEYS[1], ARGV[1])
local partial = tonumber(redis.call('ZSCORE', KEYS[1], 'partial'))
if not liked and ARGV[7] ~= '1' and partial and (partial == -1 or tonumber(ARGV[8]) <= -2 - partial) then
  return {-2, 0}
end
local like = ARGV[6] == 'like.created'
if (like and liked) or (not like and not liked) then
  return {0, tonumber(redis.call('GET', KEYS[2]) or ARGV[3])}
end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], ARGV[3]) end
local n
if like then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  n = redis.call('INCR', KEYS[2])
  local extra = redis.call('ZCOUNT', KEYS[1], 0, '+inf') - tonumber(ARGV[9])
  if extra > 0 then  -- past the cap: drop the oldest likes, remember up to when the set may miss some
    local last = redis.call('ZRANGE', KEYS[1], 0, '+inf', 'BYSCORE', 'LIMIT', extra - 1, 1, 'WITHSCORES')
    local evicted = tonumber(last[2])
    redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, evicted)
    if partial ~= -1 then
      local floor = evicted
      if partial then floor = math.max(floor, -2 - partial) end
      redis.call('ZREM', KEYS[1], 'loaded')
      redis.call('ZADD', KEYS[1], -2 - floor, 'partial')
    end
  end
else
  redis.call('ZREM', KEYS[1], ARGV[1])
  n = redis.call('DECR', KEYS[2])
end
redis.call('PEXPIRE', KEYS[2], ARGV[10])
redis.call('PEXPIRE', KEYS[1], ARGV[11])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'type', ARGV[6], 'data', ARGV[4])
return {1, n}
"""
)

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


# KEYS: favs:{u}, shared:{u}; ARGV: pairs (status id, the post's score minus the clock skew). One round trip for
# a page's like counts and the viewer's own state: {favs loaded, shares loaded, then per post: count (-1 if none),
# liked (1), or not known here (2: the favourites are partial and may miss an older like of this post), shared}.
_VIEW = """
local out = {redis.call('EXISTS', KEYS[1]), redis.call('EXISTS', KEYS[2])}
local partial = tonumber(redis.call('ZSCORE', KEYS[1], 'partial'))
for i = 1, #ARGV, 2 do
  local sid = ARGV[i]
  out[#out + 1] = tonumber(redis.call('GET', 'likes:n:' .. sid) or -1)
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
    return f"shared:{user_id}"


def favs_key(user_id: int) -> str:
    return f"favs:{user_id}"


def partial_score(oldest_like_id: int | None) -> int:
    """The PARTIAL sentinel's score for a set whose likes older than ``oldest_like_id`` may be missing."""
    return -1 if oldest_like_id is None else -2 - like_score(oldest_like_id)


def count_key(status_id: int) -> str:
    return f"likes:n:{status_id}"


def like_score(like_id: int) -> int:
    """The like's snowflake without its sequence bits: exact in a double, ordered by time."""
    return like_id >> 12


def post_score(status_id: int) -> int:
    """The lowest score a like of the post can have: it was made after the post, give or take the clock skew."""
    return like_score(status_id) - (CLOCK_SKEW_MS << 10)


class LikeStore:
    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.redis = redis
        self.stream_maxlen = settings.event_stream_max
        self.favourites_max = settings.favourites_load_limit
        self.count_ttl_ms = settings.like_count_ttl_seconds * 1000
        self.state_ttl_ms = settings.inactive_days * 86_400_000
        self.durability = Durability.configured(settings)
        self._change = redis.register_script(_CHANGE)
        self._view = redis.register_script(_VIEW)
        self._remember_reblog = redis.register_script(_REMEMBER_REBLOG)

    async def view(self, user_id: int, status_ids: list[int]) -> PageView:
        return (await self.view_along(user_id, status_ids))[0]

    async def view_along(
        self, user_id: int | None, status_ids: list[int], alongside: Callable[[Pipeline], object] | None = None
    ) -> tuple[PageView, Any]:
        """The page's view (only its counts for an anonymous viewer) in one round trip, which also carries the
        command ``alongside`` queues on the pipeline (hydration's author MGET); returns both replies."""
        try:
            replies = await self._view_pipeline(user_id, status_ids, alongside).execute()
        except NoScriptError:  # the server lost its scripts (restarted): load the script, then once more
            self._view.sha = await self.redis.script_load(self._view.script)
            replies = await self._view_pipeline(user_id, status_ids, alongside).execute()
        raw, other = replies[0], replies[1] if alongside is not None else None
        if user_id is None:
            counts = {s: int(v) for s, v in zip(status_ids, raw, strict=True) if v is not None}
            return PageView(True, True, counts, set(), set()), other
        counts, liked, unknown, reblogged = {}, set(), set(), set()
        for i, status_id in enumerate(status_ids):
            count, like_state, is_shared = raw[2 + 3 * i : 5 + 3 * i]
            if count >= 0:
                counts[status_id] = count
            if like_state == 1:
                liked.add(status_id)
            elif like_state == 2:
                unknown.add(status_id)
            if is_shared:
                reblogged.add(status_id)
        return PageView(bool(raw[0]), bool(raw[1]), counts, liked, reblogged, frozenset(unknown)), other

    def _view_pipeline(
        self, user_id: int | None, status_ids: list[int], alongside: Callable[[Pipeline], object] | None
    ) -> Pipeline:
        pipe = self.redis.pipeline(transaction=False)
        if user_id is None:
            pipe.mget([count_key(s) for s in status_ids])
        else:  # EVALSHA itself: a Script called on a pipeline costs a SCRIPT EXISTS round trip each time
            args = [value for status_id in status_ids for value in (status_id, post_score(status_id))]
            pipe.evalsha(self._view.sha, 2, favs_key(user_id), reblogs_key(user_id), *args)
        if alongside is not None:
            alongside(pipe)
        return pipe

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
        keys = [favs_key(user_id), count_key(status_id), STREAM]
        limit_args = []
        if rate is not None:
            keys.append(rate.key)
            limit_args = [rate.window_ms, rate.limit]
        reply = await self.durability.run_script(
            self.redis,
            self._change,
            keys=keys,
            args=[
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
                *limit_args,
            ],
        )
        if rate is not None and reply[0] == -3:
            raise OverLimit(rate.decision(int(reply[1]), int(reply[2])))
        changed, count = reply
        return {-1: "load", -2: "check"}.get(changed, bool(changed)), int(count)

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
        async with self.redis.pipeline(transaction=False) as pipe:
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

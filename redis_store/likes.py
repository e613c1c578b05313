"""Likes in Redis: instant to the user, persisted to the graph behind.

A like is one atomic Lua call: it adds the post to the liker's favourites
(``favs:{user}``, scored by like time), bumps the post's counter
(``likes:n:{status}``) and appends a ``like.created`` event to the stream in
the same step, so an acknowledged like is always on its way to the graph.
Liking twice changes nothing. A counter that is missing (first like, or data
lost) starts from the graph's persisted count; a favourites set that is
missing is loaded from the graph once, marked by a sentinel member.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis

from redis_store.events import STREAM
from redis_store.timelines import member

LOADED = "loaded"  # sentinel member (score -1): the favourites set holds all the user's likes
PARTIAL = "partial"  # sentinel member (score -1): only the newest likes were loaded; a miss proves nothing

# KEYS: favs:{user}, likes:n:{status}, stream; ARGV: member, score, initial count, event data, maxlen, event type,
# and '1' once the graph was consulted for this pair. Returns {changed (1/0), count}; {-1, 0} when the user's
# favourites are not loaded yet; {-2, 0} when they are partial and this post is not among them.
_CHANGE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0} end
local liked = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not liked and ARGV[7] ~= '1' and redis.call('ZSCORE', KEYS[1], 'partial') then return {-2, 0} end
local like = ARGV[6] == 'like.created'
if (like and liked) or (not like and not liked) then
  return {0, tonumber(redis.call('GET', KEYS[2]) or ARGV[3])}
end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], ARGV[3]) end
local n
if like then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  n = redis.call('INCR', KEYS[2])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
  n = redis.call('DECR', KEYS[2])
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'type', ARGV[6], 'data', ARGV[4])
return {1, n}
"""


# KEYS: favs:{u}, shared:{u}; ARGV: status ids. One round trip for a page's like counts and the
# viewer's own state: {favs loaded, shares loaded, then per post: count (-1 if none), liked, shared}.
_VIEW = """
local out = {redis.call('EXISTS', KEYS[1]), redis.call('EXISTS', KEYS[2])}
for _, sid in ipairs(ARGV) do
  out[#out + 1] = tonumber(redis.call('GET', 'likes:n:' .. sid) or -1)
  out[#out + 1] = redis.call('ZSCORE', KEYS[1], string.rep('0', 19 - #sid) .. sid) and 1 or 0
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


def reblogs_key(user_id: int) -> str:
    """Hash: original post id → the user's reblog of it ("loaded" marks it filled from the graph)."""
    return f"shared:{user_id}"


def favs_key(user_id: int) -> str:
    return f"favs:{user_id}"


def count_key(status_id: int) -> str:
    return f"likes:n:{status_id}"


def like_score(like_id: int) -> int:
    """The like's snowflake without its sequence bits: exact in a double, ordered by time."""
    return like_id >> 12


class LikeStore:
    def __init__(self, redis: aioredis.Redis, stream_maxlen: int) -> None:
        self.redis = redis
        self.stream_maxlen = stream_maxlen
        self._change = redis.register_script(_CHANGE)
        self._view = redis.register_script(_VIEW)

    async def view(self, user_id: int, status_ids: list[int]) -> PageView:
        raw = await self._view(keys=[favs_key(user_id), reblogs_key(user_id)], args=status_ids)
        counts, liked, reblogged = {}, set(), set()
        for i, status_id in enumerate(status_ids):
            count, is_liked, is_shared = raw[2 + 3 * i : 5 + 3 * i]
            if count >= 0:
                counts[status_id] = count
            if is_liked:
                liked.add(status_id)
            if is_shared:
                reblogged.add(status_id)
        return PageView(bool(raw[0]), bool(raw[1]), counts, liked, reblogged)

    async def change(
        self,
        event_type: str,
        user_id: int,
        status_id: int,
        like_id: int,
        persisted_count: int,
        event: dict,
        graph_checked: bool = False,
    ) -> tuple[bool | str, int]:
        """Apply a like or unlike: (whether anything changed, the post's like count).

        Instead of a bool, "load" means the user's favourites must be loaded from the graph first, and
        "check" that they were loaded partially and the graph must say whether this post is liked.
        """
        changed, count = await self._change(
            keys=[favs_key(user_id), count_key(status_id), STREAM],
            args=[
                member(status_id),
                like_score(like_id),
                persisted_count,
                orjson.dumps(event),
                self.stream_maxlen,
                event_type,
                "1" if graph_checked else "0",
            ],
        )
        return {-1: "load", -2: "check"}.get(changed, bool(changed)), int(count)

    async def remember_like(self, user_id: int, status_id: int, like_id: int) -> None:
        """Record a like the graph knows of but the partial favourites set did not hold."""
        await self.redis.zadd(favs_key(user_id), {member(status_id): like_score(like_id)})

    async def favourites_loaded(self, user_id: int) -> bool:
        return bool(await self.redis.exists(favs_key(user_id)))

    async def load_favourites(self, user_id: int, likes: list[tuple[int, int]], complete: bool) -> None:
        """Fill a user's favourites from the graph's (status id, like id) pairs, plus the sentinel."""
        mapping = {member(status_id): like_score(like_id) for status_id, like_id in likes}
        await self.redis.zadd(favs_key(user_id), {LOADED if complete else PARTIAL: -1, **mapping}, nx=True)

    async def counts(self, status_ids: list[int]) -> dict[int, int]:
        """Live like counts of the posts that have a counter."""
        if not status_ids:
            return {}
        values = await self.redis.mget([count_key(s) for s in status_ids])
        return {s: int(v) for s, v in zip(status_ids, values, strict=True) if v is not None}

    async def favourites_page(self, user_id: int, max_id: int | None, since_id: int | None, limit: int) -> list[int]:
        """Status ids the user liked, most recent like first; cursors are like ids."""
        high = f"({like_score(max_id)}" if max_id is not None else "+inf"
        low = f"({like_score(since_id)}" if since_id is not None else "0"
        rows = await self.redis.zrevrangebyscore(favs_key(user_id), high, low, start=0, num=limit, withscores=True)
        return [int(m) for m, _ in rows]

    async def like_scores(self, user_id: int, status_ids: list[int]) -> dict[int, int]:
        scores = await self.redis.zmscore(favs_key(user_id), [member(s) for s in status_ids]) if status_ids else []
        return {s: int(score) for s, score in zip(status_ids, scores, strict=True) if score is not None}

"""Home timelines, celebrity outboxes and follow sets in Redis.

Entries are status ids stored as zero-padded 19-digit members of sorted sets
that all have score 0, and are ranged lexicographically. Snowflake ids do not
fit a double's 53-bit mantissa, so score ranges would be off by a few ids;
lexicographic ranges over fixed-width decimal strings are exact, and paging
cursors (``max_id``, ``since_id``, ``min_id``) map straight onto them.

Keys (each capped or expiring; a user's keys expire ``inactive_days`` after their last read):
  ``tl:{user}``       the user's home inbox: capped at ``timeline_max``; expires with ``active:``
  ``tl:{user}:rb``    hash, original → the reblog of it in the inbox (reblog dedupe), plus
                      ``r<reblog>`` → original, so that an entry leaving the inbox (trimmed or
                      removed) takes its tracking along: at most two fields per inbox entry;
                      expires with the inbox
  ``outbox:{author}`` a celebrity's recent posts: capped at ``outbox_max``; deleted on demotion
  ``celebs:{user}``   the celebrity authors the user follows (read-time merge): at most the
                      celebrities there are; replaced on rebuild, expires with the inbox
  ``active:{user}``   present while the user was active in the last ``inactive_days`` (its TTL);
                      fan-out skips users without it and their next read rebuilds
  ``celeb:ready:{author}`` the author's followers all have them in ``celebs:``; posts go to the
                      outbox only while it exists: one per celebrity, deleted on demotion
  ``unfollowed:{author}:{user}`` a recent unfollow, for ``UNFOLLOW_GUARD_SECONDS``: late fan-out
                      writes for the pair are dropped
  ``tagfollows:{user}`` set, the hashtags the user follows (read-time merge of pulled tags): at most
                      the tags they follow; refilled on rebuild, expires with the inbox
  ``tagfollowers:{tag}`` how many accounts follow the tag: one per followed tag
  ``tagpull:{tag}``   the tag has so many followers that its posts are pulled at read time from its
                      tag timeline (``tagtl:{tag}``, kept by ``redis_store.discovery``) rather than
                      pushed: one per such tag, deleted when its followers fall back under the line
  ``streaming:online`` presence of open streams (``redis_store.live``); ``stream:{user}`` and
                      ``stream:celebrity:{author}`` are pub/sub channels, which store nothing
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from config import Settings
from redis_store.client import redis_from

WIDTH = 19


def member(status_id: int) -> str:
    return f"{status_id:0{WIDTH}d}"


def timeline_key(user_id: int) -> str:
    return f"tl:{user_id}"


def outbox_key(author_id: int) -> str:
    return f"outbox:{author_id}"


def celebs_key(user_id: int) -> str:
    return f"celebs:{user_id}"


def reblogs_key(user_id: int) -> str:
    return f"tl:{user_id}:rb"


def stream_channel(user_id: int) -> str:
    return f"stream:{user_id}"


def celebrity_channel(author_id: int) -> str:
    """Where a celebrity's new posts are announced once; their followers' streams subscribe to it."""
    return f"stream:celebrity:{author_id}"


ONLINE = "streaming:online"  # sorted set: user id -> expiry of their newest open stream (redis_store.live)
Entry = tuple[int, int | None]  # (status id, id of the post it reblogs)


def user_keys(user_ids: list[int]) -> list[str]:
    keys = [ONLINE]
    for user_id in user_ids:
        keys += (active_key(user_id), timeline_key(user_id), reblogs_key(user_id), stream_channel(user_id))
    return keys


def entry_args(entries: list[Entry]) -> list[str]:
    args: list[str] = []
    for status_id, reblog_of in entries:
        args += (member(status_id), member(reblog_of) if reblog_of is not None else "")
    return args


TAG_TIMELINE_PREFIX = "tagtl:"  # + tag: a tag's timeline (``redis_store.discovery`` keeps it)
TAG_PULL_PREFIX = "tagpull:"  # + tag: the tag is pulled at read time


def tag_timeline_key(tag: str, only_media: bool = False) -> str:
    return f"{TAG_TIMELINE_PREFIX}{tag}:media" if only_media else f"{TAG_TIMELINE_PREFIX}{tag}"


def tag_follows_key(user_id: int) -> str:
    return f"tagfollows:{user_id}"


def tag_pull_key(tag: str) -> str:
    return f"{TAG_PULL_PREFIX}{tag}"


def tag_followers_key(tag: str) -> str:
    """String, how many accounts follow the tag (mirrored from the graph at each follow and unfollow)."""
    return f"tagfollowers:{tag}"


def active_key(user_id: int) -> str:
    return f"active:{user_id}"


def celeb_ready_key(author_id: int) -> str:
    return f"celeb:ready:{author_id}"


def unfollowed_key(user_id: int, author_id: int) -> str:
    return f"unfollowed:{author_id}:{user_id}"


REBUILD_GRACE = 60  # seconds a cold user counts as "rebuilding" (fan-out delivers to them) without a finished rebuild
UNFOLLOW_GUARD_SECONDS = 600  # longer than any fan-out or promotion runs

# KEYS: celebs:{u} per user; ARGV[1] = author, ARGV[2..] = the users' ids, in the same order.
_FOLLOW_CELEBRITY = """
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', 'unfollowed:' .. ARGV[1] .. ':' .. ARGV[i + 1]) == 0 then redis.call('SADD', key, ARGV[1]) end
end
return 1
"""


# KEYS[1] = streaming:online; then per user (active:{u}, tl:{u}, tl:{u}:rb, stream:{u}).
# ARGV[1] = cap, ARGV[2] = author id or '', then pairs (member, reblogged member or '').
# Adds the entries to every active user's inbox, trims it, and pushes an "update"
# to users with an open streaming connection. A reblog is skipped when its
# original, or another reblog of it, is already in the inbox (Mastodon's rule).
# Users who just unfollowed the author are skipped: a fan-out that read the
# follower list before the unfollow must not put the post back. Entries trimmed off the
# end of the inbox take their reblog tracking with them, so the dedupe hash stays within
# two fields per inbox entry and expires with the inbox.
_DELIVER = """
local cap, author = tonumber(ARGV[1]), ARGV[2]
local written = 0
local function forget(rb, m)
  local orig = redis.call('HGET', rb, 'r' .. m)
  if orig then
    redis.call('HDEL', rb, 'r' .. m)
    if redis.call('HGET', rb, orig) == m then redis.call('HDEL', rb, orig) end
  end
end
for i = 2, #KEYS, 4 do
  local tl, rb, chan = KEYS[i + 1], KEYS[i + 2], KEYS[i + 3]
  local uid = string.sub(chan, 8)
  local unfollowed = author ~= '' and redis.call('EXISTS', 'unfollowed:' .. author .. ':' .. uid) == 1
  if redis.call('EXISTS', KEYS[i]) == 1 and not unfollowed then
    local added = {}
    for j = 3, #ARGV, 2 do
      local m, orig = ARGV[j], ARGV[j + 1]
      local wanted = true
      if orig ~= '' then
        local previous = redis.call('HGET', rb, orig)
        if redis.call('ZSCORE', tl, orig) or (previous and previous ~= m and redis.call('ZSCORE', tl, previous)) then
          wanted = false
        else
          if previous and previous ~= m then redis.call('HDEL', rb, 'r' .. previous) end
          redis.call('HSET', rb, orig, m, 'r' .. m, orig)
          local ttl = redis.call('PTTL', tl)
          if ttl > 0 then redis.call('PEXPIRE', rb, ttl) end
        end
      end
      if wanted and redis.call('ZADD', tl, 0, m) == 1 then added[#added + 1] = m end
    end
    local size = redis.call('ZCARD', tl)
    if size > cap then
      local trimmed = redis.call('ZPOPMIN', tl, size - cap)
      for k = 1, #trimmed, 2 do forget(rb, trimmed[k]) end
    end
    if #added > 0 and redis.call('ZSCORE', KEYS[1], uid) then
      for _, m in ipairs(added) do
        redis.call('PUBLISH', chan, '{"event":"update","status_id":"' .. string.gsub(m, '^0+', '') .. '"}')
      end
    end
    written = written + 1
  end
end
return written
"""

# KEYS as for _DELIVER; ARGV = pairs (member, reblogged member or ''). Removes entries, forgets
# reblog tracking that pointed at them, pushes a "delete" to connected users that had them.
_REMOVE = """
for i = 2, #KEYS, 4 do
  local tl, rb, chan = KEYS[i + 1], KEYS[i + 2], KEYS[i + 3]
  local online = redis.call('ZSCORE', KEYS[1], string.sub(chan, 8))
  for j = 1, #ARGV, 2 do
    local m, orig = ARGV[j], ARGV[j + 1]
    local removed = redis.call('ZREM', tl, m)
    if orig ~= '' then
      if redis.call('HGET', rb, orig) == m then redis.call('HDEL', rb, orig) end
      redis.call('HDEL', rb, 'r' .. m)
    end
    if removed == 1 and online then
      redis.call('PUBLISH', chan, '{"event":"delete","status_id":"' .. string.gsub(m, '^0+', '') .. '"}')
    end
  end
end
return 1
"""

# KEYS: tl:{u}, celebs:{u}, active:{u}, tl:{u}:rb, tagfollows:{u}; ARGV = lo, hi, limit, ascending ("1"/"0"),
# active seconds, rebuild grace seconds, the tag-pull prefix, the tag-timeline prefix.
# One round trip per feed read: returns whether the user's inbox is kept (``active:`` is "1"), keeping
# their keys alive, then the inbox page, the same page of every followed celebrity's outbox and the same
# page of every followed tag that is pulled (rule: a tag with very many followers is pulled, like a celebrity).
# A user whose inbox is not kept is marked "rebuilding" for a short grace: fan-out delivers to them
# from now on (so nothing posted during the rebuild is missed), but only a finished rebuild
# (``finish_rebuild``) makes the inbox count as kept. A rebuild that died half-way is redone by
# the next read, never taken for a complete inbox.
_READ_PAGE = """
local lo, hi, limit, asc, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1', ARGV[5]
local was_active = redis.call('GET', KEYS[3]) == '1' and 1 or 0
if was_active == 1 then
  redis.call('SET', KEYS[3], 1, 'EX', ttl)
else
  redis.call('SET', KEYS[3], 'rebuilding', 'EX', ARGV[6])
end
for i = 1, 5 do if i ~= 3 then redis.call('EXPIRE', KEYS[i], ttl) end end
local function page(key)
  if asc then return redis.call('ZRANGEBYLEX', key, lo, hi, 'LIMIT', 0, limit) end
  return redis.call('ZREVRANGEBYLEX', key, hi, lo, 'LIMIT', 0, limit)
end
local out = {tostring(was_active)}
for _, m in ipairs(page(KEYS[1])) do out[#out + 1] = m end
for _, author in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  for _, m in ipairs(page('outbox:' .. author)) do out[#out + 1] = m end
end
for _, tag in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  if redis.call('EXISTS', ARGV[7] .. tag) == 1 then
    for _, m in ipairs(page(ARGV[8] .. tag)) do out[#out + 1] = m end
  end
end
return out
"""


@dataclass(frozen=True)
class PageBounds:
    """A lexicographic window over ids: (``after``, ``before``), both exclusive, plus direction."""

    lo: str
    hi: str
    ascending: bool

    @classmethod
    def from_cursors(cls, max_id: int | None, since_id: int | None, min_id: int | None) -> PageBounds:
        hi = f"({member(max_id)}" if max_id is not None else "+"
        if min_id is not None:  # the page right after min_id, oldest first
            return cls(f"({member(min_id)}", hi, True)
        lo = f"({member(since_id)}" if since_id is not None else "-"
        return cls(lo, hi, False)

    @property
    def after(self) -> int:
        return int(self.lo[1:]) if self.lo != "-" else 0

    @property
    def before(self) -> int:
        return int(self.hi[1:]) if self.hi != "+" else 2**63 - 1


class TimelineStore:
    """Redis operations on timelines; the actors are its only writers."""

    @classmethod
    def from_settings(cls, settings: Settings, redis: aioredis.Redis | None = None) -> TimelineStore:
        return cls(redis or redis_from(settings), settings.timeline_max, settings.outbox_max, settings.inactive_days)

    def __init__(self, redis: aioredis.Redis, timeline_max: int, outbox_max: int, inactive_days: int) -> None:
        self.redis = redis
        self.timeline_max = timeline_max
        self.outbox_max = outbox_max
        self.active_seconds = inactive_days * 86_400
        self._deliver = redis.register_script(_DELIVER)
        self._follow_celebrity = redis.register_script(_FOLLOW_CELEBRITY)
        self._remove = redis.register_script(_REMOVE)
        self._read_page = redis.register_script(_READ_PAGE)

    # -- writes (called by the actors) -------------------------------------

    async def deliver(self, entries: list[Entry], user_ids: list[int], author_id: int | None = None) -> int:
        """Add posts (all by ``author_id``, when given) to the inboxes of the active users among ``user_ids``.

        One round trip. Users who just unfollowed ``author_id`` are skipped.
        """
        if not entries or not user_ids:
            return 0
        args = [self.timeline_max, "" if author_id is None else author_id, *entry_args(entries)]
        return int(await self._deliver(keys=user_keys(user_ids), args=args))

    async def remove(self, entries: list[Entry], user_ids: list[int]) -> None:
        if entries and user_ids:
            await self._remove(keys=user_keys(user_ids), args=entry_args(entries))

    async def append_outbox(self, author_id: int, status_ids: list[int], announce: bool = False) -> None:
        """Add posts to a celebrity's outbox; ``announce`` pushes them to followers' open streams."""
        key = outbox_key(author_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {member(s): 0 for s in status_ids})
            pipe.zremrangebyrank(key, 0, -self.outbox_max - 1)
            if announce:
                for status_id in status_ids:
                    pipe.publish(celebrity_channel(author_id), f'{{"event":"update","status_id":"{status_id}"}}')
            await pipe.execute()

    async def remove_from_outbox(self, author_id: int, status_ids: list[int]) -> None:
        if status_ids:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(outbox_key(author_id), *(member(s) for s in status_ids))
                for status_id in status_ids:
                    pipe.publish(celebrity_channel(author_id), f'{{"event":"delete","status_id":"{status_id}"}}')
                await pipe.execute()

    async def clear_outbox(self, author_id: int) -> None:
        await self.redis.delete(outbox_key(author_id))

    async def follow_celebrity(self, user_ids: list[int], author_id: int) -> None:
        """Add the celebrity to the users' read-time merge, except for users who just unfollowed them."""
        if user_ids:
            await self._follow_celebrity(keys=[celebs_key(u) for u in user_ids], args=[author_id, *user_ids])

    async def mark_unfollowed(self, user_id: int, author_id: int) -> None:
        """For a while, no fan-out or promotion that started before the unfollow may write for this pair."""
        await self.redis.set(unfollowed_key(user_id, author_id), 1, ex=UNFOLLOW_GUARD_SECONDS)

    async def clear_unfollowed(self, user_id: int, author_id: int) -> None:
        await self.redis.delete(unfollowed_key(user_id, author_id))

    async def unfollow_celebrity(self, user_ids: list[int], author_id: int) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.srem(celebs_key(user_id), author_id)
            await pipe.execute()

    async def finish_rebuild(self, user_id: int, celebrity_ids: list[int]) -> None:
        """The last step of a rebuild (its entries are delivered): the celebrity set, then the inbox counts as kept."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(celebs_key(user_id))
            if celebrity_ids:
                pipe.sadd(celebs_key(user_id), *celebrity_ids)
            pipe.set(active_key(user_id), 1, ex=self.active_seconds)
            await pipe.execute()

    # -- reads and activity -------------------------------------------------

    async def read_page(self, user_id: int, bounds: PageBounds, limit: int) -> tuple[bool, list[int]]:
        """(whether the user's inbox is kept, the page): inbox plus followed celebrities' outboxes, merged,
        deduplicated, newest first. Reading keeps an active user active; see ``_READ_PAGE``."""
        keys = [timeline_key(user_id), celebs_key(user_id), active_key(user_id), reblogs_key(user_id)]
        args = [bounds.lo, bounds.hi, limit, "1" if bounds.ascending else "0", self.active_seconds, REBUILD_GRACE]
        raw = await self._read_page(
            keys=[*keys, tag_follows_key(user_id)], args=[*args, TAG_PULL_PREFIX, TAG_TIMELINE_PREFIX]
        )
        ids = sorted({int(m) for m in raw[1:]}, reverse=not bounds.ascending)[:limit]
        return raw[0] == "1", sorted(ids, reverse=True)

    async def oldest_entry(self, user_id: int) -> int | None:
        first = await self.redis.zrange(timeline_key(user_id), 0, 0)
        return int(first[0]) if first else None

    async def celebrities_ready(self, author_ids: list[int]) -> list[bool]:
        """For each author, whether they are served by pull (one round trip)."""
        if not author_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for author_id in author_ids:
                pipe.exists(celeb_ready_key(author_id))
            return [bool(found) for found in await pipe.execute()]

    # -- followed tags ---------------------------------------------------------

    async def follow_tag(self, user_id: int, tag: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(tag_follows_key(user_id), tag)
            pipe.expire(tag_follows_key(user_id), self.active_seconds)
            await pipe.execute()

    async def unfollow_tag(self, user_id: int, tag: str) -> None:
        await self.redis.srem(tag_follows_key(user_id), tag)

    async def set_followed_tags(self, user_id: int, tags: list[str]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(tag_follows_key(user_id))
            if tags:
                pipe.sadd(tag_follows_key(user_id), *tags)
                pipe.expire(tag_follows_key(user_id), self.active_seconds)
            await pipe.execute()

    async def followed_tags(self, user_id: int) -> set[str]:
        return set(await self.redis.smembers(tag_follows_key(user_id)))

    async def tags_pulled(self, tags: list[str]) -> list[bool]:
        """For each tag, whether its posts are pulled at read time (one round trip)."""
        if not tags:
            return []
        return [bool(n) for n in await self.redis.mget([tag_pull_key(t) for t in tags])]

    async def pushed_tags(self, tags: list[str]) -> list[str]:
        """The tags whose posts are pushed to someone: followed, and not pulled (one round trip)."""
        if not tags:
            return []
        found = await self.redis.mget([*(tag_followers_key(t) for t in tags), *(tag_pull_key(t) for t in tags)])
        counts, pulled = found[: len(tags)], found[len(tags) :]
        return [t for t, n, p in zip(tags, counts, pulled, strict=True) if int(n or 0) > 0 and not p]

    async def set_tag_pulled(self, tag: str, pulled: bool) -> None:
        if pulled:
            await self.redis.set(tag_pull_key(tag), 1)
        else:
            await self.redis.delete(tag_pull_key(tag))

    async def tag_entries(self, tags: list[str], limit: int) -> list[Entry]:
        """The newest ``limit`` posts of each tag's timeline (one round trip), as inbox entries."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for tag in tags:
                pipe.zrevrangebylex(tag_timeline_key(tag), "+", "-", 0, limit)
            pages = await pipe.execute()
        return [(int(m), None) for page in pages for m in page]

    async def inbox_entries_in(self, user_id: int, key: str) -> list[int]:
        """The posts of the user's inbox that are also in the sorted set ``key`` (bounded by the inbox)."""
        return [int(m) for m in await self.redis.zinter([timeline_key(user_id), key])]

    async def forget_active(self, user_id: int) -> None:
        await self.redis.delete(active_key(user_id))

    async def is_celebrity_ready(self, author_id: int) -> bool:
        return bool(await self.redis.exists(celeb_ready_key(author_id)))

    async def set_celebrity_ready(self, author_id: int, ready: bool) -> None:
        if ready:
            await self.redis.set(celeb_ready_key(author_id), 1)
        else:
            await self.redis.delete(celeb_ready_key(author_id))

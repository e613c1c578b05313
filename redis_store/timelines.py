"""Home timelines, celebrity outboxes and follow sets in Redis.

Entries are status ids stored as zero-padded 19-digit members of sorted sets
that all have score 0, and are ranged lexicographically. Snowflake ids do not
fit a double's 53-bit mantissa, so score ranges would be off by a few ids;
lexicographic ranges over fixed-width decimal strings are exact, and paging
cursors (``max_id``, ``since_id``, ``min_id``) map straight onto them.

Keys (each capped or expiring; a user's keys expire ``inactive_days`` after their last read). ``{u}`` is
the user's id, ``{a}`` an author's, ``{tag}`` a hashtag's, each in braces: a Redis Cluster hash tag
(``redis_store.slots``), so that every key a script touches is in one slot.
  ``tl:{u}``          the user's home inbox: capped at ``timeline_max``; expires with ``active:``
  ``tl:{u}:rb``       hash, original → the reblog of it in the inbox (reblog dedupe), plus
                      ``r<reblog>`` → original, so that an entry leaving the inbox (trimmed or
                      removed) takes its tracking along: at most two fields per inbox entry;
                      expires with the inbox
  ``outbox:{a}``      a celebrity's recent posts: capped at ``outbox_max``; deleted on demotion
  ``celebs:{u}``      the celebrity authors the user follows (read-time merge): at most the
                      celebrities there are; replaced on rebuild, expires with the inbox
  ``active:{u}``      present while the user was active in the last ``inactive_days`` (its TTL);
                      fan-out skips users without it and their next read rebuilds
  ``celeb:ready:{a}`` the author's followers all have them in ``celebs:``; posts go to the
                      outbox only while it exists: one per celebrity, deleted on demotion
  ``unfollowed:{u}:a`` the user recently unfollowed author ``a``, for ``UNFOLLOW_GUARD_SECONDS``:
                      late fan-out writes for the pair are dropped
  ``tagfollows:{u}``  set, the hashtags the user follows (read-time merge of pulled tags): at most
                      the tags they follow; refilled on rebuild, expires with the inbox
  ``tagfollowers:{tag}`` how many accounts follow the tag: one per followed tag
  ``tagpull:{tag}``   the tag has so many followers that its posts are pulled at read time from its
                      tag timeline (``tagtl:{tag}``, kept by ``redis_store.discovery``) rather than
                      pushed: one per such tag, deleted when its followers fall back under the line
  ``streaming:online:{u}`` present while the user has an open stream (a lease ``redis_store.live``
                      renews); ``stream:{u}`` and ``stream:celebrity:{a}`` are pub/sub channels,
                      which store nothing

On a Redis Cluster (``REDIS_CLUSTER_URLS``) the same code runs; what changes is how work is cut:

* Delivery, removal and a celebrity follow write many users' keys. Each user's part is atomic
  and stays so: one script over all of the user's keys (their inbox, dedupe hash, ``active:``
  flag, unfollow guard, presence and channel), all in the user's slot. A batch of users is one
  script call on a single server, as it always was, and one script per slot on a cluster
  (``slots.by_slot``), sent in one pipeline (redis-py's cluster pipeline sends each node its
  scripts in one batch). Nothing is lost between the slots: each user's write is complete or
  not done, and every script here is idempotent, so the fan-out's retry of an unacknowledged
  batch (``actors.fanout``) redoes only what is missing.
* Presence, which delivery consults to publish only to users with an open stream, is a key per
  user in the user's slot (``streaming:online:{u}``, an expiring lease) instead of one global
  sorted set, so the check stays inside the user's script.
* A home read merges the user's inbox with the outboxes of the celebrities they follow and the
  timelines of the pulled tags they follow, which live in other slots. The user's part
  (activity, rebuild state, TTLs, the inbox page, the two merge sets) is one script in the
  user's slot; it returns the two sets, and one pipeline reads each outbox page and each pulled
  tag's page in its own slot (a tiny script per tag, ``_PULLED_PAGE``, checks ``tagpull:{tag}`` and
  pages ``tagtl:{tag}`` together); the pages are merged here. The same on one server as on a
  cluster: no script builds a key name of its own, since a key it did not declare could live in
  another slot.
  Two round trips then, one for a user who follows no celebrity and no tag. The
  outboxes are then read a moment after the inbox rather than at the same instant: a read that
  overlaps a demotion may miss the demoted author's latest posts once; the next read has them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from config import Settings
from redis_store.client import redis_from
from redis_store.slots import by_slot, is_cluster, mget, queue_script, tagged

WIDTH = 19
OUTBOX, TAG_PULL, TAG_TIMELINE = "outbox", "tagpull", "tagtl"


def member(status_id: int) -> str:
    return f"{status_id:0{WIDTH}d}"


def timeline_key(user_id: int) -> str:
    return tagged("tl", user_id)


def outbox_key(author_id: int | str) -> str:
    return tagged(OUTBOX, author_id)


def celebs_key(user_id: int) -> str:
    return tagged("celebs", user_id)


def reblogs_key(user_id: int) -> str:
    return tagged("tl", user_id, "rb")


def stream_channel(user_id: int) -> str:
    """The user's pub/sub channel (their streams listen on it): in the user's slot, as the scripts that publish
    to it pass it in ``KEYS``."""
    return tagged("stream", user_id)


def celebrity_channel(author_id: int) -> str:
    """Where a celebrity's new posts are announced once; their followers' streams subscribe to it."""
    return tagged("stream:celebrity", author_id)


def online_key(user_id: int) -> str:
    """Present while the user has an open stream: a lease its holder renews (``redis_store.live``)."""
    return tagged("streaming:online", user_id)


Entry = tuple[int, int | None]  # (status id, id of the post it reblogs)
Queue = Callable[[Pipeline], object]  # queues one command on a pipeline


def user_keys(user_ids: list[int], author_id: int | None = None) -> list[str]:
    """Every key a delivery or removal touches, user after user (one slot per user): ``active:``, inbox,
    dedupe hash, channel, presence and, for a delivery of ``author_id``'s posts, the unfollow guard.

    The names of the key functions below, each built from the user's tag once (``tagged(prefix, user)`` is
    ``prefix:{user}``): this runs for every follower of every post, and calling the functions costs five
    times as much (``tests/test_feed.py`` checks that both name the same keys)."""
    keys: list[str] = []
    guard = f":{author_id}" if author_id is not None else ""
    for user_id in user_ids:
        t = f"{{{user_id}}}"
        keys += (f"active:{t}", f"tl:{t}", f"tl:{t}:rb", f"stream:{t}", f"streaming:online:{t}")
        if guard:
            keys.append(f"unfollowed:{t}{guard}")
    return keys


def entry_args(entries: list[Entry]) -> list[str]:
    args: list[str] = []
    for status_id, reblog_of in entries:
        args += (member(status_id), member(reblog_of) if reblog_of is not None else "")
    return args


def tag_timeline_key(tag: str, only_media: bool = False) -> str:
    """A tag's timeline (``redis_store.discovery`` keeps it), in the tag's slot, as is ``tagpull:{tag}``."""
    return tagged(TAG_TIMELINE, tag, "media") if only_media else tagged(TAG_TIMELINE, tag)


def tag_follows_key(user_id: int) -> str:
    return tagged("tagfollows", user_id)


def tag_pull_key(tag: str) -> str:
    return tagged(TAG_PULL, tag)


def tag_followers_key(tag: str) -> str:
    """String, how many accounts follow the tag (mirrored from the graph at each follow and unfollow)."""
    return tagged("tagfollowers", tag)


def active_key(user_id: int) -> str:
    return tagged("active", user_id)


def celeb_ready_key(author_id: int) -> str:
    return tagged("celeb:ready", author_id)


def unfollowed_key(user_id: int, author_id: int) -> str:
    """In the follower's slot: the scripts that write the follower's keys check it."""
    return tagged("unfollowed", user_id, author_id)


REBUILD_GRACE = 60  # seconds a cold user counts as "rebuilding" (fan-out delivers to them) without a finished rebuild
UNFOLLOW_GUARD_SECONDS = 600  # longer than any fan-out or promotion runs

# KEYS: per user (celebs:{u}, unfollowed:{u}:author); ARGV[1] = author.
_FOLLOW_CELEBRITY = """
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then redis.call('SADD', KEYS[i], ARGV[1]) end
end
return 1
"""


# KEYS: per user (active:{u}, tl:{u}, tl:{u}:rb, stream:{u}, streaming:online:{u}) and, when an author is given,
# unfollowed:{u}:author. ARGV[1] = cap, ARGV[2] = author id or '', then pairs (member, reblogged member or '').
# Adds the entries to every active user's inbox, trims it, and pushes an "update"
# to users with an open streaming connection. A reblog is skipped when its
# original, or another reblog of it, is already in the inbox (Mastodon's rule).
# Users who just unfollowed the author are skipped: a fan-out that read the
# follower list before the unfollow must not put the post back. Entries trimmed off the
# end of the inbox take their reblog tracking with them, so the dedupe hash stays within
# two fields per inbox entry and expires with the inbox.
_DELIVER = """
local cap, author = tonumber(ARGV[1]), ARGV[2]
local stride = author == '' and 5 or 6
local written = 0
local function forget(rb, m)
  local orig = redis.call('HGET', rb, 'r' .. m)
  if orig then
    redis.call('HDEL', rb, 'r' .. m)
    if redis.call('HGET', rb, orig) == m then redis.call('HDEL', rb, orig) end
  end
end
for i = 1, #KEYS, stride do
  local tl, rb, chan, online = KEYS[i + 1], KEYS[i + 2], KEYS[i + 3], KEYS[i + 4]
  local unfollowed = author ~= '' and redis.call('EXISTS', KEYS[i + 5]) == 1
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
    if #added > 0 and redis.call('EXISTS', online) == 1 then
      for _, m in ipairs(added) do
        redis.call('PUBLISH', chan, '{"event":"update","status_id":"' .. string.gsub(m, '^0+', '') .. '"}')
      end
    end
    written = written + 1
  end
end
return written
"""

# KEYS as for _DELIVER without an author; ARGV = pairs (member, reblogged member or ''). Removes entries, forgets
# reblog tracking that pointed at them, pushes a "delete" to connected users that had them.
_REMOVE = """
for i = 1, #KEYS, 5 do
  local tl, rb, chan = KEYS[i + 1], KEYS[i + 2], KEYS[i + 3]
  local online = redis.call('EXISTS', KEYS[i + 4]) == 1
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

# KEYS: outbox:{a}, stream:celebrity:{a}; ARGV = cap, announce ("1"/"0"), then members.
# Adds posts to a celebrity's outbox, trims it, and announces them to the followers' open streams.
_APPEND_OUTBOX = """
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], 0, ARGV[i]) end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[1]) - 1)
if ARGV[2] == '1' then
  for i = 3, #ARGV do
    redis.call('PUBLISH', KEYS[2], '{"event":"update","status_id":"' .. string.gsub(ARGV[i], '^0+', '') .. '"}')
  end
end
return 1
"""

# KEYS: outbox:{a}, stream:celebrity:{a}; ARGV = members. Removes posts and announces their deletion.
_REMOVE_FROM_OUTBOX = """
for _, m in ipairs(ARGV) do
  redis.call('ZREM', KEYS[1], m)
  redis.call('PUBLISH', KEYS[2], '{"event":"delete","status_id":"' .. string.gsub(m, '^0+', '') .. '"}')
end
return 1
"""

# ARGV[1..4] = lo, hi, limit, ascending ("1"/"0"): the window of a page, shared by the two read scripts.
_PAGE_FUNCTION = """
local lo, hi, limit, asc = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'
local function page(key)
  if asc then return redis.call('ZRANGEBYLEX', key, lo, hi, 'LIMIT', 0, limit) end
  return redis.call('ZREVRANGEBYLEX', key, hi, lo, 'LIMIT', 0, limit)
end
"""

# KEYS: tl:{u}, celebs:{u}, active:{u}, tl:{u}:rb, tagfollows:{u}; ARGV = the page's window (_PAGE_FUNCTION),
# active seconds, rebuild grace seconds.
# Returns {whether the user's inbox is kept ("1"/"0"), then the inbox page; the followed celebrities to read;
# the followed tags to read}, keeping the user's keys alive. The outboxes and tag timelines are other owners'
# keys (other slots on a cluster): the caller reads them (``_pulled_pages``), on one server as on a cluster.
# A user whose inbox is not kept is marked "rebuilding" for a short grace: fan-out delivers to them
# from now on (so nothing posted during the rebuild is missed), but only a finished rebuild
# (``finish_rebuild``) makes the inbox count as kept. A rebuild that died half-way is redone by
# the next read, never taken for a complete inbox.
_READ_PAGE = (
    _PAGE_FUNCTION
    + """
local ttl = ARGV[5]
local was_active = redis.call('GET', KEYS[3]) == '1' and 1 or 0
if was_active == 1 then
  redis.call('SET', KEYS[3], 1, 'EX', ttl)
else
  redis.call('SET', KEYS[3], 'rebuilding', 'EX', ARGV[6])
end
for i = 1, 5 do if i ~= 3 then redis.call('EXPIRE', KEYS[i], ttl) end end
local out = {tostring(was_active)}
for _, m in ipairs(page(KEYS[1])) do out[#out + 1] = m end
return {out, redis.call('SMEMBERS', KEYS[2]), redis.call('SMEMBERS', KEYS[5])}
"""
)

# KEYS: tagpull:{tag}, tagtl:{tag}; ARGV = the page's window. The page of the tag's timeline if the tag is pulled.
_PULLED_PAGE = _PAGE_FUNCTION + "if redis.call('EXISTS', KEYS[1]) == 0 then return {} end return page(KEYS[2])"


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
        self._append_outbox = redis.register_script(_APPEND_OUTBOX)
        self._remove_from_outbox = redis.register_script(_REMOVE_FROM_OUTBOX)
        self._read_page = redis.register_script(_READ_PAGE)
        self._pulled_page = redis.register_script(_PULLED_PAGE)

    # -- running scripts over many users ---------------------------------------

    async def _per_slot(
        self, script: AsyncScript, users: list[int], keys_of: Callable[[list[int]], list[str]], args: Sequence[Any]
    ) -> list[Any]:
        """Run ``script`` over the users' keys: once for all of them on a single server (one round trip), once
        per slot on a cluster, every call in one pipeline. Returns the calls' replies."""
        groups = by_slot(self.redis, users, timeline_key)  # every key of a user is in the user's slot
        if len(groups) == 1:
            return [await script(keys=keys_of(groups[0]), args=args)]

        def call(group: list[int]) -> Queue:
            return lambda pipe: queue_script(pipe, script, keys_of(group), args)

        return await self._pipelined([call(group) for group in groups], script)

    async def _pipelined(self, calls: list[Queue], *scripts: AsyncScript) -> list[Any]:
        """The replies of ``calls``, each of which queues one command, sent in one non-transactional pipeline.

        A server that lost ``scripts`` (it restarted) refuses the calls of them it was sent: the scripts are
        loaded and those calls, and only those, sent again (the others ran: sending them twice would push
        their stream events twice)."""
        replies = await self._execute(calls)
        lost = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if lost:
            for script in scripts:
                await self.redis.script_load(script.script)
            for i, reply in zip(lost, await self._execute([calls[i] for i in lost]), strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def _execute(self, calls: list[Queue]) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for call in calls:
                call(pipe)
            return await pipe.execute(raise_on_error=False)

    # -- writes (called by the actors) -------------------------------------

    async def deliver(self, entries: list[Entry], user_ids: list[int], author_id: int | None = None) -> int:
        """Add posts (all by ``author_id``, when given) to the inboxes of the active users among ``user_ids``;
        returns how many inboxes were written.

        One round trip (on a cluster, one script per slot in it). Users who just unfollowed ``author_id`` are
        skipped.
        """
        if not entries or not user_ids:
            return 0
        args = [self.timeline_max, "" if author_id is None else author_id, *entry_args(entries)]
        replies = await self._per_slot(self._deliver, user_ids, lambda users: user_keys(users, author_id), args)
        return sum(int(written) for written in replies)

    async def remove(self, entries: list[Entry], user_ids: list[int]) -> None:
        if entries and user_ids:
            await self._per_slot(self._remove, user_ids, user_keys, entry_args(entries))

    async def append_outbox(self, author_id: int, status_ids: list[int], announce: bool = False) -> None:
        """Add posts to a celebrity's outbox; ``announce`` pushes them to followers' open streams."""
        if status_ids:
            args = [self.outbox_max, "1" if announce else "0", *(member(s) for s in status_ids)]
            await self._append_outbox(keys=[outbox_key(author_id), celebrity_channel(author_id)], args=args)

    async def remove_from_outbox(self, author_id: int, status_ids: list[int]) -> None:
        if status_ids:
            await self._remove_from_outbox(
                keys=[outbox_key(author_id), celebrity_channel(author_id)], args=[member(s) for s in status_ids]
            )

    async def clear_outbox(self, author_id: int) -> None:
        await self.redis.delete(outbox_key(author_id))

    async def follow_celebrity(self, user_ids: list[int], author_id: int) -> None:
        """Add the celebrity to the users' read-time merge, except for users who just unfollowed them."""
        if user_ids:

            def keys_of(users: list[int]) -> list[str]:
                return [key for u in users for key in (celebs_key(u), unfollowed_key(u, author_id))]

            await self._per_slot(self._follow_celebrity, user_ids, keys_of, [author_id])

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
        async with self.redis.pipeline(transaction=True) as pipe:  # both keys in the user's slot
            pipe.delete(celebs_key(user_id))
            if celebrity_ids:
                pipe.sadd(celebs_key(user_id), *celebrity_ids)
            pipe.set(active_key(user_id), 1, ex=self.active_seconds)
            await pipe.execute()

    # -- reads and activity -------------------------------------------------

    async def read_page(self, user_id: int, bounds: PageBounds, limit: int) -> tuple[bool, list[int]]:
        """(whether the user's inbox is kept, the page): inbox plus followed celebrities' outboxes and pulled
        tags, merged, deduplicated, newest first. Reading keeps an active user active; see ``_READ_PAGE``.

        One round trip, and a second one for the outboxes and pulled tags (other owners' keys, so other slots
        on a cluster) when the user follows any (see the module docstring)."""
        keys = [
            timeline_key(user_id),
            celebs_key(user_id),
            active_key(user_id),
            reblogs_key(user_id),
            tag_follows_key(user_id),
        ]
        window = [bounds.lo, bounds.hi, limit, "1" if bounds.ascending else "0"]
        head, celebrities, tags = await self._read_page(keys=keys, args=[*window, self.active_seconds, REBUILD_GRACE])
        members = head[1:]
        if celebrities or tags:
            members += await self._pulled_pages(celebrities, tags, window)
        ids = sorted({int(m) for m in members}, reverse=not bounds.ascending)[:limit]
        return head[0] == "1", sorted(ids, reverse=True)

    async def _pulled_pages(self, celebrities: list[str], tags: list[str], window: list[Any]) -> list[str]:
        """The page's window of each celebrity's outbox and of each pulled tag's timeline, each read in its own
        slot, all in one pipeline."""
        lo, hi, limit, ascending = window

        def outbox_page(author: str) -> Queue:
            if ascending == "1":
                return lambda pipe: pipe.zrangebylex(outbox_key(author), lo, hi, 0, limit)
            return lambda pipe: pipe.zrevrangebylex(outbox_key(author), hi, lo, 0, limit)

        def tag_page(tag: str) -> Queue:
            return lambda pipe: queue_script(
                pipe, self._pulled_page, [tag_pull_key(tag), tag_timeline_key(tag)], window
            )

        calls = [*(outbox_page(author) for author in celebrities), *(tag_page(tag) for tag in tags)]
        return [m for page in await self._pipelined(calls, self._pulled_page) for m in page]

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
        return [bool(n) for n in await mget(self.redis, [tag_pull_key(t) for t in tags])]

    async def pushed_tags(self, tags: list[str]) -> list[str]:
        """The tags whose posts are pushed to someone: followed, and not pulled (one round trip)."""
        found = await mget(self.redis, [*(tag_followers_key(t) for t in tags), *(tag_pull_key(t) for t in tags)])
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
        """The posts of the user's inbox that are also in the sorted set ``key`` (bounded by the inbox).

        One ``ZINTER`` on a single server; on a cluster ``key`` is in another slot: the inbox, then which of
        its entries ``key`` holds."""
        if not is_cluster(self.redis):
            return [int(m) for m in await self.redis.zinter([timeline_key(user_id), key])]
        inbox = await self.redis.zrange(timeline_key(user_id), 0, -1)
        if not inbox:
            return []
        return [
            int(m) for m, score in zip(inbox, await self.redis.zmscore(key, inbox), strict=True) if score is not None
        ]

    async def forget_active(self, user_id: int) -> None:
        await self.redis.delete(active_key(user_id))

    async def is_celebrity_ready(self, author_id: int) -> bool:
        return bool(await self.redis.exists(celeb_ready_key(author_id)))

    async def set_celebrity_ready(self, author_id: int, ready: bool) -> None:
        if ready:
            await self.redis.set(celeb_ready_key(author_id), 1)
        else:
            await self.redis.delete(celeb_ready_key(author_id))

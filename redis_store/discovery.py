"""Discovery in Redis: tag and public timelines, tag history, trends and the explore pool.

Timelines hold status ids as fixed-width members of score-0 sorted sets,
ranged lexicographically, like home inboxes (``redis_store.timelines``
explains why). Only public posts that are not reblogs go in; everything is
local, so the local public timeline is the public one.

Keys (all capped or expiring; ``{discovery}`` is a literal hash tag, other braces name a variable part):
  ``tagtl:{tag}``, ``tagtl:{tag}:media``  a tag's posts (those with media): capped at ``tag_timeline_max``,
                                          expire ``TAG_TIMELINE_DAYS`` after the tag's last use;
                                          the home feed pulls from the first for a tag with very many
                                          followers (``redis_store.timelines.tag_timeline_key``)
  ``publictl``, ``publictl:media``        every public post (with media): capped at ``public_timeline_max``
  ``tagday:{tag}:{day}:uses``             set of the tag's post ids that day (UTC day start, seconds);
  ``tagday:{tag}:{day}:accounts``         set of the accounts that used it that day; both expire
                                          after ``HISTORY_DAYS`` + 1 days (Mastodon keeps a count and
                                          a HyperLogLog; sets make a redelivered event count once)
  ``tagfollowers:{tag}``                  string, how many accounts follow the tag (``redis_store.timelines``)
  ``tags:{discovery}:recent``             sorted set, tag → the last time (ms) a public post used it:
                                          the trend candidates, and what hashtag search ranks by;
                                          trimmed to ``RECENT_TAG_DAYS`` by the trends refresh
  ``trends:{discovery}:statuses:candidates``  sorted set, status id → last interaction (ms); trimmed to two days
  ``trends:{discovery}:tags:max``         hash, tag → ``"score:at_ms"``, each tag's peak (Mastodon's max_score)
  ``trends:{discovery}:tags``,            sorted sets, the current trends by score (replaced by each refresh)
  ``trends:{discovery}:statuses``
  ``explore:{discovery}:ranked``          sorted set, the explore pool: recent public posts with media by
                                          engagement score (replaced by each refresh)

On a Redis Cluster: the keys of the trends refresh share the hash tag ``{discovery}`` (one slot), because
the refresh replaces them in one transaction, so that a reader never sees a ranking deleted and not yet
refilled. Everything else here is written and read one key per command (non-transactional pipelines,
which a cluster client splits per node), and the live like counters of many posts are read per slot
(``slots.mget``).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from redis_store.likes import count_key
from redis_store.slots import mget, tagged
from redis_store.timelines import PageBounds, member, tag_followers_key, tag_timeline_key

PUBLIC = "publictl"
TRENDS_TAG = "discovery"  # the hash tag of the keys the trends refresh replaces in one transaction
TAGS_RECENT = tagged("tags", TRENDS_TAG, "recent")
STATUS_CANDIDATES = tagged("trends", TRENDS_TAG, "statuses", "candidates")
TAG_PEAKS = tagged("trends", TRENDS_TAG, "tags", "max")
TRENDING_TAGS = tagged("trends", TRENDS_TAG, "tags")
TRENDING_STATUSES = tagged("trends", TRENDS_TAG, "statuses")
EXPLORE = tagged("explore", TRENDS_TAG, "ranked")
HISTORY_DAYS = 7
DAY_SECONDS = 86_400
RECENT_TAG_DAYS = 7
CANDIDATE_MS = 2 * DAY_SECONDS * 1000
TAG_TIMELINE_DAYS = 180  # a tag unused this long loses its timeline (one key per tag ever used otherwise)


def public_key(only_media: bool = False) -> str:
    return f"{PUBLIC}:media" if only_media else PUBLIC


def day_start(unix_ms: int) -> int:
    """The UTC day (its start, in seconds) a time falls in."""
    seconds = unix_ms // 1000
    return seconds - seconds % DAY_SECONDS


def uses_key(tag: str, day: int) -> str:
    return f"tagday:{tag}:{day}:uses"


def accounts_key(tag: str, day: int) -> str:
    return f"tagday:{tag}:{day}:accounts"


@dataclass(frozen=True)
class PublicPost:
    """What the timelines need to know of a public post."""

    id: int
    account_id: int
    created_at: int  # ms
    tags: list[str]
    has_media: bool
    reply: bool = False  # a comment: in its tags' timelines, not in the public one


@dataclass(frozen=True)
class DayCount:
    day: int  # UTC day start, seconds
    uses: int
    accounts: int


class DiscoveryStore:
    """Redis operations on the discovery keys; the discovery consumer and the trends refresh write them."""

    def __init__(self, redis: aioredis.Redis, tag_timeline_max: int, public_timeline_max: int) -> None:
        self.redis = redis
        self.tag_timeline_max = tag_timeline_max
        self.public_timeline_max = public_timeline_max

    # -- writes (the discovery consumer) --------------------------------------------------------

    async def add_posts(self, posts: list[PublicPost]) -> None:
        """Index public posts: timelines (trimmed), tag history, recent tags. Idempotent; one round trip."""
        if not posts:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            capped: dict[str, int] = {}
            for post in posts:
                m = member(post.id)
                public = [] if post.reply else [public_key()]
                keys = public + [tag_timeline_key(t) for t in post.tags]
                if post.has_media:
                    keys += [public_key(True)] * bool(public) + [tag_timeline_key(t, True) for t in post.tags]
                for key in keys:
                    pipe.zadd(key, {m: 0})
                    capped[key] = self.public_timeline_max if key.startswith(PUBLIC) else self.tag_timeline_max
                day = day_start(post.created_at)
                for tag in post.tags:
                    pipe.sadd(uses_key(tag, day), post.id)
                    pipe.sadd(accounts_key(tag, day), post.account_id)
                    for key in (uses_key(tag, day), accounts_key(tag, day)):
                        pipe.expireat(key, day + (HISTORY_DAYS + 1) * DAY_SECONDS)
                if post.tags:
                    pipe.zadd(TAGS_RECENT, {t: post.created_at for t in post.tags}, gt=True)
            for key, cap in capped.items():
                pipe.zremrangebyrank(key, 0, -cap - 1)
                if not key.startswith(PUBLIC):
                    pipe.expire(key, TAG_TIMELINE_DAYS * DAY_SECONDS)
            await pipe.execute()

    async def remove_post(self, status_id: int, tags: list[str]) -> None:
        m = member(status_id)
        keys = [public_key(), public_key(True)]
        keys += [tag_timeline_key(t, media) for t in tags for media in (False, True)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zrem(key, m)
            pipe.zrem(STATUS_CANDIDATES, status_id)
            pipe.zrem(TRENDING_STATUSES, status_id)
            pipe.zrem(EXPLORE, status_id)
            await pipe.execute()

    async def note_interactions(self, touched: dict[int, int]) -> None:
        """Posts that were liked or shared (status id → when, ms): candidates for trending."""
        if touched:
            await self.redis.zadd(STATUS_CANDIDATES, {str(k): v for k, v in touched.items()}, gt=True)

    async def set_tag_followers(self, tag: str, count: int) -> None:
        await self.redis.set(tag_followers_key(tag), count)

    # -- reads --------------------------------------------------------------------------------

    async def pages(self, keys: list[str], bounds: PageBounds, limit: int) -> list[int]:
        """The union of the same page of several timelines, newest first (oldest first pages: the
        ``limit`` just after the cursor, still returned newest first). One round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                if bounds.ascending:
                    pipe.zrangebylex(key, bounds.lo, bounds.hi, 0, limit)
                else:
                    pipe.zrevrangebylex(key, bounds.hi, bounds.lo, 0, limit)
            found = {int(m) for page in await pipe.execute() for m in page}
        ids = sorted(found, reverse=not bounds.ascending)[:limit]
        return sorted(ids, reverse=True)

    async def in_all(self, keys: list[str], status_ids: list[int]) -> list[int]:
        """Those of ``status_ids`` that every timeline of ``keys`` holds (one round trip)."""
        if not keys or not status_ids:
            return status_ids
        members = [member(i) for i in status_ids]
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zmscore(key, members)
            found = await pipe.execute()
        return [i for k, i in enumerate(status_ids) if all(scores[k] is not None for scores in found)]

    async def history(self, tags: list[str], now_ms: int, days: int = HISTORY_DAYS) -> dict[str, list[DayCount]]:
        """Each tag's uses and distinct accounts per UTC day, today first. One round trip for all tags."""
        today = day_start(now_ms)
        day_list = [today - i * DAY_SECONDS for i in range(days)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for tag in tags:
                for day in day_list:
                    pipe.scard(uses_key(tag, day))
                    pipe.scard(accounts_key(tag, day))
            counts = await pipe.execute()
        result: dict[str, list[DayCount]] = {}
        for i, tag in enumerate(tags):
            row = counts[i * days * 2 : (i + 1) * days * 2]
            result[tag] = [DayCount(day, row[2 * k], row[2 * k + 1]) for k, day in enumerate(day_list)]
        return result

    async def ranked(self, key: str, offset: int, limit: int) -> list[str]:
        """Members of a score-ranked set, best first."""
        return await self.redis.zrevrange(key, offset, offset + limit - 1)

    # -- the trends refresh -------------------------------------------------------------------

    async def recent_tags(self, since_ms: int) -> list[str]:
        return await self.redis.zrangebyscore(TAGS_RECENT, since_ms, "+inf")

    async def status_candidates(self, since_ms: int) -> list[int]:
        return [int(m) for m in await self.redis.zrangebyscore(STATUS_CANDIDATES, since_ms, "+inf")]

    async def tag_peaks(self, tags: list[str]) -> dict[str, tuple[float, int]]:
        if not tags:
            return {}
        raw = await self.redis.hmget(TAG_PEAKS, tags)
        peaks = {}
        for tag, value in zip(tags, raw, strict=True):
            if value:
                score, at = value.split(":")
                peaks[tag] = (float(score), int(at))
        return peaks

    async def like_counts(self, status_ids: list[int]) -> dict[int, int]:
        """The live like counters there are (``redis_store.likes``); the graph's count stands in for the rest."""
        if not status_ids:
            return {}
        values = await mget(self.redis, [count_key(i) for i in status_ids])
        return {i: int(v) for i, v in zip(status_ids, values, strict=True) if v is not None}

    async def recent_media_posts(self, limit: int) -> list[int]:
        return [int(m) for m in await self.redis.zrevrangebylex(public_key(True), "+", "-", 0, limit)]

    async def publish_trends(
        self,
        tags: dict[str, float],
        peaks: dict[str, tuple[float, int]],
        statuses: dict[int, float],
        explore: dict[int, float],
        forget_before_ms: int,
    ) -> None:
        """Replace the trends and the explore pool in one transaction (its keys share one slot); forget old
        candidates."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for key, scores in ((TRENDING_TAGS, tags), (TRENDING_STATUSES, statuses), (EXPLORE, explore)):
                pipe.delete(key)
                if scores:
                    pipe.zadd(key, {str(k): v for k, v in scores.items()})
            if peaks:
                pipe.hset(TAG_PEAKS, mapping={t: f"{s}:{at}" for t, (s, at) in peaks.items()})
            pipe.zremrangebyscore(TAGS_RECENT, "-inf", forget_before_ms - RECENT_TAG_DAYS * DAY_SECONDS * 1000)
            pipe.zremrangebyscore(STATUS_CANDIDATES, "-inf", forget_before_ms - CANDIDATE_MS)
            await pipe.execute()

    async def forget_peaks(self, tags: list[str]) -> None:
        if tags:
            await self.redis.hdel(TAG_PEAKS, *tags)

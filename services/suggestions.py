"""Whom to follow: friends of friends first, then popular active accounts (Mastodon's suggestions).

* Friends of friends (source ``friends_of_friends``): accounts followed by
  those the viewer follows, most such followees first, then the fewest
  followers (the less obvious account is the better find), from the graph
  (``graph.suggestions``: bounded Cypher).
* Then the most followed discoverable accounts that posted within
  ``inactive_days`` (source ``most_followed``): one list for everyone,
  computed at most every ``suggestions_cache_seconds``.
* Never the viewer, accounts they follow, block, are blocked by or mute, nor
  those they dismissed (``DELETE /api/v1/suggestions/:id``: for good, an edge
  in the graph).

A user's ranked ids are cached in Redis for ``suggestions_cache_seconds``
(``suggestions:{user}``, dropped when they follow someone or dismiss a
suggestion); every read re-checks the exclusions for the page's accounts in
the same graph query that loads them, so a follow, block or dismissal made
meanwhile never shows.

Keys: ``suggestions:{user}`` (the user's hash tag, ``redis_store.slots``) and ``suggestions:popular``, JSON,
with ``EX``; each is read and written alone, so they need nothing more on a Redis Cluster.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis

from config import Settings
from graph.driver import Row
from graph.suggestions import SuggestionGraph
from redis_store.slots import tagged
from services.availability import REDIS_DOWN, mark_degraded
from services.errors import NotFound

FRIENDS_OF_FRIENDS = "friends_of_friends"
MOST_FOLLOWED = "most_followed"
# Mastodon's deprecated single ``source`` for each of its sources.
LEGACY_SOURCE = {FRIENDS_OF_FRIENDS: "past_interactions", MOST_FOLLOWED: "global"}
CANDIDATES = 120  # ids kept per user: friends of friends, then popular ones, before the read-time checks
POPULAR_KEY = "suggestions:popular"


def suggestions_key(user_id: int) -> str:
    return tagged("suggestions", user_id)


async def forget_suggestions(redis: aioredis.Redis, user_id: int) -> None:
    """Drop the user's cached suggestions (they followed someone): the next read computes them anew."""
    await redis.delete(suggestions_key(user_id))


@dataclass(frozen=True)
class Suggestion:
    account: Row
    source: str


class SuggestionService:
    def __init__(self, settings: Settings, graph: SuggestionGraph, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.graph = graph
        self.redis = redis
        self.ttl = settings.suggestions_cache_seconds

    async def suggest(self, me: int, limit: int) -> list[Suggestion]:
        """Up to ``limit`` suggestions, best first."""
        ranked = await self._ranked(me)
        accounts = await self.graph.eligible(me, [account_id for account_id, _ in ranked])
        found = [Suggestion(accounts[i], source) for i, source in ranked if i in accounts]
        return found[:limit]

    async def dismiss(self, me: int, target: int) -> None:
        if not await self.graph.dismiss(me, target, int(time.time() * 1000)):
            raise NotFound("Record not found")
        try:
            await forget_suggestions(self.redis, me)
        except REDIS_DOWN:
            mark_degraded("redis")  # the read-time check leaves the dismissed account out meanwhile

    async def _ranked(self, me: int) -> list[tuple[int, str]]:
        """(account id, source) pairs, best first: cached, or computed and cached."""
        cached = await self._cached(suggestions_key(me))
        if cached is not None:
            return [(int(i), str(s)) for i, s in cached]
        friends = await self.graph.friends_of_friends(me, CANDIDATES)
        ranked = [(i, FRIENDS_OF_FRIENDS) for i in friends]
        seen = set(friends) | {me}
        ranked += [(i, MOST_FOLLOWED) for i in await self._popular() if i not in seen][: CANDIDATES - len(ranked)]
        await self._cache(suggestions_key(me), ranked)
        return ranked

    async def _popular(self) -> list[int]:
        cached = await self._cached(POPULAR_KEY)
        if cached is not None:
            return [int(i) for i in cached]
        since = int(time.time() * 1000) - self.settings.inactive_days * 86_400_000
        popular = await self.graph.popular(since, CANDIDATES)
        await self._cache(POPULAR_KEY, popular)
        return popular

    async def _cached(self, key: str) -> list | None:
        try:
            raw = await self.redis.get(key)
        except REDIS_DOWN:
            mark_degraded("redis")
            return None
        return orjson.loads(raw) if raw else None

    async def _cache(self, key: str, value: list) -> None:
        try:
            await self.redis.set(key, orjson.dumps(value), ex=self.ttl)
        except REDIS_DOWN:
            mark_degraded("redis")


def suggestion_sources(source: str) -> tuple[str, list[str]]:
    """(Mastodon's deprecated ``source``, its ``sources``) for a suggestion's source."""
    return LEGACY_SOURCE[source], [source]

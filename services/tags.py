"""Hashtags as things to look at and follow: ``GET /api/v1/tags/:name``, follow, unfollow, followed tags.

A tag's ``history`` (uses and distinct accounts per UTC day, seven days,
today first) comes from the per-day sets the discovery indexer keeps in Redis
(``redis_store.discovery``), for a page of tags in one round trip. Names in
paths are read case-insensitively (``services.hashtags.normalize``); a name
that cannot be a tag, or a tag never used nor followed, is a 404, as in
Mastodon. Following a tag nobody used yet creates it, as Mastodon does.

Following or unfollowing a tag tells the home feed (``FeedManager``), which
decides how the tag's posts reach the follower; the tag's follower count is
mirrored into Redis at each change.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from graph.driver import Row
from graph.tags import TagGraph
from ids import SnowflakeGenerator
from redis_store.discovery import DayCount, DiscoveryStore
from redis_store.locks import Locks
from services.errors import NotFound
from services.feed import FeedManager
from services.hashtags import is_valid_name, normalize


@dataclass(frozen=True)
class TagView:
    """A Tag entity's facts: the tag, its history, and whether the viewer follows it."""

    tag: Row
    history: list[DayCount]
    following: bool


def tag_name(raw: str) -> str:
    """The normalized name of a path's tag, or a 404 if it cannot name a tag."""
    name = raw.removeprefix("#")
    if not is_valid_name(name):
        raise NotFound("Record not found")
    return normalize(name)


class TagService:
    def __init__(
        self, tags: TagGraph, store: DiscoveryStore, ids: SnowflakeGenerator, feed: FeedManager, locks: Locks
    ) -> None:
        self.tags = tags
        self.store = store
        self.ids = ids
        self.feed = feed
        self.locks = locks

    async def views(self, tags: list[Row], viewer_id: int | None, following: set[str] | None = None) -> list[TagView]:
        """Entities' facts for a page of tags: history in one Redis round trip, follows in one graph query."""
        names = [t["name"] for t in tags]
        history = await self.store.history(names, int(time.time() * 1000))
        if following is None:
            following = await self.tags.following(viewer_id, names) if viewer_id is not None else set()
        return [TagView(t, history[t["name"]], t["name"] in following) for t in tags]

    async def get(self, raw_name: str, viewer_id: int | None) -> TagView:
        name = tag_name(raw_name)
        tag = (await self.tags.get_many([name])).get(name)
        if tag is None:
            raise NotFound("Record not found")
        return (await self.views([tag], viewer_id))[0]

    async def follow(self, account_id: int, raw_name: str) -> TagView:
        name = tag_name(raw_name)
        await self.tags.ensure([name], [self.ids.next_id()])
        async with self.locks.hold(f"tagfollow:{account_id}:{name}"):  # the graph's check-then-create, once
            tag = await self.tags.follow(account_id, name, self.ids.next_id(), int(time.time() * 1000))
        if tag is None:
            raise NotFound("Record not found")
        followers = int(tag["followers_count"] or 0)
        await self.store.set_tag_followers(name, followers)
        await self.feed.merge_tag_into_home(account_id, name, followers)
        return (await self.views([tag], account_id, {name}))[0]

    async def unfollow(self, account_id: int, raw_name: str) -> TagView:
        name = tag_name(raw_name)
        async with self.locks.hold(f"tagfollow:{account_id}:{name}"):
            tag = await self.tags.unfollow(account_id, name)
        if tag is None:
            raise NotFound("Record not found")
        followers = int(tag["followers_count"] or 0)
        await self.store.set_tag_followers(name, followers)
        await self.feed.unmerge_tag_from_home(account_id, name, followers)
        return (await self.views([tag], account_id, set()))[0]

    async def followed(
        self, account_id: int, max_id: int | None, since_id: int | None, min_id: int | None, limit: int
    ) -> list[tuple[int, TagView]]:
        """(follow id as the cursor, the tag) of the tags the account follows, newest follow first."""
        pairs = await self.tags.followed(account_id, max_id, since_id, min_id, limit)
        names = {tag["name"] for _, tag in pairs}
        views = await self.views([tag for _, tag in pairs], account_id, names)
        return [(edge, view) for (edge, _), view in zip(pairs, views, strict=True)]

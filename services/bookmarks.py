"""Bookmarks: a private list of posts, and the viewer's ``bookmarked`` state for hydration.

A bookmark is written to the graph before the answer; the user's cached set
(``redis_store.bookmarks``) is dropped with it and loaded again on the next
read, so a page's ``bookmarked`` flags cost one Redis call (``among``). As in
Mastodon, bookmarking a reblog bookmarks the post it shares.
"""

from __future__ import annotations

import time

from graph.bookmarks import BookmarkGraph
from ids import SnowflakeGenerator
from redis_store.bookmarks import MAX_ENTRIES, PARTIAL, BookmarkCache
from services.availability import REDIS_DOWN, mark_degraded
from services.errors import NotFound
from services.hydrate import HydratedStatus, Hydrator


class BookmarkService:
    def __init__(self, graph: BookmarkGraph, cache: BookmarkCache, hydrator: Hydrator, ids: SnowflakeGenerator):
        self.graph = graph
        self.cache = cache
        self.hydrator = hydrator
        self.ids = ids

    async def set_bookmarked(self, user_id: int, post: HydratedStatus, bookmarked: bool) -> None:
        """Bookmark or un-bookmark ``post`` (an original); idempotent. ``post`` is updated in place."""
        if bookmarked:
            if not await self.graph.add(user_id, post.id, self.ids.next_id(), int(time.time() * 1000)):
                if not await self.graph.among(user_id, [post.id]):
                    raise NotFound("Record not found")  # deleted meanwhile
        else:
            await self.graph.remove(user_id, post.id)
        await self.cache.invalidate(user_id)
        post.bookmarked = bookmarked

    async def bookmarks(
        self, user_id: int, max_id: int | None, since_id: int | None, limit: int
    ) -> list[tuple[int, HydratedStatus]]:
        """(bookmark cursor, post) pairs, the most recent bookmark first."""
        page = await self.graph.page(user_id, max_id, since_id, limit)
        cursors = dict((status_id, cursor) for cursor, status_id in page)
        posts = await self.hydrator.hydrate(list(cursors), viewer_id=user_id)
        return [(cursors[p.id], p) for p in posts if p.id in cursors]

    async def among(self, user_id: int, status_ids: list[int]) -> set[int]:
        """Which of ``status_ids`` the user bookmarked: one Redis call (after a load, when the set is cold)."""
        if not status_ids:
            return set()
        try:
            marker, found = await self.cache.lookup(user_id, status_ids)
            if marker is None:
                version = await self.cache.version(user_id)
                newest = await self.graph.newest(user_id, MAX_ENTRIES + 1)
                complete = len(newest) <= MAX_ENTRIES
                await self.cache.store(user_id, version, newest[:MAX_ENTRIES], complete)
                marker = None if complete else PARTIAL
                found = set(status_ids) & set(newest[:MAX_ENTRIES])
            if marker != PARTIAL:
                return found
            missing = [s for s in status_ids if s not in found]
            return found | await self.graph.among(user_id, missing)
        except REDIS_DOWN:
            mark_degraded("redis")
            return await self.graph.among(user_id, status_ids)

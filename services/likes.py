"""Likes (Mastodon favourites) and the viewer's own like/reblog state.

A like is answered from Redis (one atomic step on one server, three ordered
steps on a Redis Cluster) and persisted to the graph by the ``LikePersister``
actor; see ``redis_store.likes``. The viewer's
likes and reblogs are per-user Redis indexes, loaded from the graph once
after a cold start, so a page's view is one Redis round trip, which also
carries hydration's read of the page's authors.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

import metrics
from config import Settings
from graph.likes import LikeGraph
from graph.statuses import StatusGraph
from ids import SnowflakeGenerator
from redis_store.likes import LikeStore, PageView
from redis_store.ratelimit import OverLimit
from redis_store.slots import QueuedMget
from services.abuse import AbuseGuard
from services.availability import REDIS_DOWN, mark_degraded
from services.hydrate import HydratedStatus, Hydrator


class LikeService:
    def __init__(
        self,
        settings: Settings,
        store: LikeStore,
        graph: LikeGraph,
        statuses: StatusGraph,
        hydrator: Hydrator,
        redis: aioredis.Redis,
        ids: SnowflakeGenerator,
        abuse: AbuseGuard,
    ) -> None:
        self.settings = settings
        self.store = store
        self.graph = graph
        self.statuses = statuses
        self.hydrator = hydrator
        self.redis = redis
        self.ids = ids
        self.abuse = abuse

    async def ensure_loaded(self, user_id: int) -> None:
        """Load the user's newest likes into Redis, marking the set partial when there are more."""
        if not await self.store.favourites_loaded(user_id):
            limit = self.settings.favourites_load_limit
            likes = await self.graph.likes_of_user(user_id, limit + 1)
            await self.store.load_favourites(user_id, likes[:limit], complete=len(likes) <= limit)

    async def set_liked(self, user_id: int, post: HydratedStatus, liked: bool) -> None:
        """Like or unlike ``post`` (an original, not a reblog wrapper); idempotent.

        ``post`` is updated in place (count, ``favourited``), so the caller can answer without re-reading.
        """
        like_id = self.ids.next_id()
        event = {
            "account_id": user_id,
            "status_id": post.id,
            "status_account_id": post.status["account_id"],
            "like_id": like_id,
            "created_at": int(time.time() * 1000),
        }
        kind = "like.created" if liked else "like.deleted"
        persisted = int(post.status.get("favourites_count") or 0)
        rate = self.abuse.limit("favourite", user_id)  # counted in the same Redis call as the like
        try:
            changed, count = await self.store.change(kind, user_id, post.id, like_id, persisted, event, rate=rate)
        except OverLimit as over:
            raise self.abuse.refusal("favourite", over.decision) from None
        if changed == "load":  # first like since a cold start: load the user's likes, then apply
            await self.ensure_loaded(user_id)
            changed, count = await self.store.change(kind, user_id, post.id, like_id, persisted, event)
        if changed == "check":  # an old post beyond what was loaded: the graph knows if it is liked
            earlier = await self.graph.like_of(user_id, post.id)
            if earlier is not None:
                await self.store.remember_like(user_id, post.id, earlier)
            changed, count = await self.store.change(
                kind, user_id, post.id, like_id, persisted, event, graph_checked=True
            )
        post.favourites_count, post.favourited = count, liked
        if changed and liked:
            metrics.inc(metrics.LIKES)

    async def favourites(
        self, user_id: int, max_id: int | None, since_id: int | None, limit: int
    ) -> list[tuple[int, HydratedStatus]]:
        """(like cursor, post) pairs of the posts the user liked, most recent like first.

        Cursors are like ids, not post ids: liking an old post puts it first.
        """
        await self.ensure_loaded(user_id)
        page, graph_below = await self.store.favourites_page(user_id, max_id, since_id, limit)
        if graph_below is not None and len(page) < limit:  # likes older than Redis keeps: the graph has them
            before = graph_below if max_id is None else min(graph_below, max_id)
            page += await self.graph.likes_of_user(user_id, limit - len(page), before=before, after=since_id)
        cursors = dict(page)
        posts = await self.hydrator.hydrate(list(cursors), viewer_id=user_id)
        return [(cursors[p.id], p) for p in posts if p.id in cursors]

    async def favourited_by(self, status_id: int, max_id: int | None, limit: int) -> list[tuple[int, dict]]:
        """(like cursor, account) pairs of the persisted likes, most recent first."""
        return await self.graph.likers(status_id, max_id, limit)

    # -- the viewer's own state, for hydration -------------------------------------

    async def ensure_reblogs_loaded(self, user_id: int) -> None:
        if not await self.store.reblogs_loaded(user_id):
            await self.store.load_reblogs(
                user_id, await self.statuses.reblogs_by(user_id, self.settings.favourites_load_limit)
            )

    async def page_view(
        self, user_id: int | None, status_ids: list[int], alongside: Callable[[Pipeline], QueuedMget] | None = None
    ) -> tuple[PageView, list[Any] | None]:
        """Like counts of a page, and the viewer's likes and reblogs among it: one Redis round trip, which also
        carries the read ``alongside`` queues (hydration reads the page's authors with it). Returns the view
        and that read's values (None when Redis is down); a cold start or old posts take more calls.

        With Redis down, the graph answers: counts are then the persisted ones (``favourites_count``
        of each record, which hydration falls back to), and the viewer's state comes from the edges.
        """
        try:
            view, other = await self.store.view_along(user_id, status_ids, alongside)
            if user_id is not None:
                view = await self._complete_view(user_id, status_ids, view)
            return view, other
        except REDIS_DOWN:
            mark_degraded("redis")
            if user_id is None:
                return PageView(True, True, {}, set(), set()), None
            liked, reblogged = await self.graph.viewer_state(user_id, status_ids)
            return PageView(True, True, {}, liked, reblogged), None

    async def _complete_view(self, user_id: int, status_ids: list[int], view: PageView) -> PageView:
        if not (view.favourites_loaded and view.reblogs_loaded):  # first read after a cold start
            await self.ensure_loaded(user_id)
            await self.ensure_reblogs_loaded(user_id)
            view = await self.store.view(user_id, status_ids)
        if view.unknown:  # older posts than the favourites Redis keeps: the graph knows whether they are liked
            liked, _ = await self.graph.viewer_state(user_id, list(view.unknown))
            view = dataclasses.replace(view, liked=view.liked | liked)
        return view

    async def remember_reblog(self, user_id: int, original_id: int, reblog_id: int | None) -> None:
        await self.store.remember_reblog(user_id, original_id, reblog_id)

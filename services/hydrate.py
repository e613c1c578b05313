"""Turn status ids into full records for the API, in a fixed number of batches.

Statuses and their authors come from the Redis cache (one MGET each) and
fall back to the graph (one query each) for the misses, which are then
cached. Reblogs bring their originals along in one more round. Like counts
and the viewer's own likes and reblogs come from one more Redis call
(``page_view``). Deleted posts are dropped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from graph.accounts import AccountGraph
from graph.statuses import StatusGraph
from redis_store.cache import RecordCache
from redis_store.likes import PageView
from services.availability import GRAPH_DOWN, REDIS_DOWN, mark_degraded

Row = dict[str, Any]
AttachmentLoader = Callable[[list[int]], Awaitable[dict[int, Row]]]
PageViewLoader = Callable[[int | None, list[int]], Awaitable[PageView]]


@dataclass
class HydratedStatus:
    status: Row
    account: Row
    media: list[Row] = field(default_factory=list)
    favourites_count: int = 0
    favourited: bool = False
    reblogged: bool = False
    reblog: HydratedStatus | None = None

    @property
    def id(self) -> int:
        return self.status["id"]

    @property
    def original(self) -> HydratedStatus:
        """The post a reblog shares, or the post itself."""
        return self.reblog or self


class Hydrator:
    def __init__(
        self,
        statuses: StatusGraph,
        accounts: AccountGraph,
        status_cache: RecordCache,
        account_cache: RecordCache,
    ) -> None:
        self.statuses = statuses
        self.accounts = accounts
        self.status_cache = status_cache
        self.account_cache = account_cache
        self.attachment_loader: AttachmentLoader | None = None
        self.page_view: PageViewLoader | None = None

    async def status_rows(self, ids: list[int]) -> dict[int, Row]:
        return await read_aside(self.status_cache, self.statuses.get_many, ids)

    async def account_rows(self, ids: list[int]) -> dict[int, Row]:
        return await read_aside(self.account_cache, self.accounts.get_accounts, ids)

    async def cache_statuses(self, rows: list[Row]) -> None:
        """Warm the status cache with records just read from the graph; skipped while Redis is down."""
        try:
            await self.status_cache.put_many({r["id"]: r for r in rows})
        except REDIS_DOWN:
            mark_degraded("redis")

    async def _attachments(self, media_ids: list[int]) -> dict[int, Row]:
        if not media_ids or self.attachment_loader is None:
            return {}
        try:
            return await self.attachment_loader(media_ids)
        except GRAPH_DOWN:  # cached posts still show, without their media, while the graph is down
            mark_degraded("graph")
            return {}

    async def hydrate(self, ids: list[int], viewer_id: int | None = None) -> list[HydratedStatus]:
        """Records for ``ids`` in the given order; deleted posts (and reblogs of them) are skipped."""
        statuses = await self.status_rows(ids)
        originals = [s["reblog_of_id"] for s in statuses.values() if s.get("reblog_of_id") is not None]
        if originals:
            statuses.update(await self.status_rows([o for o in originals if o not in statuses]))
        accounts = await self.account_rows([s["account_id"] for s in statuses.values()])
        media_ids = [m for s in statuses.values() for m in (s.get("media_ids") or [])]
        media = await self._attachments(media_ids)
        view = await self.page_view(viewer_id, list(statuses)) if self.page_view else None
        counts = view.counts if view else {}
        liked, reblogged = (view.liked, view.reblogged) if view else (set(), set())

        def build(status_id: int) -> HydratedStatus | None:
            status = statuses.get(status_id)
            if status is None or status["account_id"] not in accounts:
                return None
            return HydratedStatus(
                status,
                accounts[status["account_id"]],
                [media[m] for m in (status.get("media_ids") or []) if m in media],
                counts.get(status_id, int(status.get("favourites_count") or 0)),
                status_id in liked,
                status_id in reblogged,
            )

        result = []
        for status_id in ids:
            post = build(status_id)
            if post is None:
                continue
            original_id = post.status.get("reblog_of_id")
            if original_id is not None:
                post.reblog = build(original_id)
                if post.reblog is None:
                    continue
            result.append(post)
        return result


async def read_aside(
    cache: RecordCache, load: Callable[[list[int]], Awaitable[dict[int, Row]]], ids: list[int]
) -> dict[int, Row]:
    """Records by id from the cache, the misses from the graph in one query (and then cached).

    Either store may be down (``services.availability``): without Redis every
    record comes from the graph; without the graph the cached records answer
    alone, unless none was cached (then there is nothing to answer with).
    """
    unique = list(dict.fromkeys(ids))
    try:
        found = await cache.get_many(unique)
        cache_up = True
    except REDIS_DOWN:
        mark_degraded("redis")
        found, cache_up = {}, False
    missing = [i for i in unique if i not in found]
    if missing:
        try:
            loaded = await load(missing)
        except GRAPH_DOWN:
            if not found:
                raise
            mark_degraded("graph")
            return found
        if cache_up:
            try:
                await cache.put_many(loaded)
            except REDIS_DOWN:
                mark_degraded("redis")
        found.update(loaded)
    return found

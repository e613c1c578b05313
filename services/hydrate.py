"""Turn status ids into full records for the API, in a fixed number of batches.

Statuses and their authors come from the Redis cache (one MGET each, split
per slot in one pipeline on a Redis Cluster) and fall back to the graph (one
query each) for the misses, which are then
cached. Reblogs bring their originals along in one more round. Like counts
and the viewer's own likes and reblogs come from one more Redis call
(``page_view``), which also carries the authors' MGET. Deleted posts are
dropped.

A status is cached with its media attachments (``attachments``: unsigned,
``services.media.unsigned_attachment``), loaded in the same miss as the
status (one graph query for all the page's media), so a page of photos costs
the round trips of a page of text. URLs are signed as the page is hydrated,
never cached, so no cached record holds a URL that expires. The attachments
need no invalidation of their own: a media record changes only before it is
attached (``PUT /api/v1/media/:id`` and processing are refused for attached
media, and a status is written with its media in one transaction), and the
post's own invalidation (deletion) takes them along.

A status's hashtags come with its record: the graph keeps a ``tags`` list of
normalized names on the status beside its ``TAGGED`` edges, written in the
same transaction and never changed (``graph.statuses``), so they are cached
with the post and a page's tags cost no query at all. The Status entity
renders them as ``[{name, url}]`` (``api.entities``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.asyncio.client import Pipeline

import metrics
from graph.accounts import AccountGraph
from graph.statuses import StatusGraph
from redis_store.cache import RecordCache
from redis_store.likes import PageView
from redis_store.slots import QueuedMget
from services.availability import GRAPH_DOWN, REDIS_DOWN, mark_degraded

Row = dict[str, Any]
# (viewer, status ids) -> the ones the viewer bookmarked
BookmarkLoader = Callable[[int, list[int]], Awaitable[set[int]]]
# (viewer, status ids, a read to send along) -> (the view, that read's values or None if Redis is down)
PageViewLoader = Callable[
    [int | None, list[int], Callable[[Pipeline], QueuedMget]], Awaitable[tuple[PageView, list[Any] | None]]
]
ATTACHMENTS = "attachments"  # field of a cached status record: its unsigned attachments, in the post's order


class Attachments(Protocol):
    """Where attachments come from (``services.media.MediaService``)."""

    async def attachment_records(self, media_ids: list[int]) -> dict[int, Row]:
        """Unsigned attachments by media id, in one graph query."""
        ...

    def render(self, unsigned: Row) -> Row:
        """The MediaAttachment entity, its URLs signed now."""
        ...


@dataclass(slots=True)
class HydratedStatus:
    status: Row
    account: Row
    media: list[Row] = field(default_factory=list)
    favourites_count: int = 0
    favourited: bool = False
    reblogged: bool = False
    reblog: HydratedStatus | None = None
    bookmarked: bool = False
    id: int = field(init=False)  # the status's id: read often per page (dedupe, visibility, entities), so a slot

    def __post_init__(self) -> None:
        self.id = self.status["id"]

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
        media: Attachments,
    ) -> None:
        self.statuses = statuses
        self.accounts = accounts
        self.status_cache = status_cache
        self.account_cache = account_cache
        self.media = media
        self.page_view: PageViewLoader | None = None
        self.bookmarks: BookmarkLoader | None = None

    async def status_rows(self, ids: list[int]) -> dict[int, Row]:
        """Status records with their ``attachments``, from the cache or (misses) the graph."""
        return await read_aside(self.status_cache, self._load_statuses, ids)

    async def _load_statuses(self, ids: list[int]) -> dict[int, Row]:
        rows = await self.statuses.get_many(ids)
        await self._add_attachments(list(rows.values()))
        return rows

    async def _add_attachments(self, rows: list[Row]) -> None:
        """Give each record with media its unsigned ``attachments``, one graph query for all of them."""
        wanting = [row for row in rows if row.get("media_ids") and ATTACHMENTS not in row]
        if not wanting:
            return
        found = await self.media.attachment_records([m for row in wanting for m in row["media_ids"]])
        for row in wanting:
            row[ATTACHMENTS] = [found[m] for m in row["media_ids"] if m in found]

    async def _complete(self, records: list[Row]) -> None:
        """Add the attachments a cached record came without (cached by an earlier release, or by a writer that
        does not know of them), and cache it again complete; without the graph it shows without its media."""
        incomplete = [r for r in records if r.get("media_ids") and ATTACHMENTS not in r]
        if not incomplete:
            return
        try:
            await self._add_attachments(incomplete)
            await self.status_cache.put_many({r["id"]: r for r in incomplete})
        except GRAPH_DOWN:
            mark_degraded("graph")
        except REDIS_DOWN:
            mark_degraded("redis")

    async def account_rows(self, ids: list[int]) -> dict[int, Row]:
        return await read_aside(self.account_cache, self.accounts.get_accounts, ids)

    async def cache_statuses(self, rows: list[Row]) -> dict[int, Row]:
        """Warm the status cache with records just read from (or written to) the graph, with their attachments.

        Returns the completed records by id, for ``hydrate(known=...)``: a page hydrated right after
        need not read them back. Nothing is cached (or returned) while the graph is down for the
        attachments; the cache write is skipped while Redis is down."""
        records = [dict(row) for row in rows]
        try:
            await self._add_attachments(records)
        except GRAPH_DOWN:
            mark_degraded("graph")
            return {}
        try:
            await self.status_cache.put_many({r["id"]: r for r in records})
        except REDIS_DOWN:
            mark_degraded("redis")
        return {r["id"]: r for r in records}

    async def hydrate(
        self, ids: list[int], viewer_id: int | None = None, known: dict[int, Row] | None = None
    ) -> list[HydratedStatus]:
        """Records for ``ids`` in the given order; deleted posts (and reblogs of them) are skipped.

        ``known``: records at hand already (``cache_statuses``), which are not fetched again.
        """
        known = known or {}
        statuses = {i: known[i] for i in ids if i in known}
        if missing := [i for i in ids if i not in known]:
            statuses.update(await self.status_rows(missing))
        originals = [s["reblog_of_id"] for s in statuses.values() if s.get("reblog_of_id") is not None]
        if originals:
            statuses.update(await self.status_rows([o for o in originals if o not in statuses]))
        await self._complete(list(statuses.values()))
        authors = list(dict.fromkeys(s["account_id"] for s in statuses.values()))
        view, cached, bookmarked = None, None, set()
        if self.page_view and statuses:  # the authors' cached records come in the view's round trip
            view_call = self.page_view(
                viewer_id, list(statuses), lambda pipe: self.account_cache.queue_get_many(pipe, authors)
            )
            if self.bookmarks and viewer_id is not None:  # the viewer's bookmarks: one more call, alongside
                (view, raw), bookmarked = await asyncio.gather(view_call, self.bookmarks(viewer_id, list(statuses)))
            else:
                view, raw = await view_call
            cached = None if raw is None else self.account_cache.decode(authors, raw)
        accounts = await read_aside(self.account_cache, self.accounts.get_accounts, authors, cached)
        counts = view.counts if view else {}
        liked, reblogged = (view.liked, view.reblogged) if view else (set(), set())

        page = assemble(ids, statuses, accounts, self.media.render, counts, liked, reblogged)
        if bookmarked:
            for post in page:
                for shown in (post, post.reblog) if post.reblog else (post,):
                    shown.bookmarked = shown.id in bookmarked
        return page


def assemble(
    ids: list[int],
    statuses: dict[int, Row],
    accounts: dict[int, Row],
    render: Callable[[Row], Row],
    counts: dict[int, int],
    liked: set[int],
    reblogged: set[int],
) -> list[HydratedStatus]:
    """The page in the order of ``ids``, from records already fetched; posts whose record or author is gone,
    and reblogs of such posts, are left out. Like counts fall back to the persisted ``favourites_count``."""

    def build(status_id: int) -> HydratedStatus | None:
        status = statuses.get(status_id)
        if status is None or status["account_id"] not in accounts:
            return None
        return HydratedStatus(
            status,
            accounts[status["account_id"]],
            [render(attachment) for attachment in status.get(ATTACHMENTS, ())],
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
    cache: RecordCache,
    load: Callable[[list[int]], Awaitable[dict[int, Row]]],
    ids: list[int],
    cached: dict[int, Row] | None = None,
) -> dict[int, Row]:
    """Records by id from the cache, the misses from the graph in one query (and then cached). ``cached``: what
    the cache already answered for ``ids``, read in a round trip shared with other work.

    Either store may be down (``services.availability``): without Redis every
    record comes from the graph; without the graph the cached records answer
    alone, unless none was cached (then there is nothing to answer with).
    """
    unique = list(dict.fromkeys(ids))
    try:
        found = cached if cached is not None else await cache.get_many(unique)
        cache_up = True
    except REDIS_DOWN:
        mark_degraded("redis")
        found, cache_up = {}, False
    missing = [i for i in unique if i not in found]
    if cache_up:
        metrics.inc(metrics.CACHE_LOOKUPS, len(unique) - len(missing), cache=cache.prefix, result="hit")
        metrics.inc(metrics.CACHE_LOOKUPS, len(missing), cache=cache.prefix, result="miss")
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

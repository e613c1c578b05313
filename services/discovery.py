"""Reading discovery: tag and public timelines, trending tags and posts, the explore grid.

Everything is answered from Redis (``redis_store.discovery``, written by the
discovery indexer and the trends refresh) plus hydration (cached records),
never by scanning the graph:

* A tag timeline is the union of the pages of ``tagtl:{tag}`` for the tag
  and its ``any[]`` tags (their ``:media`` twins with ``only_media``), in one
  round trip. ``all[]`` keeps the candidates that its tags' timelines hold
  too (one more round trip; so it reaches back as far as the shortest of
  those timelines), then ``all[]`` and ``none[]`` check the tags of their
  records (cached), and only the posts kept are hydrated; when a filter
  leaves the page short, the next window is read, at most ``FILTER_ROUNDS``
  times, so a request's cost stays bounded.
* The public timeline is ``publictl`` (``local`` changes nothing: every post
  is local; ``remote`` is empty for the same reason).
* Only public posts are in either, so no visibility check is needed; posts
  deleted since are dropped by hydration (the indexer removes them too).
  For a signed-in viewer, posts by accounts they block, are blocked by or
  mute are left out (``hidden_from``: one relations look-up per page), here
  as in trends and explore.
* Trends are the rankings the refresh stored; explore takes the best of its
  pool, shuffled a little, leaves out the viewer and whom they follow (one
  relationship query for the page), and shows what remains.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from graph.follows import FollowGraph
from graph.tags import TagGraph
from redis_store.discovery import (
    EXPLORE,
    TRENDING_STATUSES,
    TRENDING_TAGS,
    DiscoveryStore,
    public_key,
)
from redis_store.timelines import PageBounds, member, tag_timeline_key
from services.hashtags import normalize
from services.hydrate import HydratedStatus, Hydrator, Row
from services.relations import RelationService
from services.tags import TagService, TagView
from services.trends import jittered

FILTER_ROUNDS = 4
FILTER_FETCH = 4  # candidates read per post asked for, per round, when all[] or none[] filter them
EXPLORE_OVERFETCH = 4  # candidates read per post shown, before leaving out the viewer's own and followed accounts


def tag_filter(all_tags: list[str], none_tags: list[str]) -> Callable[[Row], bool]:
    """Does a post's record carry every tag of ``all_tags`` and none of ``none_tags``?"""
    required, excluded = set(all_tags), set(none_tags)

    def keep(record: Row) -> bool:
        tags = set(record.get("tags") or ())
        return required <= tags and not (excluded & tags)

    return keep


class DiscoveryService:
    def __init__(
        self,
        store: DiscoveryStore,
        hydrator: Hydrator,
        follows: FollowGraph,
        tags: TagGraph,
        tag_service: TagService,
        relations: RelationService,
    ) -> None:
        self.store = store
        self.hydrator = hydrator
        self.follows = follows
        self.tags = tags
        self.tag_service = tag_service
        self.relations = relations
        self.rng = random.Random()

    async def tag_timeline(
        self,
        tag: str,
        any_tags: list[str],
        all_tags: list[str],
        none_tags: list[str],
        only_media: bool,
        bounds: PageBounds,
        limit: int,
        viewer_id: int | None,
    ) -> list[HydratedStatus]:
        names = list(dict.fromkeys(normalize(t) for t in (tag, *any_tags)))
        keys = [tag_timeline_key(name, only_media) for name in names]
        required = [normalize(t) for t in all_tags]
        keep = tag_filter(required, [normalize(t) for t in none_tags])
        required_keys = [tag_timeline_key(t, only_media) for t in required]
        return await self._page(keys, bounds, limit, viewer_id, keep if all_tags or none_tags else None, required_keys)

    async def public_timeline(
        self, only_media: bool, remote: bool, bounds: PageBounds, limit: int, viewer_id: int | None
    ) -> list[HydratedStatus]:
        if remote:
            return []  # every post here is local
        return await self._page([public_key(only_media)], bounds, limit, viewer_id, None)

    async def _page(
        self,
        keys: list[str],
        bounds: PageBounds,
        limit: int,
        viewer_id: int | None,
        keep: Callable[[Row], bool] | None,
        required_keys: Sequence[str] = (),
    ) -> list[HydratedStatus]:
        """A page of the union of ``keys``, newest first; with ``keep``, only posts whose record it keeps.

        Candidates missing from one of ``required_keys`` (the timelines of the ``all[]`` tags) are left out
        first, in Redis; the rest are filtered by their status records alone (one cache read, the graph for
        misses), so only the posts kept are hydrated in full.
        """
        if keep is None:  # a few extra: deleted posts are dropped
            ids = await self.store.pages(keys, bounds, limit + 5)
            posts = await self.hidden_from(viewer_id, await self.hydrator.hydrate(ids, viewer_id=viewer_id))
            return posts[-limit:] if bounds.ascending else posts[:limit]
        fetch, kept = FILTER_FETCH * limit, []
        for _ in range(FILTER_ROUNDS):
            ids = await self.store.pages(keys, bounds, fetch)
            if not ids:
                break
            candidates = await self.store.in_all(list(required_keys), ids)
            records = await self.hydrator.status_rows(candidates)
            kept += [i for i in candidates if i in records and keep(records[i])]
            if len(kept) >= limit or len(ids) < fetch:
                break
            if bounds.ascending:
                bounds = PageBounds(f"({member(ids[0])}", bounds.hi, True)
            else:
                bounds = PageBounds(bounds.lo, f"({member(ids[-1])}", False)
        kept.sort(reverse=True)
        page = kept[-limit:] if bounds.ascending else kept[:limit]
        return await self.hidden_from(viewer_id, await self.hydrator.hydrate(page, viewer_id=viewer_id))

    async def hidden_from(self, viewer_id: int | None, posts: list[HydratedStatus]) -> list[HydratedStatus]:
        """``posts`` without those by accounts the viewer blocks, is blocked by, or mutes."""
        facts = await self.relations.flags(viewer_id, {p.account["id"] for p in posts})
        if not facts:
            return posts
        now = self.relations.now_ms()
        return [p for p in posts if not ((f := facts.get(p.account["id"])) and (f.hidden or f.muted_at(now)))]

    # -- trends and explore ------------------------------------------------------------------

    async def trending_tags(self, offset: int, limit: int, viewer_id: int | None) -> list[TagView]:
        names = await self.store.ranked(TRENDING_TAGS, offset, limit)
        found = await self.tags.get_many(names)
        return await self.tag_service.views([found[n] for n in names if n in found], viewer_id)

    async def trending_statuses(self, offset: int, limit: int, viewer_id: int | None) -> list[HydratedStatus]:
        ids = [int(m) for m in await self.store.ranked(TRENDING_STATUSES, offset, limit)]
        return await self.hidden_from(viewer_id, await self.hydrator.hydrate(ids, viewer_id=viewer_id))

    async def explore(self, limit: int, viewer_id: int | None) -> list[HydratedStatus]:
        """The explore grid: popular recent photo posts, shuffled a little, none by the viewer or whom they follow."""
        ranked = [int(m) for m in await self.store.ranked(EXPLORE, 0, limit * EXPLORE_OVERFETCH)]
        posts = await self.hydrator.hydrate(jittered(ranked, self.rng), viewer_id=viewer_id)
        posts = await self.hidden_from(viewer_id, posts)
        if viewer_id is not None:
            authors = sorted({p.account["id"] for p in posts} - {viewer_id})
            following, _ = await self.follows.relationships(viewer_id, authors) if authors else (set(), set())
            posts = [p for p in posts if p.account["id"] != viewer_id and p.account["id"] not in following]
        return posts[:limit]

"""Who is hidden from whom: the batched look-up every read path filters with.

Blocks, mutes and follow requests are edges in the graph (``graph.relations``);
reading them per post or per page would put a graph query on every feed read,
so a viewer's relations are cached in one Redis hash (``redis_store.relations``)
and a page asks about all its accounts in one call (``flags``). The callers:

* ``hidden_among(viewer, ids)``: accounts that block the viewer or that the
  viewer blocks. Each is hidden from the other everywhere (posts, threads,
  notifications, lists of accounts, stories, search, suggestions).
* ``muted_among(viewer, ids)``: accounts the viewer mutes, at this moment
  (a mute with a duration stops counting at its expiry, checked at read time;
  ``notifications=True`` only those whose mute covers notifications).

Changes go through ``changed(a, b)`` so that both sides' caches are dropped.
The clock is injectable (mute expiry in tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from graph.relations import RelationGraph
from redis_store.relations import MAX_ENTRIES, Flags, RelationCache, flags_of
from services.availability import REDIS_DOWN, mark_degraded


class RelationService:
    def __init__(self, graph: RelationGraph, cache: RelationCache, clock: Callable[[], float] = time.time) -> None:
        self.graph = graph
        self.cache = cache
        self.clock = clock

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def flags(self, viewer: int | None, ids: Iterable[int]) -> dict[int, Flags]:
        """What each of ``ids`` is to the viewer (only those with a block or mute), in one Redis call."""
        wanted = sorted({i for i in ids if i != viewer})
        if viewer is None or not wanted:
            return {}
        try:
            marker, found = await self.cache.lookup(viewer, wanted)
            wanted_set = set(wanted)
            if marker is None:  # not cached: load from the graph, then look again
                version = await self.cache.version(viewer)
                loaded = await self.graph.relations_of(viewer, MAX_ENTRIES, self.now_ms())
                await self.cache.store(viewer, version, loaded)
                if not loaded.complete:
                    marker = "partial"
                else:
                    return {i: f for i, f in flags_of(loaded).items() if i in wanted_set}
            if marker != "partial":
                return found
        except REDIS_DOWN:
            mark_degraded("redis")
        # More relations than the cache holds (or no Redis): the graph answers for this page's accounts.
        return flags_of(await self.graph.relations_among(viewer, wanted, self.now_ms()))

    async def hidden_among(self, viewer: int | None, ids: Iterable[int]) -> set[int]:
        """Those of ``ids`` that block the viewer or are blocked by them."""
        return {i for i, f in (await self.flags(viewer, ids)).items() if f.hidden}

    async def muted_among(self, viewer: int | None, ids: Iterable[int], *, notifications: bool = False) -> set[int]:
        """Those of ``ids`` the viewer mutes now (with ``notifications``: whose mute covers notifications)."""
        now = self.now_ms()
        return {
            i
            for i, f in (await self.flags(viewer, ids)).items()
            if f.muted_at(now) and (f.muting_notifications or not notifications)
        }

    async def changed(self, *accounts: int) -> None:
        """Drop the cached relations of ``accounts`` (both sides of a changed pair)."""
        await self.cache.invalidate(*accounts)

"""The home feed's rules in one place (cf. Mastodon's ``FeedManager``).

Entry points say what happens to a feed: ``read_home``, ``populate_home``,
``merge_into_home`` / ``unmerge_from_home`` (follow, unfollow) and
``push_to_own_home``. The rules:

* Reads come straight from the timeline store in Redis: the inbox page and
  the pages of followed celebrities in one round trip, merged newest first
  (an actor hop would double a read's CPU: docs/architecture.md).
* While Redis is down, the page is pulled from the graph instead (the
  answer says it is degraded: ``services.availability``).
* A user whose inbox is not being kept (inactive, flushed, new machine) gets
  it rebuilt from the graph before the read answers: fan-out on read. Only a
  finished rebuild makes the inbox count as kept.
* A post goes to its author's own inbox at once; its followers get it from
  the fan-out (``actors.fanout``: push for ordinary authors, the outbox for
  celebrities).
* Following an ordinary author backfills their recent posts; following a
  celebrity adds them to the read-time merge; unfollowing removes both.
* A post shows once per page, however many reblogs of it arrive
  (``dedupe_reblogs`` here, and in the inbox's deliver script).

Rules that must run inside Lua to stay atomic live in
``redis_store.timelines``, each script naming its rule: the reblog dedupe,
skipping inactive users, the recent-unfollow guard, the rebuild state.
"""

from __future__ import annotations

import time

from actors.registry import ActorDirectory
from config import Settings
from graph.follows import FollowGraph
from graph.statuses import StatusGraph
from ids import min_id_at_ms
from redis_store.timelines import Entry, PageBounds, TimelineStore
from services.availability import REDIS_DOWN, mark_degraded
from services.hydrate import HydratedStatus, Hydrator

REBUILD_FOLLOWING_LIMIT = 5000


class FeedManager:
    """Who gets what in home feeds. Services and actors call only these methods; the stores and the
    inbox actors carry them out."""

    def __init__(
        self,
        settings: Settings,
        timelines: TimelineStore,
        follows: FollowGraph,
        statuses: StatusGraph,
        hydrator: Hydrator,
        actors: ActorDirectory,
    ) -> None:
        self.settings = settings
        self.timelines = timelines
        self.follows = follows
        self.statuses = statuses
        self.hydrator = hydrator
        self.actors = actors

    async def read_home(
        self, user_id: int, max_id: int | None, since_id: int | None, min_id: int | None, limit: int
    ) -> list[HydratedStatus]:
        bounds = PageBounds.from_cursors(max_id, since_id, min_id)
        # Over-fetch a little: entries of deleted posts are dropped during hydration.
        try:
            ids = await self._inbox_page(user_id, bounds, limit + 5)
        except REDIS_DOWN:
            mark_degraded("redis")
            ids = await self._pulled_page(user_id, max_id, since_id, min_id, limit + 5)
        hydrated = dedupe_reblogs(await self.hydrator.hydrate(ids, viewer_id=user_id))
        return hydrated[:limit] if not bounds.ascending else hydrated[-limit:]

    async def _inbox_page(self, user_id: int, bounds: PageBounds, limit: int) -> list[int]:
        was_active, ids = await self.timelines.read_page(user_id, bounds, limit)
        if not was_active:  # the inbox was not kept up: rebuild it, then read again
            try:
                await self.populate_home(user_id)
            except BaseException:
                await self.timelines.forget_active(user_id)  # so that the next read tries again
                raise
            _, ids = await self.timelines.read_page(user_id, bounds, limit)
        return ids

    async def _pulled_page(
        self, user_id: int, max_id: int | None, since_id: int | None, min_id: int | None, limit: int
    ) -> list[int]:
        """The page straight from the graph (fan-out on read), while Redis is down."""
        authors = await self.follows.followed_authors(user_id, REBUILD_FOLLOWING_LIMIT)
        after = min_id if min_id is not None else (since_id if since_id is not None else 0)
        before = max_id if max_id is not None else 2**63 - 1
        return await self.statuses.window_of_authors([*authors, user_id], after, before, limit, min_id is not None)

    async def populate_home(self, user_id: int) -> None:
        """Fill a cold inbox: pull recent posts of everyone the user follows (and their own) from the graph."""
        authors = await self.follows.followed_authors(user_id, REBUILD_FOLLOWING_LIMIT)
        ready = await self.timelines.celebrities_ready(authors)
        celebrities = [a for a, is_celebrity in zip(authors, ready, strict=True) if is_celebrity]
        ordinary = [a for a, is_celebrity in zip(authors, ready, strict=True) if not is_celebrity]
        window_start = min_id_at_ms(int(time.time() * 1000) - self.settings.rebuild_window_days * 86_400_000)
        entries = await self.statuses.recent_entries([*ordinary, user_id], window_start, self.settings.timeline_max)
        await self.actors.inbox_for(user_id).rebuild.remote(user_id, entries[::-1], celebrities)

    async def push_to_own_home(self, author_id: int, entry: Entry) -> None:
        """A post (or reblog) goes to its author's own inbox at once, before its fan-out."""
        await self.actors.inbox_for(author_id).deliver.remote([entry], [author_id])

    async def merge_into_home(self, follower: int, followee: int) -> None:
        """A new follow: the followee's recent posts into the follower's inbox, or their outbox into the merge."""
        await self.timelines.clear_unfollowed(follower, followee)
        if await self.timelines.is_celebrity_ready(followee):
            await self.actors.inbox_for(follower).follow_celebrity.remote(followee, [follower])
            return
        recent = await self.statuses.recent_entries([followee], 0, self.settings.backfill_count)
        await self.actors.inbox_for(follower).deliver.remote(recent[::-1], [follower], followee)

    async def unmerge_from_home(self, follower: int, followee: int) -> None:
        """An unfollow: the followee's posts out of the follower's inbox and merge."""
        # First the guard, then the clean-up: a fan-out or promotion that read the follower list before
        # the unfollow either wrote already (and is cleaned up below) or is refused by the guard.
        await self.timelines.mark_unfollowed(follower, followee)
        inbox = self.actors.inbox_for(follower)
        await inbox.unfollow_celebrity.remote(followee, [follower])
        oldest = await self.timelines.oldest_entry(follower)
        if oldest is None:
            return
        # Only the followee's posts inside the inbox's window can be in it: bounded by the window.
        entries = await self.statuses.recent_entries([followee], oldest - 1, self.settings.timeline_max)
        await inbox.remove.remote(entries, [follower])

    async def clear_from_home(self, user_id: int, target: int) -> None:
        """A mute or block: the target's posts out of the user's inbox (reads filter them meanwhile)."""
        oldest = await self.timelines.oldest_entry(user_id)
        if oldest is None:
            return
        entries = await self.statuses.recent_entries([target], oldest - 1, self.settings.timeline_max)
        if entries:
            await self.actors.inbox_for(user_id).remove.remote(entries, [user_id])


def dedupe_reblogs(posts: list[HydratedStatus]) -> list[HydratedStatus]:
    """A post shows once per page: the newest of the post itself and its reblogs (Mastodon's rule).

    The inbox already skips a reblog whose original it holds; this covers what
    the read-time merge brings together, e.g. a celebrity's reblog in an outbox.
    """
    seen: set[int] = set()
    kept = []
    for post in posts:
        if post.original.id not in seen:
            seen.add(post.original.id)
            kept.append(post)
    return kept

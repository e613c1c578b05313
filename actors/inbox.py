"""``InboxShards``: the single writer of its users' home timelines and story trays, for the inbox shards it hosts.

State lives in Redis (write-through, AOF on), so a restarted host has its
timelines back at once. One ``deliver`` call carries one post (or a backfill)
for many users of one shard and costs one Redis round trip.

Callers route by shard (``ActorDirectory.inbox_for``, one call per shard per
page of followers); one process hosts several shards (``actors.registry``
says which) because a process per shard costs memory and start-up time for
nothing: a shard's methods hold no state of their own beyond the store.
"""

from __future__ import annotations

import time

import ray

from actors.registry import layout_of
from config import get_settings
from redis_store.durability import Durability
from redis_store.stories import StoryEntry, StoryStore
from redis_store.timelines import Entry, TimelineStore


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class InboxShards:
    def __init__(self, shards: list[int]) -> None:
        self.shards = shards
        settings = get_settings()
        self.store = TimelineStore.from_settings(settings)
        self.stories = StoryStore(self.store.redis, settings.story_tray_max, Durability.configured(settings))

    async def ping(self) -> list[int]:
        return self.shards

    async def layout(self) -> dict[str, int]:
        """The counts this process was started with (``actors.registry.replace_stale_hosts``)."""
        return layout_of(get_settings())

    async def deliver(self, entries: list[Entry], user_ids: list[int], author_id: int | None = None) -> int:
        """Add posts to the inboxes of the active users among ``user_ids``; returns inboxes written."""
        return await self.store.deliver(entries, user_ids, author_id)

    async def remove(self, entries: list[Entry], user_ids: list[int]) -> None:
        await self.store.remove(entries, user_ids)

    async def follow_celebrity(self, author_id: int, user_ids: list[int]) -> None:
        await self.store.follow_celebrity(user_ids, author_id)

    async def unfollow_celebrity(self, author_id: int, user_ids: list[int]) -> None:
        await self.store.unfollow_celebrity(user_ids, author_id)

    async def rebuild(self, user_id: int, entries: list[Entry], celebrity_ids: list[int]) -> None:
        """Refill a cold timeline from the graph's answer; merges with what fan-out added meanwhile."""
        await self.store.deliver(entries, [user_id])
        await self.store.finish_rebuild(user_id, celebrity_ids)

    async def deliver_stories(self, entries: list[StoryEntry], user_ids: list[int]) -> None:
        """Add stories (id, deadline in Unix ms) to the story trays of ``user_ids``."""
        await self.stories.deliver(entries, user_ids, int(time.time() * 1000))

    async def remove_stories(self, story_ids: list[int], user_ids: list[int]) -> None:
        await self.stories.remove(story_ids, user_ids)

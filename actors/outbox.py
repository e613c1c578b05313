"""``CelebrityOutboxes``: the recent posts of celebrity authors, read by their followers at read time.

A celebrity's post costs one append here whatever their follower count; each
follower's feed read merges the outboxes of the celebrities they follow. One
process hosts several outbox shards (``actors.registry``); callers still route
by shard (``ActorDirectory.outbox_for``).
"""

from __future__ import annotations

import ray

from actors.registry import layout_of
from config import get_settings
from redis_store.timelines import TimelineStore


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class CelebrityOutboxes:
    def __init__(self, shards: list[int]) -> None:
        self.shards = shards
        self.store = TimelineStore.from_settings(get_settings())

    async def ping(self) -> list[int]:
        return self.shards

    async def layout(self) -> dict[str, int]:
        """The counts this process was started with (``actors.registry.replace_stale_hosts``)."""
        return layout_of(get_settings())

    async def append(self, author_id: int, status_ids: list[int], announce: bool = False) -> None:
        await self.store.append_outbox(author_id, status_ids, announce)

    async def remove(self, author_id: int, status_ids: list[int]) -> None:
        await self.store.remove_from_outbox(author_id, status_ids)

    async def clear(self, author_id: int) -> None:
        await self.store.clear_outbox(author_id)

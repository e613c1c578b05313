"""``CelebrityOutbox``: the recent posts of celebrity authors, read by their followers at read time.

A celebrity's post costs one append here whatever their follower count; each
follower's feed read merges the outboxes of the celebrities they follow.
"""

from __future__ import annotations

import ray

from config import get_settings
from redis_store.timelines import TimelineStore


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class CelebrityOutbox:
    def __init__(self, shard: int) -> None:
        self.shard = shard
        self.store = TimelineStore.from_settings(get_settings())

    async def ping(self) -> int:
        return self.shard

    async def append(self, author_id: int, status_ids: list[int], announce: bool = False) -> None:
        await self.store.append_outbox(author_id, status_ids, announce)

    async def remove(self, author_id: int, status_ids: list[int]) -> None:
        await self.store.remove_from_outbox(author_id, status_ids)

    async def clear(self, author_id: int) -> None:
        await self.store.clear_outbox(author_id)

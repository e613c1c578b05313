"""``LikePersister``: writes likes from the event stream to the graph in batches.

Likes are answered from Redis at once; this consumer makes them durable. Per
batch, only the last event of each (account, post) pair matters — it is the
state Redis holds — and the graph write is idempotent, so a crash before the
ack only means the batch is applied again.
"""

from __future__ import annotations

import asyncio

import ray

from actors.consumer import consume_forever
from config import get_settings
from graph.driver import GraphClient
from graph.likes import LikeGraph
from redis_store.client import connect
from redis_store.events import Event, EventStream

GROUP = "likes"
LIKE_EVENTS = ("like.created", "like.deleted")


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class LikePersister:
    async def __init__(self, index: int) -> None:
        settings = get_settings()
        self.index = index
        self.events = EventStream(connect(settings.redis_url), maxlen=settings.event_stream_max)
        graph = GraphClient(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database)
        self.likes = LikeGraph(graph)
        self._task = asyncio.get_running_loop().create_task(
            consume_forever(
                self.events,
                GROUP,
                f"likes-{index}",
                self.handle_batch,
                claim_idle_ms=settings.fanout_claim_idle_ms,
                batch_size=500,
            )
        )

    async def ping(self) -> int:
        return self.index

    async def handle_batch(self, batch: list[Event]) -> None:
        final: dict[tuple[int, int], Event] = {}
        for event in batch:
            if event.type in LIKE_EVENTS:
                final[(event.data["account_id"], event.data["status_id"])] = event
        created = [e.data for e in final.values() if e.type == "like.created"]
        deleted = [e.data for e in final.values() if e.type == "like.deleted"]
        if created or deleted:
            await self.likes.apply(created, deleted)

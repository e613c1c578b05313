"""``LikePersister``: writes likes from the event stream to the graph in batches.

Likes are answered from Redis at once, once the append-only file holding the
like and its event is on disk (``redis_store.likes``); this consumer then
makes them part of the graph, the system of record. Per batch, only the last
event of each (account, post) pair matters — it is the state Redis holds —
and the graph write is idempotent, so a crash before the ack only means the
batch is applied again. The events of one pair must be applied in order: the
consumer loop keeps that order when it retries events one by one or sends
one to the dead-letter stream (``like_pair``). The stream holds a pair's
events in the order the changes were made on a Redis Cluster too, where a
like reaches the stream in a step of its own: a late or repeated copy of an
older change is not appended after a newer one (``redis_store.likes``).
"""

from __future__ import annotations

from actors.consumer import consume_forever
from config import get_settings
from graph.driver import GraphClient
from graph.likes import LikeGraph
from redis_store.client import redis_from
from redis_store.events import Event, EventStream

GROUP = "likes"
LIKE_EVENTS = ("like.created", "like.deleted")


def like_pair(event: Event) -> tuple[int, int] | None:
    """The (account, post) pair a like event is about; its events must be applied in order."""
    if event.type not in LIKE_EVENTS:
        return None
    pair = (event.data.get("account_id"), event.data.get("status_id"))
    return pair if all(isinstance(part, int) for part in pair) else None


class LikePersister:
    """The ``likes`` group's consumer; ``StreamConsumers`` (``actors.stream``) runs it."""

    def __init__(self, name: str) -> None:
        settings = get_settings()
        self.name = name
        self.events = EventStream(redis_from(settings), maxlen=settings.event_stream_max)
        graph = GraphClient(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database)
        self.likes = LikeGraph(graph)
        self.claim_idle_ms = settings.fanout_claim_idle_ms

    async def run(self) -> None:
        """Consume the ``likes`` group until cancelled."""
        await consume_forever(
            self.events,
            GROUP,
            self.name,
            self.handle_batch,
            claim_idle_ms=self.claim_idle_ms,
            batch_size=500,
            order_key=like_pair,
        )

    async def handle_batch(self, batch: list[Event]) -> None:
        final: dict[tuple[int, int], Event] = {}
        for event in batch:
            if event.type in LIKE_EVENTS:
                final[(event.data["account_id"], event.data["status_id"])] = event
        created = [e.data for e in final.values() if e.type == "like.created"]
        deleted = [e.data for e in final.values() if e.type == "like.deleted"]
        if created or deleted:
            await self.likes.apply(created, deleted)

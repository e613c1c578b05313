"""``DiscoveryIndexer``: keeps the tag and public timelines and the trend inputs (consumer group ``discovery``).

From the event stream, in batches:
  * ``status.created`` of a public post (not a reblog): into the public
    timeline (not if it is a comment, as Mastodon's public feed leaves
    replies out), each of its tags' timelines, their ``only_media`` twins when
    it has media, and its tags' history of the day (``redis_store.discovery``);
  * ``status.created`` of a reblog, ``like.created``: the post shared or liked
    becomes a candidate for trending statuses;
  * ``status.deleted``: out of all of them (the event carries the post's tags).

The records of a batch's new posts come from the graph in one query (events
carry ids; the sweeper re-emits bare ones). Every write is idempotent (sorted
set and set members), so an event handled twice changes nothing. Runs in
``StreamConsumers`` host 0 (``actors.stream``) beside the notifier: no
process of its own.
"""

from __future__ import annotations

import time

from actors.consumer import consume_forever
from config import get_settings
from graph.driver import GraphClient
from graph.statuses import StatusGraph
from redis_store.client import redis_from
from redis_store.discovery import DiscoveryStore, PublicPost
from redis_store.events import Event, EventStream

GROUP = "discovery"


def public_post(record: dict) -> PublicPost | None:
    """What the timelines index of a post, if it belongs in them: public, and not a reblog."""
    if record.get("visibility") != "public" or record.get("reblog_of_id") is not None:
        return None
    return PublicPost(
        id=record["id"],
        account_id=record["account_id"],
        created_at=record["created_at"],
        tags=list(record.get("tags") or []),
        has_media=bool(record.get("media_ids")),
        reply=record.get("in_reply_to_id") is not None,
    )


class DiscoveryIndexer:
    """The ``discovery`` group's consumer; ``StreamConsumers`` (``actors.stream``) runs it."""

    def __init__(self, name: str) -> None:
        settings = get_settings()
        self.name = name
        redis = redis_from(settings)
        self.events = EventStream(redis, maxlen=settings.event_stream_max)
        self.store = DiscoveryStore(redis, settings.tag_timeline_max, settings.public_timeline_max)
        graph = GraphClient(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database)
        self.statuses = StatusGraph(graph)
        self.claim_idle_ms = settings.fanout_claim_idle_ms

    async def run(self) -> None:
        """Consume the ``discovery`` group until cancelled."""
        await consume_forever(
            self.events, GROUP, self.name, self.handle_batch, claim_idle_ms=self.claim_idle_ms, batch_size=200
        )

    async def handle_batch(self, batch: list[Event]) -> None:
        created: list[int] = []
        touched: dict[int, int] = {}
        now = int(time.time() * 1000)
        for event in batch:
            data = event.data
            if event.type == "status.created":
                if data.get("reblog_of_id") is not None:
                    touched[data["reblog_of_id"]] = now
                else:
                    created.append(data["status_id"])
            elif event.type == "like.created":
                touched[data["status_id"]] = now
            elif event.type == "status.deleted":
                await self.store.remove_post(data["status_id"], data.get("tags") or [])
        if created:
            records = await self.statuses.get_many(created)
            posts = [public_post(records[i]) for i in created if i in records]
            await self.store.add_posts([p for p in posts if p is not None])
        await self.store.note_interactions(touched)

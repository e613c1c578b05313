"""``FanoutWorker``: carries out the feed's rules for post, story and account events.

What a post's fan-out does is decided by ``services.feed.FeedManager``; this
worker consumes the ``fanout`` group of the event stream (one loop per
consumer index ``actors.registry`` gives it) and calls the manager. An event
is acked only after every shard confirmed its part, so a worker that dies
mid-batch leaves the event pending; its restart (or another worker after
``fanout_claim_idle_ms``) finishes it. Every write is idempotent, so doing a
part twice is harmless.

The worker running consumer 0 also runs the sweeper: posts whose fan-out was
never acknowledged (the API crashed between the graph write and the stream
append) are re-emitted. Consumer 0 also adopts the pending events of
consumers a restart with fewer ``FANOUT_WORKERS`` retired
(``actors.consumer.adopt_retired``), so lowering the count loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time

from actors.consumer import consume_forever
from actors.registry import ActorDirectory, fanout_name, retired_fanout
from config import get_settings
from graph.driver import GraphClient
from graph.follows import FollowGraph
from graph.relations import RelationGraph
from graph.statuses import StatusGraph
from graph.tags import TagGraph
from ids import min_id_at_ms
from redis_store.client import redis_from
from redis_store.durability import Durability
from redis_store.events import Event, EventStream
from redis_store.followers import FollowerLists
from redis_store.relations import RelationCache
from redis_store.stories import StoryStore
from redis_store.timelines import TimelineStore
from services.feed import FeedManager
from services.relations import RelationService

log = logging.getLogger("raygram.fanout")
GROUP = "fanout"


class FanoutWorker:
    """The fan-out consumers ``consumers`` (their indexes); ``StreamConsumers`` (``actors.stream``) runs them."""

    def __init__(self, consumers: list[int]) -> None:
        self.settings = settings = get_settings()
        self.consumers = consumers
        redis = redis_from(settings)
        graph = GraphClient(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database)
        self.statuses = StatusGraph(graph)
        self.events = EventStream(redis, maxlen=settings.event_stream_max)
        self.feed = FeedManager(
            settings,
            TimelineStore.from_settings(settings, redis),
            FollowGraph(graph),
            FollowerLists(redis, settings.follower_list_days),
            self.statuses,
            ActorDirectory(settings),
            RelationService(RelationGraph(graph), RelationCache(redis)),
            StoryStore(redis, settings.story_tray_max, Durability.configured(settings)),
            TagGraph(graph),
        )

    async def run(self) -> None:
        """Run every consumer loop (and the sweeper with consumer 0) until cancelled."""
        sweeper = [self._sweep()] if 0 in self.consumers else []
        await asyncio.gather(*(self._consume(fanout_name(i)) for i in self.consumers), *sweeper)

    async def _consume(self, consumer: str) -> None:
        """One consumer's loop; consumer 0 also adopts what consumers of an earlier, larger ``FANOUT_WORKERS`` left."""
        await consume_forever(
            self.events,
            GROUP,
            consumer,
            self.handle_batch,
            claim_idle_ms=self.settings.fanout_claim_idle_ms,
            retired=retired_fanout(self.settings) if consumer == fanout_name(0) else None,
        )

    async def handle_batch(self, batch: list[Event]) -> None:
        for event in batch:
            await self.handle(event)

    async def handle(self, event: Event) -> None:
        data = event.data
        if event.type == "status.created":
            await self.feed.distribute(data["status_id"], data["account_id"])
        elif event.type == "status.deleted":
            await self.feed.withdraw(data["status_id"], data["account_id"], data.get("reblog_of_id"))
        elif event.type == "account.promoted":
            await self.feed.promote(data["account_id"])
        elif event.type == "account.demoted":
            await self.feed.demote(data["account_id"])
        elif event.type == "story.created":
            await self.feed.distribute_story(data["story_id"], data["account_id"], data["expires_at"])
        elif event.type == "story.ended":
            await self.feed.withdraw_story(data["story_id"], data["account_id"])
        elif event.type == "account.muted":
            await self.feed.clear_from_home(data["account_id"], data["target_id"])
        elif event.type == "account.blocked":  # each is hidden from the other
            await self.feed.clear_from_home(data["account_id"], data["target_id"])
            await self.feed.clear_from_home(data["target_id"], data["account_id"])

    async def _sweep(self) -> None:
        """Re-emit recent posts whose fan-out was never acknowledged."""
        while True:
            await asyncio.sleep(self.settings.sweep_interval_seconds)
            try:
                now_ms = int(time.time() * 1000)
                stranded = await self.statuses.undelivered(
                    older_than=min_id_at_ms(now_ms - int(self.settings.sweep_grace_seconds * 1000)),
                    newer_than=min_id_at_ms(now_ms - 86_400_000),
                    limit=500,
                )
                for row in stranded:  # the event as the API would have sent it: the notifier needs the audience
                    await self.events.publish(
                        "status.created",
                        status_id=row["id"],
                        account_id=row["account_id"],
                        in_reply_to_account_id=row["in_reply_to_account_id"],
                        visibility=row["visibility"],
                        mentions=row["mentions"] or [],
                    )
                if stranded:
                    log.warning("sweeper re-emitted %d undelivered posts", len(stranded))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sweep failed; will try again")

"""``StoryExpirer``: on a timer, removes what expired stories left behind.

Reads never show a story past its deadline (``services.stories`` compares
it with the clock), so this loop is housekeeping, and may run late without
anyone seeing an expired story. Every ``story_expiry_interval_seconds``:

  * trays, authors' sets and seen sets whose earliest entry has passed its
    deadline are pruned, found through the due index (``redis_store.stories``):
    the work is the number of sets with something expired, not the number of
    users;
  * stories whose delivery was cut short (the API died after the graph
    write) are delivered again (``services.story_delivery``);
  * stories past their deadline are marked ``expired`` in the graph, after
    their upload is deleted when ``story_keep_media`` is false (its files
    removed unless another live upload shares the same bytes, then its record
    marked ``deleted``: its URLs answer 404).

It runs as a task in the ``StreamConsumers`` host that runs the notifier
(``actors.stream``), so it costs no process of its own; it keeps no state, so
a restarted host simply carries on (a crash between retiring the media and
marking the story expired is redone: both steps are idempotent).
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson

from config import Settings
from graph.driver import GraphClient
from graph.media import MediaGraph
from graph.stories import StoryGraph
from media.store import ObjectStore, object_store, original_key
from redis_store.client import redis_from
from redis_store.durability import Durability
from redis_store.events import EventStream
from redis_store.stories import StoryStore
from services.story_delivery import deliver_story

log = logging.getLogger("raygram.stories")
BATCH = 500


class StoryExpirer:
    def __init__(
        self, settings: Settings, graph: GraphClient, store: StoryStore, events: EventStream, objects: ObjectStore
    ) -> None:
        self.settings = settings
        self.stories = StoryGraph(graph)
        self.media = MediaGraph(graph)
        self.store = store
        self.events = events
        self.objects = objects

    @classmethod
    def create(cls, settings: Settings) -> StoryExpirer:
        graph = GraphClient(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database)
        redis = redis_from(settings)
        store = StoryStore(redis, settings.story_tray_max, Durability.configured(settings))
        events = EventStream(redis, maxlen=settings.event_stream_max)
        return cls(settings, graph, store, events, object_store(settings))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.story_expiry_interval_seconds)
            try:
                await self.sweep(int(time.time() * 1000))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("story expiry failed; will try again")

    async def sweep(self, now_ms: int) -> tuple[int, int]:
        """One pass at ``now_ms``: (sets pruned, stories expired)."""
        grace_ms = int(self.settings.sweep_grace_seconds * 1000)
        for story in await self.stories.undelivered(now_ms - grace_ms, now_ms, BATCH):
            log.warning("delivering story %s again: its delivery was cut short", story["id"])
            await deliver_story(story, now_ms, self.store, self.events, self.stories)
        pruned = 0
        while (done := await self.store.prune_due(now_ms, BATCH)) > 0:
            pruned += done
            if done < BATCH:
                break
        expired = 0
        while due := await self.stories.due(now_ms, BATCH):
            if not self.settings.story_keep_media:
                await self._delete_media([story["media_id"] for story in due])
            await self.stories.mark_expired([story["id"] for story in due])
            expired += len(due)
            if len(due) < BATCH:
                break
        return pruned, expired

    async def _delete_media(self, media_ids: list[int]) -> None:
        """Files first, then the records: a crash in between is redone by the next pass."""
        rows = await self.media.retirable(media_ids)
        for row in rows:
            if row["shared"]:
                continue
            keys = [original_key(row["sha256"]), *(v["key"] for v in orjson.loads(row.get("variants") or "[]"))]
            for key in keys:
                await self.objects.delete(key)
        await self.media.mark_deleted([row["id"] for row in rows])

"""``SearchIndexer``: keeps the status search index (``actors.post_index``) and answers its queries.

Consumer group ``search`` of the event stream, in batches:
  * ``status.created``: the batch's posts are read from the graph in one
    query (events carry ids; the sweeper re-emits bare ones) and indexed,
    unless they are reblogs (no caption of their own), direct messages (never
    searchable) or have no caption;
  * ``status.deleted``: out of the index.
Every write replaces or deletes by id, so an event handled twice changes
nothing; events are acked only after the index committed (fsynced).

The index is one SQLite file under the state folder, owned by this consumer,
which ``StreamConsumers`` host 0 runs (``actors.stream``): no process of its
own, and every Serve replica reaches the one index through that actor
(``services.search``). It is rebuilt from the graph, the system of record,
whenever it is not known to be complete: on a first start, after its file was
lost (a new machine, a wiped state folder), or after a rebuild was cut short.
A rebuild first moves the group to the end of the stream (what was published
before is in the graph it then reads), then reads every post in one streamed
pass, indexing a chunk at a time; events wait meanwhile, so a deletion is
never applied before the chunk that still held the post. Searches answer
from the part built so far.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from redis.exceptions import ResponseError

from actors.consumer import TRANSIENT, consume_forever
from actors.post_index import IndexedPost, PostIndex, StatusQuery
from config import Settings, get_settings
from graph.driver import GraphClient, Row
from graph.statuses import StatusGraph
from redis_store.client import redis_from
from redis_store.events import Event, EventStream

log = logging.getLogger("raygram.search")
GROUP = "search"
REBUILD_CHUNK = 2000  # posts streamed from the graph, and indexed, at a time while rebuilding
# One streamed pass: ArcadeDB answers an id-range page (``s.id > $after ORDER BY s.id LIMIT n``) by scanning
# every post, so paging would cost a scan per page (measured at 100k posts: 2.5-8 s a page, 10 s for the pass).
REBUILD_QUERY = (
    "MATCH (s:Status) WHERE s.reblog_of_id IS NULL "
    "RETURN s.id AS id, s.account_id AS account_id, s.visibility AS visibility, s.text AS text"
)


def index_path(settings: Settings) -> Path:
    return settings.state_dir.resolve() / "search" / "statuses.sqlite3"


def indexed(record: Row) -> IndexedPost | None:
    """What the index keeps of a post: nothing for a reblog, a direct message or a post without a caption."""
    text = record.get("text") or ""
    if record.get("reblog_of_id") is not None or record.get("visibility") == "direct" or not text.strip():
        return None
    return IndexedPost(record["id"], record["account_id"], record.get("visibility") or "public", text)


class SearchIndexer:
    """The ``search`` group's consumer and the index's owner; ``StreamConsumers`` runs it."""

    def __init__(self, name: str) -> None:
        settings = get_settings()
        self.name = name
        self.redis = redis_from(settings)
        self.events = EventStream(self.redis, maxlen=settings.event_stream_max)
        self.graph = GraphClient(
            settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database
        )
        self.statuses = StatusGraph(self.graph)
        self.index = PostIndex(index_path(settings))
        self.claim_idle_ms = settings.fanout_claim_idle_ms
        self.writing = asyncio.Lock()  # a rebuild and the consumer's batches, one at a time

    async def run(self) -> None:
        """Rebuild if the index is not complete, then consume the ``search`` group until cancelled."""
        if not await asyncio.to_thread(self.index.is_built):
            await self.rebuild_patiently()
        await consume_forever(
            self.events, GROUP, self.name, self.handle_batch, claim_idle_ms=self.claim_idle_ms, batch_size=200
        )

    async def rebuild_patiently(self) -> None:
        """``rebuild``, started over while the graph or Redis is away (a start beside a restarting store)."""
        delay = 0.1
        while True:
            try:
                await self.rebuild()
                return
            except TRANSIENT as exc:
                log.warning("search index rebuild: %s; retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def rebuild(self) -> int:
        """Index every post the graph holds (see the module docstring); how many were indexed."""
        async with self.writing:
            await asyncio.to_thread(self.index.mark_built, False)
            await self._group_from_now()
            count = 0
            async for rows in self._every_post():
                count += await asyncio.to_thread(self.index.upsert, [p for r in rows if (p := indexed(r))])
            await asyncio.to_thread(self.index.mark_built, True)
        log.info("search index rebuilt from the graph: %d posts", count)
        return count

    async def _every_post(self) -> AsyncIterator[list[Row]]:
        """Every original post in the graph, ``REBUILD_CHUNK`` at a time, from one streamed read."""
        async with self.graph.driver.session(database=self.graph.database, fetch_size=REBUILD_CHUNK) as session:
            result = await session.run(REBUILD_QUERY)
            chunk: list[Row] = []
            async for record in result:
                chunk.append(record.data())
                if len(chunk) >= REBUILD_CHUNK:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk

    async def _group_from_now(self) -> None:
        """The group reads only what is published from now on (its pending entries stay pending)."""
        try:
            await self.redis.xgroup_create(self.events.stream, GROUP, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            await self.redis.xgroup_setid(self.events.stream, GROUP, "$")

    async def handle_batch(self, batch: list[Event]) -> None:
        created = [e.data["status_id"] for e in batch if e.type == "status.created" and _is_id(e.data.get("status_id"))]
        deleted = [e.data["status_id"] for e in batch if e.type == "status.deleted" and _is_id(e.data.get("status_id"))]
        async with self.writing:
            if created:
                records = await self.statuses.get_many(created)  # deleted since: simply absent
                await asyncio.to_thread(self.index.upsert, [p for r in records.values() if (p := indexed(r))])
            if deleted:
                await asyncio.to_thread(self.index.delete, deleted)

    async def search(self, query: StatusQuery) -> list[int]:
        return await asyncio.to_thread(self.index.search, query)


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0

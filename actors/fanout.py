"""``FanoutWorker``: turns post and account events into timeline writes.

A worker runs one or more consumers of the ``fanout`` group of the event
stream (``actors.registry`` says which), each loop a task of its own. An
event is acked only after every shard confirmed its part, so a worker that
dies mid-batch leaves the event pending; its restart (or another worker after
``fanout_claim_idle_ms``) finishes it. Every write is idempotent, so doing a
part twice is harmless.

The rules (docs/architecture.md, "The feed"):
  * ordinary author: page followers out of the author's follower list in
    Redis (``redis_store.followers``), group each page by inbox shard, one
    ``deliver`` call per shard. While the list is not complete the pages come
    from the graph, and a pass from the first follower rebuilds the list on
    the way;
  * celebrity author (``celeb:ready``): one append to their outbox;
  * promotion fills the outbox and adds the author to every follower's
    celebrity set *before* switching to pull, then drops the author's
    follower list (pull does not read it); demotion switches back to push
    *before* pushing recent posts and dropping the sets, so no post goes
    missing in between and the read-time merge removes duplicates.

The worker running consumer 0 also runs the sweeper: posts whose fan-out was
never acknowledged (the API crashed between the graph write and the stream
append) are re-emitted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from ray.actor import ActorHandle

import metrics
from actors.consumer import consume_forever
from actors.registry import ActorDirectory, fanout_name, group_by_shard
from config import get_settings
from graph.driver import GraphClient
from graph.follows import FollowGraph
from graph.statuses import StatusGraph
from ids import id_to_ms, min_id_at_ms
from redis_store.client import connect
from redis_store.events import Event, EventStream
from redis_store.followers import FollowerLists
from redis_store.timelines import TimelineStore

log = logging.getLogger("raygram.fanout")
GROUP = "fanout"


class FanoutWorker:
    """The fan-out consumers ``consumers`` (their indexes); ``StreamConsumers`` (``actors.stream``) runs them."""

    def __init__(self, consumers: list[int]) -> None:
        self.settings = settings = get_settings()
        self.consumers = consumers
        redis = connect(settings.redis_url)
        self.graph = GraphClient(
            settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database
        )
        self.follows = FollowGraph(self.graph)
        self.followers = FollowerLists(redis, settings.follower_list_days)
        self.statuses = StatusGraph(self.graph)
        self.timelines = TimelineStore(redis, settings.timeline_max, settings.outbox_max, settings.inactive_days)
        self.events = EventStream(redis, maxlen=settings.event_stream_max)
        self.actors = ActorDirectory(settings)

    async def run(self) -> None:
        """Run every consumer loop (and the sweeper with consumer 0) until cancelled."""
        sweeper = [self._sweep()] if 0 in self.consumers else []
        await asyncio.gather(*(self._consume(fanout_name(i)) for i in self.consumers), *sweeper)

    async def _consume(self, consumer: str) -> None:
        await consume_forever(
            self.events, GROUP, consumer, self.handle_batch, claim_idle_ms=self.settings.fanout_claim_idle_ms
        )

    async def handle_batch(self, batch: list[Event]) -> None:
        for event in batch:
            await self.handle(event)

    async def handle(self, event: Event) -> None:
        data = event.data
        if event.type == "status.created":
            await self.fan_out(data["status_id"], data["account_id"])
        elif event.type == "status.deleted":
            await self.fan_out_delete(data["status_id"], data["account_id"], data.get("reblog_of_id"))
        elif event.type == "account.promoted":
            await self.promote(data["account_id"])
        elif event.type == "account.demoted":
            await self.demote(data["account_id"])

    # -- posts ---------------------------------------------------------------

    async def _follower_pages(self, author_id: int) -> AsyncIterator[list[int]]:
        """Every follower of the author once, a page at a time in id order; the next page loads meanwhile."""
        size = self.settings.follower_page_size
        source = FollowerSource(self.followers, self.follows, author_id, size)
        next_page = asyncio.ensure_future(source.page(0))
        while True:
            followers = await next_page
            if len(followers) == size:
                next_page = asyncio.ensure_future(source.page(followers[-1]))
            if followers:
                yield followers
            if len(followers) < size:
                return

    async def _for_each_follower_page(self, author_id: int, per_shard) -> None:
        """Call ``per_shard(shard, user_ids)`` for every page of followers, grouped by inbox shard."""
        async for followers in self._follower_pages(author_id):
            groups = group_by_shard(followers, self.settings.inbox_shards)
            await asyncio.gather(*(per_shard(self.actors.inboxes[k], users) for k, users in groups.items()))

    async def fan_out(self, status_id: int, author_id: int) -> None:
        status = await self.statuses.get(status_id)
        if status is None:  # deleted before its fan-out ran
            return
        entry = (status_id, status.get("reblog_of_id"))
        if await self.timelines.is_celebrity_ready(author_id):
            await self.actors.outbox_for(author_id).append.remote(author_id, [status_id], announce=True)
        else:
            await self._for_each_follower_page(
                author_id, lambda inbox, users: inbox.deliver.remote([entry], users, author_id)
            )
        await self.actors.inbox_for(author_id).deliver.remote([entry], [author_id])
        await self.statuses.mark_delivered(status_id)
        metrics.observe(metrics.FANOUT_LAG, time.time() * 1000 - id_to_ms(status_id))

    async def fan_out_delete(self, status_id: int, author_id: int, reblog_of_id: int | None) -> None:
        """Take a deleted post out of timelines.

        A celebrity's post is only in their outbox (and their own inbox): one removal, whatever the
        audience. Copies pushed before a promotion may linger in inboxes until trimmed; reads skip
        them, since hydration drops deleted posts.
        """
        entry = (status_id, reblog_of_id)
        await self.actors.outbox_for(author_id).remove.remote(author_id, [status_id])
        if not await self.timelines.is_celebrity_ready(author_id):
            await self._for_each_follower_page(author_id, lambda inbox, users: inbox.remove.remote([entry], users))
        await self.actors.inbox_for(author_id).remove.remote([entry], [author_id])

    # -- celebrity transitions ---------------------------------------------------

    async def _author_is_celebrity(self, author_id: int) -> bool | None:
        rows = await self.graph.read("MATCH (a:Account {id: $id}) RETURN a.celebrity AS c", id=author_id)
        return bool(rows[0]["c"]) if rows else None

    async def promote(self, author_id: int) -> None:
        if not await self._author_is_celebrity(author_id):
            return  # demoted again before this ran
        recent = [s["id"] for s in await self.statuses.by_author(author_id, None, None, None, self.settings.outbox_max)]
        if recent:
            await self.actors.outbox_for(author_id).append.remote(author_id, recent)
        await self._for_each_follower_page(
            author_id, lambda inbox, users: inbox.follow_celebrity.remote(author_id, users)
        )
        await self.timelines.set_celebrity_ready(author_id, True)
        await self.followers.drop(author_id)  # posts are pulled now; demotion rebuilds the list

    async def demote(self, author_id: int) -> None:
        if await self._author_is_celebrity(author_id) is not False:
            return  # promoted again (or gone) before this ran
        await self.timelines.set_celebrity_ready(author_id, False)  # new posts are pushed from now on
        recent = [
            (s["id"], s.get("reblog_of_id"))
            for s in await self.statuses.by_author(author_id, None, None, None, self.settings.backfill_count)
        ]

        async def switch(inbox: ActorHandle, users: list[int]) -> None:
            if recent:
                await inbox.deliver.remote(recent, users, author_id)
            await inbox.unfollow_celebrity.remote(author_id, users)

        await self._for_each_follower_page(author_id, switch)
        await self.actors.outbox_for(author_id).clear.remote(author_id)

    # -- the sweeper -------------------------------------------------------------

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
                for row in stranded:
                    await self.events.publish("status.created", status_id=row["id"], account_id=row["account_id"])
                if stranded:
                    log.warning("sweeper re-emitted %d undelivered posts", len(stranded))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sweep failed; will try again")


class FollowerSource:
    """Where one pass over an author's followers reads its pages, in order of ``after``.

    From the Redis list while it is complete; from the graph once it is not (a
    list can go missing mid-pass: the pass carries on from the graph where it
    was). A pass that finds the list incomplete at its first page also claims
    its rebuild and writes each graph page it reads into it; if another worker
    holds the rebuild, this pass only reads the graph.
    """

    def __init__(self, lists: FollowerLists, graph: FollowGraph, author_id: int, size: int) -> None:
        self.lists, self.graph, self.author_id, self.size = lists, graph, author_id, size
        self.from_list = True
        self.rebuild: str | None = None  # this pass's rebuild token

    async def page(self, after: int) -> list[int]:
        if self.from_list:
            followers = await self.lists.page(self.author_id, after, self.size)
            if followers is not None:
                return followers
            self.from_list = False
            if after == 0:
                self.rebuild = await self.lists.start_rebuild(self.author_id)
        followers = await self.graph.follower_ids(self.author_id, after, self.size)
        if self.rebuild is not None:
            if not await self.lists.add_rebuilt(self.author_id, self.rebuild, followers):
                self.rebuild = None  # taken over by another rebuild
            elif len(followers) < self.size:
                await self.lists.finish_rebuild(self.author_id, self.rebuild)
                self.rebuild = None
        return followers

"""Follow and unfollow, relationships, follower and following lists.

The graph write is the source of truth and happens first. Under the same
per-followee lock, the followee's follower list in Redis (what fan-out pages,
see ``redis_store.followers``) follows it; a crash between the two is repaired
by rebuilding that list from the graph. The timeline work (backfill or celebrity
set) follows in the same request so the follower sees the followee's posts on
their next read. Crossing the celebrity threshold emits an event the fan-out
workers act on.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from graph.accounts import AccountGraph
from graph.driver import Row
from graph.follows import FollowGraph
from ids import SnowflakeGenerator
from redis_store.cache import RecordCache
from redis_store.events import EventStream
from redis_store.locks import Locks
from services.abuse import AbuseGuard
from services.errors import Forbidden, NotFound
from services.feed import FeedManager


class FollowService:
    def __init__(
        self,
        follows: FollowGraph,
        accounts: AccountGraph,
        feed: FeedManager,
        events: EventStream,
        account_cache: RecordCache,
        ids: SnowflakeGenerator,
        abuse: AbuseGuard,
        locks: Locks,
    ) -> None:
        self.follows = follows
        self.accounts = accounts
        self.feed = feed
        self.events = events
        self.account_cache = account_cache
        self.ids = ids
        self.abuse = abuse
        self.locks = locks

    async def _check_target(self, me: int, target: int) -> None:
        if me == target:
            raise Forbidden("This action is not allowed")
        if await self.accounts.get_account(target) is None:
            raise NotFound("Record not found")

    @asynccontextmanager
    async def _edge_change(self, me: int, target: int, *, following: bool) -> AsyncIterator[None]:
        """Around the graph write of a follow or unfollow: one change per followee at a time, then its list.

        Changes to one followee's edges run one at a time: the graph does not serialize a pair's
        check-then-create, and ArcadeDB answers concurrent edge changes on one account with deadlock
        errors and retries a second apart. It also keeps the followee's follower list in Redis written
        in the order of its edges.
        """
        async with self.locks.hold(f"follow:{target}"), self.feed.followers.changing(target, me, following=following):
            yield

    async def follow(self, me: int, target: int) -> tuple[int, bool, bool]:
        await self._check_target(me, target)
        await self.abuse.rate_limit("follow", me)
        async with self._edge_change(me, target, following=True):
            change = await self.follows.follow(
                me, target, self.ids.next_id(), int(time.time() * 1000), self.feed.celebrity_threshold
            )
        if change.changed:
            await self.account_cache.invalidate(me, target)
            await self.feed.merge_into_home(me, target)
            await self.events.publish("follow", account_id=me, target_id=target)
        if change.promoted:
            await self.events.publish("account.promoted", account_id=target)
        return await self.relationship(me, target)

    async def unfollow(self, me: int, target: int) -> tuple[int, bool, bool]:
        await self._check_target(me, target)
        async with self._edge_change(me, target, following=False):
            change = await self.follows.unfollow(me, target, self.feed.demote_below)
        if change.changed:
            await self.account_cache.invalidate(me, target)
            await self.feed.unmerge_from_home(me, target)
        if change.demoted:
            await self.events.publish("account.demoted", account_id=target)
        return await self.relationship(me, target)

    async def relationships(self, me: int, others: list[int]) -> list[tuple[int, bool, bool]]:
        """(account id, I follow them, they follow me) for each of ``others``, in order."""
        following, followed_by = await self.follows.relationships(me, others)
        return [(other, other in following, other in followed_by) for other in others]

    async def relationship(self, me: int, other: int) -> tuple[int, bool, bool]:
        return (await self.relationships(me, [other]))[0]

    async def page(
        self, account_id: int, direction: str, max_id: int | None, since_id: int | None, limit: int
    ) -> list[tuple[int, Row]]:
        if await self.accounts.get_account(account_id) is None:
            raise NotFound("Record not found")
        return await self.follows.page(account_id, direction, max_id, since_id, limit)

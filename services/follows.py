"""Follow and unfollow, relationships, follower and following lists.

The graph write is the source of truth and happens first. Under the same
per-followee lock, the followee's follower list in Redis (what fan-out pages,
see ``redis_store.followers``) follows it; a crash between the two is repaired
by rebuilding that list from the graph. The timeline work (backfill or celebrity
set) follows in the same request so the follower sees the followee's posts on
their next read. Crossing the celebrity threshold emits an event the fan-out
workers act on.

Following an account that blocks you, or that you block, is refused (403).
Following a locked account records a follow request instead (a
``follow_request`` notification for it); the account authorizes it (the follow
is then made as above) or rejects it, and unlocking authorizes every pending
request, as Mastodon does.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from graph.accounts import AccountGraph
from graph.driver import Row
from graph.follows import FollowGraph
from graph.relations import RelationGraph
from ids import SnowflakeGenerator
from redis_store.cache import RecordCache
from redis_store.events import EventStream
from redis_store.locks import Locks
from services.abuse import AbuseGuard
from services.errors import Forbidden, NotFound
from services.feed import FeedManager
from services.relations import RelationService
from services.suggestions import forget_suggestions

UNLOCK_PAGE = 100  # pending requests authorized per graph read when an account unlocks


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
        relations: RelationService,
        relation_graph: RelationGraph,
    ) -> None:
        self.relations = relations
        self.relation_graph = relation_graph
        self.follows = follows
        self.accounts = accounts
        self.feed = feed
        self.events = events
        self.account_cache = account_cache
        self.ids = ids
        self.abuse = abuse
        self.locks = locks

    async def _check_target(self, me: int, target: int) -> Row:
        if me == target:
            raise Forbidden("This action is not allowed")
        account = await self.accounts.get_account(target)
        if account is None:
            raise NotFound("Record not found")
        return account

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
        """Follow ``target``, or ask to if it is locked (a request; the relationship says ``requested``)."""
        account = await self._check_target(me, target)
        await self._refuse_if_blocked(me, target)
        await self.abuse.rate_limit("follow", me)
        if account.get("locked") and not await self.follows.is_following(me, target):
            if await self.relation_graph.request_follow(me, target, self.ids.next_id(), int(time.time() * 1000)):
                await self.events.publish("follow_request", account_id=me, target_id=target)
            return await self.relationship(me, target)
        return await self._make_follow(me, target)

    async def _refuse_if_blocked(self, me: int, target: int) -> None:
        if await self.relations.hidden_among(me, [target]):
            raise Forbidden("This action is not allowed")

    async def _make_follow(self, me: int, target: int) -> tuple[int, bool, bool]:
        async with self._edge_change(me, target, following=True):
            # Checked again under the pair's lock: a block that lands meanwhile unfollows under the same lock
            # after this, so a follow never outlives a block.
            await self._refuse_if_blocked(me, target)
            change = await self.follows.follow(
                me, target, self.ids.next_id(), int(time.time() * 1000), self.feed.celebrity_threshold
            )
        if change.changed:
            await self.account_cache.invalidate(me, target)
            await forget_suggestions(self.locks.redis, me)
            await self.feed.merge_into_home(me, target)
            await self.events.publish("follow", account_id=me, target_id=target)
        if change.promoted:
            await self.events.publish("account.promoted", account_id=target)
        return await self.relationship(me, target)

    async def unfollow(self, me: int, target: int) -> tuple[int, bool, bool]:
        """Stop following ``target`` (withdrawing a pending request too)."""
        await self._check_target(me, target)
        await self.relation_graph.withdraw_request(me, target)
        async with self._edge_change(me, target, following=False):
            change = await self.follows.unfollow(me, target, self.feed.demote_below)
        if change.changed:
            await self.account_cache.invalidate(me, target)
            await self.feed.unmerge_from_home(me, target)
        if change.demoted:
            await self.events.publish("account.demoted", account_id=target)
        return await self.relationship(me, target)

    async def authorize(self, me: int, requester: int) -> None:
        """Accept a pending request: the follow is made as if the account were not locked. 404 without one."""
        if not await self.relation_graph.withdraw_request(requester, me):
            raise NotFound("Record not found")
        await self._make_follow(requester, me)

    async def reject(self, me: int, requester: int) -> None:
        if not await self.relation_graph.withdraw_request(requester, me):
            raise NotFound("Record not found")

    async def authorize_all(self, me: int) -> None:
        """An account that unlocks accepts every pending request (oldest first, a page at a time)."""
        while requesters := await self.relation_graph.requesters(me, UNLOCK_PAGE):
            for requester in requesters:
                if await self.relation_graph.withdraw_request(requester, me):
                    try:
                        await self._make_follow(requester, me)
                    except Forbidden:  # blocked since it asked: the request just goes
                        pass

    async def requests(self, me: int, max_id: int | None, since_id: int | None, limit: int) -> list[tuple[int, Row]]:
        """(request id, account) pairs of the pending requests to ``me``, newest first."""
        return await self.relation_graph.page(me, "REQUESTED", max_id, since_id, limit)

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

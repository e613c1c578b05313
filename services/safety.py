"""Blocks and mutes (Mastodon's semantics), and the Relationship a client sees between two accounts.

* A block removes the follows between the two accounts both ways, through
  ``FollowService.unfollow``, so counts, follower lists and feeds stay right;
  it drops pending follow requests between them, forbids following again
  (403) and hides each from the other on every read path (``RelationService``).
* A mute hides the muted account's posts, reblogs of them and posts mentioning
  them from the muter's home feed, and its notifications when
  ``notifications`` (the default); with ``duration`` (seconds) it ends by
  itself, checked at read time. Muting again replaces the settings.

Both are in the graph before the answer and take effect on the next read: the
cached relations of both accounts are dropped with the change. The home feed's
existing entries are cleaned asynchronously: an ``account.blocked`` or
``account.muted`` event has the fan-out worker run ``FeedManager.clear_from_home``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from graph.accounts import AccountGraph
from graph.driver import Row
from graph.relations import RelationGraph
from ids import SnowflakeGenerator
from redis_store.events import EventStream
from services.errors import Forbidden, NotFound, Unprocessable
from services.follows import FollowService
from services.relations import RelationService

MAX_MUTE_SECONDS = 10 * 365 * 86_400


@dataclass(frozen=True)
class Relationship:
    """Mastodon's Relationship between the viewer and one account."""

    id: int
    following: bool = False
    followed_by: bool = False
    blocking: bool = False
    blocked_by: bool = False
    muting: bool = False
    muting_notifications: bool = False
    requested: bool = False
    requested_by: bool = False


class SafetyService:
    def __init__(
        self,
        graph: RelationGraph,
        relations: RelationService,
        follows: FollowService,
        accounts: AccountGraph,
        ids: SnowflakeGenerator,
        events: EventStream,
    ) -> None:
        self.events = events
        self.graph = graph
        self.relations = relations
        self.follows = follows
        self.accounts = accounts
        self.ids = ids

    async def _check_target(self, me: int, target: int) -> None:
        if me == target:
            raise Forbidden("This action is not allowed")
        if await self.accounts.get_account(target) is None:
            raise NotFound("Record not found")

    async def block(self, me: int, target: int) -> Relationship:
        await self._check_target(me, target)
        await self.graph.block(me, target, self.ids.next_id(), int(time.time() * 1000))
        await self.relations.changed(me, target)  # hidden from the next read on
        await self.follows.unfollow(me, target)
        await self.follows.unfollow(target, me)
        await self.events.publish("account.blocked", account_id=me, target_id=target)
        return await self.relationship(me, target)

    async def unblock(self, me: int, target: int) -> Relationship:
        await self._check_target(me, target)
        if await self.graph.unblock(me, target):
            await self.relations.changed(me, target)
        return await self.relationship(me, target)

    async def mute(self, me: int, target: int, notifications: bool, duration: int) -> Relationship:
        await self._check_target(me, target)
        if not 0 <= duration <= MAX_MUTE_SECONDS:
            raise Unprocessable(f"Validation failed: duration must be 0 (no end) to {MAX_MUTE_SECONDS} seconds")
        now = self.relations.now_ms()
        expires_at = now + duration * 1000 if duration else 0
        await self.graph.mute(me, target, notifications, expires_at, self.ids.next_id(), now)
        await self.relations.changed(me)
        await self.events.publish("account.muted", account_id=me, target_id=target)
        return await self.relationship(me, target)

    async def unmute(self, me: int, target: int) -> Relationship:
        await self._check_target(me, target)
        if await self.graph.unmute(me, target):
            await self.relations.changed(me)
        return await self.relationship(me, target)

    async def blocks(self, me: int, max_id: int | None, since_id: int | None, limit: int) -> list[tuple[int, Row]]:
        return await self.graph.page(me, "BLOCKS", max_id, since_id, limit)

    async def mutes(self, me: int, max_id: int | None, since_id: int | None, limit: int) -> list[tuple[int, Row]]:
        return await self.graph.page(me, "MUTES", max_id, since_id, limit, self.relations.now_ms())

    async def relationships(self, me: int, others: list[int]) -> list[Relationship]:
        """The viewer's Relationship with each of ``others``, in order: a fixed number of queries for all."""
        follows = await self.follows.relationships(me, others)
        flags = await self.relations.flags(me, others)
        requested = await self.graph.requested(me, others)
        requested_by = await self.graph.requested_by(me, others)
        now = self.relations.now_ms()
        result = []
        for other, following, followed_by in follows:
            f = flags.get(other)
            muting = bool(f and f.muted_at(now))
            result.append(
                Relationship(
                    other,
                    following,
                    followed_by,
                    blocking=bool(f and f.blocking),
                    blocked_by=bool(f and f.blocked_by),
                    muting=muting,
                    muting_notifications=muting and bool(f and f.muting_notifications),
                    requested=other in requested,
                    requested_by=other in requested_by,
                )
            )
        return result

    async def relationship(self, me: int, other: int) -> Relationship:
        return (await self.relationships(me, [other]))[0]

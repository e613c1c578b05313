"""The consumer loop shared by the stream-driven actors (fan-out, like persister, notifier).

At-least-once: events are acked only after ``handle_batch`` returned, so
handlers must be idempotent. On start, and after any failure, the consumer
first finishes its own pending entries (what it had taken before); entries
another consumer left pending for longer than ``claim_idle_ms`` are
re-claimed.

The loop survives losing Redis:
  * Redis unreachable (restarting, network): back off (0.1 s doubling to
    10 s) and start over once it answers;
  * the group gone (``NOGROUP``: the data was flushed, or Redis restarted
    without it): recreate it (``EventStream.ensure_group`` says why from the
    stream's start) and carry on.

A failing handler does not block its queue for ever. When a batch fails,
its events are tried one at a time, in order, so the good ones go through;
an event that fails alone stays pending and is tried again after
``event_retry_seconds``. When it fails on its ``event_max_attempts``-th
delivery (the group's own delivery count, which Redis keeps across consumer
restarts), it goes to the group's dead-letter stream with its error
(``raygram events dead`` lists them, ``raygram events replay`` puts them
back) and is counted in the ``raygram_events_dead_lettered`` metric. Later events with the same
``order_key`` as a failed one (the persister's (account, post) pair: a like,
then its unlike) are held back with it and share its fate, so that they are
never applied out of order. Failures of the infrastructure (Redis, the graph
or an actor away) are not the event's fault: they never count towards
dead-lettering, the loop backs off instead.

Consumers can be retired: a group's consumers are named by index
(``fanout-0``…), and a restart with fewer of them (``FANOUT_WORKERS``
lowered) leaves the old names in the group, holding whatever they had taken
and not acked. The consumer given ``retired`` (fan-out consumer 0) adopts
those entries whenever it starts: it claims them (``adopt_retired``), then
finishes them first with its own pending ones, and removes the old names
from the group, so that no event waits ``claim_idle_ms`` for a consumer that
will never come back and no name is left behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable

import neo4j.exceptions
import ray.exceptions
import redis.exceptions

import metrics
from config import get_settings
from redis_store.events import Event, EventStream

log = logging.getLogger("raygram.consumer")
BatchHandler = Callable[[list[Event]], Awaitable[None]]
OrderKey = Callable[[Event], Hashable | None]
Retired = Callable[[str], bool]  # whether a consumer name of the group is no longer in use

# An outage, not a bad event: Redis, the graph or an actor is away for a while (Ray re-raises an actor's
# exception as an instance of its class too, so a Redis error inside an inbox shard is one of these).
TRANSIENT: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    neo4j.exceptions.ServiceUnavailable,
    neo4j.exceptions.SessionExpired,
    neo4j.exceptions.TransientError,
    ray.exceptions.RayActorError,
    OSError,
)
PENDING_CHUNK = 1000  # own pending events read at once when starting over
BACKOFF_FIRST, BACKOFF_CAP = 0.1, 10.0

# KEYS: the stream; ARGV: group, consumer. XGROUP DELCONSUMER drops the consumer's pending entries with it, so it
# runs only if none are left, in one step: the consumer, were it still running somewhere, cannot take one between
# the check and the deletion. Returns 1 if deleted.
_DELETE_IF_IDLE = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


class HandlerFailed(Exception):
    """Some events of a batch failed on their own; they stay pending for another try."""


class _Consumer:
    def __init__(
        self,
        events: EventStream,
        group: str,
        consumer: str,
        handle_batch: BatchHandler,
        claim_idle_ms: int,
        batch_size: int,
        order_key: OrderKey | None,
        retired: Retired | None,
    ) -> None:
        settings = get_settings()
        self.events, self.group, self.consumer = events, group, consumer
        self.handle_batch, self.order_key, self.retired = handle_batch, order_key, retired
        self.claim_idle_ms, self.batch_size = claim_idle_ms, batch_size
        self.max_attempts = settings.event_max_attempts
        self.retry_seconds = settings.event_retry_seconds
        self.dead_letter_cap = settings.event_dead_letter_max
        self.started = False  # the group exists and the backlog of own pending events was read
        self.backlog: list[Event] = []
        self.one_by_one = False  # after a handler failure, until the backlog is through
        self.outages = 0  # consecutive infrastructure failures, for the back-off

    async def run(self) -> None:
        while True:
            try:
                await self.step()
                self.outages = 0
            except asyncio.CancelledError:
                raise
            except HandlerFailed:
                self.started = False  # re-read what stays pending, in order, before anything newer
                await asyncio.sleep(self.retry_seconds)
            except Exception as exc:  # the group gone, an outage (TRANSIENT), or a bug outside the handlers
                await self.back_off(exc)

    async def back_off(self, exc: Exception) -> None:
        """Start over (group, own pending events) after a pause that doubles while the failures go on."""
        self.outages += 1
        delay = min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** (self.outages - 1))
        if isinstance(exc, redis.exceptions.ResponseError) and "NOGROUP" in str(exc):
            log.warning("%s: group %r is gone (Redis lost its data); recreating it", self.consumer, self.group)
        elif isinstance(exc, TRANSIENT):
            log.warning("%s: %s; retrying in %.1fs", self.consumer, exc, delay)
        else:
            log.exception("%s: consuming failed; retrying in %.1fs", self.consumer, delay)
        self.started = False
        await asyncio.sleep(delay)

    async def step(self) -> None:
        if not self.started:
            await self.events.ensure_group(self.group)
            if self.retired is not None:
                await adopt_retired(self.events, self.group, self.consumer, self.retired)
            self.backlog = await self.events.read_own_pending(self.group, self.consumer, PENDING_CHUNK)
            self.started = True
        if self.backlog:
            batch, self.backlog = self.backlog[: self.batch_size], self.backlog[self.batch_size :]
        else:
            self.one_by_one = False
            batch = await self.events.claim_stale(self.group, self.consumer, self.claim_idle_ms, self.batch_size)
            if not batch:
                batch = await self.events.read(self.group, self.consumer, count=self.batch_size, block_ms=1000)
        if batch:
            await self.process(batch)

    async def process(self, batch: list[Event]) -> None:
        """Handle a batch and ack it; raises ``HandlerFailed`` if some events stay pending."""
        others = [e.id for e in batch if e.group is not None and e.group != self.group]
        await self.events.ack(self.group, *others)  # replayed for another group: not ours to handle again
        mine = [e for e in batch if e.group is None or e.group == self.group]
        if not mine:
            return
        if not self.one_by_one:
            try:
                await self.handle_batch(mine)
            except TRANSIENT:
                raise
            except Exception:
                log.exception("%s: a batch of %d events failed; trying them one by one", self.consumer, len(mine))
                self.one_by_one = True
            else:
                await self.events.ack(self.group, *(e.id for e in mine))
                return
        await self.process_one_by_one(mine)

    async def process_one_by_one(self, batch: list[Event]) -> None:
        done: list[str] = []
        failed: list[tuple[Event, str]] = []
        held: dict[Hashable, str] = {}  # order key → the id of the failed event that holds it
        for event in batch:
            key = self.order_key(event) if self.order_key else None
            if key is not None and key in held:
                failed.append((event, f"held back behind the failed event {held[key]} of the same key"))
                continue
            try:
                await self.handle_batch([event])
            except TRANSIENT:
                await self.events.ack(self.group, *done)
                raise
            except Exception as exc:
                log.exception("%s: event %s (%s) failed", self.consumer, event.id, event.type)
                failed.append((event, f"{type(exc).__name__}: {exc}"[:500]))
                if key is not None:
                    held[key] = event.id
                continue
            done.append(event.id)
        await self.events.ack(self.group, *done)
        if failed and not await self.dead_letter_exhausted(failed):
            raise HandlerFailed

    async def dead_letter_exhausted(self, failed: list[tuple[Event, str]]) -> bool:
        """Move the failed events that had their last try to the dead-letter stream; True if that was all."""
        counts = await self.events.delivery_counts(self.group, self.consumer, [e.id for e, _ in failed])
        exhausted = [
            (event, counts[event.id], error) for event, error in failed if counts.get(event.id, 0) >= self.max_attempts
        ]
        if exhausted:
            await self.events.dead_letter(self.group, exhausted, self.dead_letter_cap)
        for event, attempts, error in exhausted:
            log.error(
                "%s: event %s (%s) failed %d times; moved to the dead-letter stream: %s",
                self.consumer,
                event.id,
                event.type,
                attempts,
                error,
            )
            metrics.inc(metrics.DEAD_LETTERED, group=self.group, type=event.type)
        return len(exhausted) == len(failed)


async def consume_forever(
    events: EventStream,
    group: str,
    consumer: str,
    handle_batch: BatchHandler,
    *,
    claim_idle_ms: int,
    batch_size: int = 20,
    order_key: OrderKey | None = None,
    retired: Retired | None = None,
) -> None:
    """Consume the group's events with ``handle_batch`` until cancelled; see the module docstring. ``retired``: this
    consumer adopts the pending entries of the group's consumers it says are retired, and removes them."""
    await _Consumer(events, group, consumer, handle_batch, claim_idle_ms, batch_size, order_key, retired).run()


async def adopt_retired(events: EventStream, group: str, adopter: str, retired: Retired) -> int:
    """Claim for ``adopter`` every entry pending with a retired consumer of ``group``, then delete that consumer;
    the number of entries claimed.

    Claimed with ``JUSTID``, which leaves their delivery counts as they were (dead-lettering counts on), and read
    back by the adopter with its own pending entries. A retired consumer that took more meanwhile (one still
    running on a Ray that was not restarted) is not deleted until those are claimed too.
    """
    try:
        consumers = await events.redis.xinfo_consumers(events.stream, group)
    except redis.exceptions.ResponseError as exc:
        if "NOGROUP" in str(exc) or "no such key" in str(exc).lower():
            return 0
        raise
    adopted = 0
    for name in (c["name"] for c in consumers if c["name"] != adopter and retired(c["name"])):
        claimed = 0
        while True:
            pending = await events.redis.xpending_range(events.stream, group, "-", "+", PENDING_CHUNK, name)
            if pending:
                ids = [row["message_id"] for row in pending]
                await events.redis.xclaim(events.stream, group, adopter, 0, ids, justid=True)
                claimed += len(ids)
            if await events.redis.eval(_DELETE_IF_IDLE, 1, events.stream, group, name):
                break
        log.warning("%s: retired the consumer %s, adopting its %d pending events", adopter, name, claimed)
        adopted += claimed
    return adopted

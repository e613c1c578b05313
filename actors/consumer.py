"""The consumer loop shared by the stream-driven actors (fan-out, like persister, notifier).

At-least-once: events are acked only after ``handle_batch`` returned. On
start, the consumer first finishes its own pending entries (what it had taken
before a restart); entries another consumer left pending for longer than
``claim_idle_ms`` are re-claimed. A failing batch stays pending and is
retried, so handlers must be idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis_store.events import Event, EventStream

log = logging.getLogger("raygram.consumer")
BatchHandler = Callable[[list[Event]], Awaitable[None]]


async def _own_pending_or_nothing(events: EventStream, group: str, consumer: str) -> list[Event]:
    try:
        return await events.read_own_pending(group, consumer, count=1000)
    except Exception:  # Redis itself is away; the loop will come back here
        return []


async def consume_forever(
    events: EventStream,
    group: str,
    consumer: str,
    handle_batch: BatchHandler,
    *,
    claim_idle_ms: int,
    batch_size: int = 20,
) -> None:
    await events.ensure_group(group)
    backlog = await events.read_own_pending(group, consumer, count=1000)
    while True:
        try:
            batch = backlog or await events.claim_stale(group, consumer, claim_idle_ms, batch_size)
            backlog = []
            if not batch:
                batch = await events.read(group, consumer, count=batch_size, block_ms=1000)
            if batch:
                await handle_batch(batch)
                await events.ack(group, *(event.id for event in batch))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: batch failed; its events stay pending and will be retried", consumer)
            await asyncio.sleep(1)
            # Retry our own pending events before anything newer, so that order holds (a like, then its unlike).
            backlog = await _own_pending_or_nothing(events, group, consumer)

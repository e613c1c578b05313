"""The event stream: a Redis Stream with consumer groups.

Delivery is at-least-once: a consumer acks an event only after its work is
done; events a dead consumer left pending are re-claimed by another after
``claim_idle_ms``. Consumers must therefore be idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

STREAM = "events"


@dataclass(frozen=True)
class Event:
    id: str  # the stream entry id
    type: str
    data: dict[str, Any]


class EventStream:
    def __init__(self, redis: aioredis.Redis, stream: str = STREAM, maxlen: int = 1_000_000) -> None:
        self.redis = redis
        self.stream = stream
        self.maxlen = maxlen

    async def publish(self, event_type: str, **data: Any) -> str:
        return await self.redis.xadd(
            self.stream, {"type": event_type, "data": orjson.dumps(data)}, maxlen=self.maxlen, approximate=True
        )

    async def ensure_group(self, group: str) -> None:
        try:
            await self.redis.xgroup_create(self.stream, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    @staticmethod
    def _decode(entries: list) -> list[Event]:
        return [
            Event(entry_id, fields["type"], orjson.loads(fields["data"]))
            for entry_id, fields in entries
            if fields  # a trimmed entry comes back empty
        ]

    async def read(self, group: str, consumer: str, count: int, block_ms: int) -> list[Event]:
        """New events for this consumer, waiting up to ``block_ms`` for some."""
        reply = await self.redis.xreadgroup(group, consumer, {self.stream: ">"}, count=count, block=block_ms)
        return self._decode(reply[0][1]) if reply else []

    async def read_own_pending(self, group: str, consumer: str, count: int) -> list[Event]:
        """What this consumer took earlier but never acked (it was restarted mid-batch)."""
        reply = await self.redis.xreadgroup(group, consumer, {self.stream: "0"}, count=count)
        return self._decode(reply[0][1]) if reply else []

    async def claim_stale(self, group: str, consumer: str, idle_ms: int, count: int) -> list[Event]:
        """Events other consumers took but did not ack for ``idle_ms``: theirs to finish is now ours."""
        _, entries, deleted = await self.redis.xautoclaim(self.stream, group, consumer, idle_ms, "0-0", count=count)
        if deleted:
            await self.redis.xack(self.stream, group, *deleted)
        return self._decode(entries)

    async def ack(self, group: str, *event_ids: str) -> None:
        if event_ids:
            await self.redis.xack(self.stream, group, *event_ids)

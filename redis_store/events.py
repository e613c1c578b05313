"""The event stream: a Redis Stream with consumer groups, and a dead-letter stream per group.

Delivery is at-least-once: a consumer acks an event only after its work is
done; events a dead consumer left pending are re-claimed by another after
``claim_idle_ms``. Consumers must therefore be idempotent.

Publishing waits for the append-only file (``redis_store.durability``): an
event is published right after the graph write it reports (a follow, a post)
and is the only trace of the notification it will make, so a Redis crash must
not take it back once the client has its answer.

The stream is ``{events}``; every key that a script touches with it carries
the same hash tag, so that on a Redis Cluster they share its slot: the
dead-letter streams and the likes' publication marks (``redis_store.likes``).

An event whose handler keeps failing is moved, with the last error, to
``{events}:dead:<group>`` (capped) and acked, so that it stops blocking its
group (``actors.consumer``). ``replay`` puts dead letters back on the main
stream marked with their group, so that only that group handles them again:
the other groups did their part the first time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from redis_store.durability import Durability

STREAM = "{events}"  # a key that is its own hash tag: the stream's slot, shared by its companions below


def dead_letter_key(group: str) -> str:
    return f"{STREAM}:dead:{group}"


@dataclass(frozen=True)
class Event:
    id: str  # the stream entry id
    type: str
    data: dict[str, Any]
    group: str | None = None  # a replayed dead letter: only this consumer group handles it
    undecodable: str | None = None  # the raw data of an entry whose data is not a JSON object


@dataclass(frozen=True)
class GroupBacklog:
    """What a consumer group has not done yet (``EventStream.backlog``), for the metrics."""

    pending: int  # delivered to a consumer, not acknowledged
    lag: int  # not yet delivered (-1 when Redis cannot tell, after entries were trimmed unread)
    dead: int  # in its dead-letter stream


@dataclass(frozen=True)
class DeadLetter:
    id: str  # the entry id in the dead-letter stream
    origin_id: str  # the id the event had on the main stream
    type: str
    data: str  # the event's data as it was published (JSON)
    attempts: int
    error: str


# KEYS: dead-letter stream, main stream (one slot: both under {events}); ARGV: group, cap, then five per event:
# id, type, data, attempts, error.
# Moving and acking in one step: a crash cannot leave an event both dead and pending, or neither.
_DEAD_LETTER = """
for i = 3, #ARGV, 5 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*',
    'origin', ARGV[i], 'type', ARGV[i + 1], 'data', ARGV[i + 2], 'attempts', ARGV[i + 3], 'error', ARGV[i + 4])
  redis.pcall('XACK', KEYS[2], ARGV[1], ARGV[i])
end
return 1
"""

# KEYS: main stream, dead-letter stream (one slot); ARGV: group, main stream cap, how many. Returns how many moved.
_REPLAY = """
local moved = 0
for _, entry in ipairs(redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', ARGV[3])) do
  local fields = {}
  for j = 1, #entry[2], 2 do fields[entry[2][j]] = entry[2][j + 1] end
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*',
    'type', fields['type'] or '', 'data', fields['data'] or '', 'group', ARGV[1])
  redis.call('XDEL', KEYS[2], entry[1])
  moved = moved + 1
end
return moved
"""


def _decode_entry(entry_id: str, fields: dict[str, str]) -> Event:
    """The entry as an event; one whose data is not a JSON object gets empty data, for its handler to refuse."""
    try:
        data = orjson.loads(fields["data"])
    except (KeyError, orjson.JSONDecodeError):
        data = None
    if not isinstance(data, dict):
        return Event(entry_id, fields.get("type", ""), {}, fields.get("group"), fields.get("data", ""))
    return Event(entry_id, fields.get("type", ""), data, fields.get("group"))


class EventStream:
    def __init__(
        self,
        redis: aioredis.Redis,
        stream: str = STREAM,
        maxlen: int = 1_000_000,
        durability: Durability | None = None,
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.maxlen = maxlen
        self.durability = durability or Durability.configured()
        self._dead_letter = redis.register_script(_DEAD_LETTER)
        self._replay = redis.register_script(_REPLAY)

    async def publish(self, event_type: str, **data: Any) -> str:
        pipe = self.durability.pipeline(self.redis)
        pipe.xadd(self.stream, {"type": event_type, "data": orjson.dumps(data)}, maxlen=self.maxlen, approximate=True)
        (entry_id,) = await self.durability.execute(pipe, [self.stream])
        return entry_id

    async def ensure_group(self, group: str) -> None:
        """Create the group (and the stream) if missing, reading from the stream's first entry.

        From "0", not "$": the group is missing on a first start, or because Redis lost its data (a
        flush, a restart without the AOF). Either way every entry in the stream was added after the
        loss and was never handled by this group; "$" would skip the events published between the
        loss and this call. (A group removed by hand from a stream that kept its entries re-reads the
        retained stream, in order: slow, but the handlers are idempotent.)
        """
        try:
            await self.redis.xgroup_create(self.stream, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def groups(self) -> list[str]:
        """The consumer groups reading the stream (none if the stream does not exist)."""
        try:
            return [g["name"] for g in await self.redis.xinfo_groups(self.stream)]
        except ResponseError as exc:
            if "no such key" in str(exc).lower():
                return []
            raise

    async def backlog(self) -> dict[str, GroupBacklog]:
        """Per consumer group: pending and unread events, and dead letters; two round trips, whatever the sizes."""
        try:
            groups = await self.redis.xinfo_groups(self.stream)
        except ResponseError as exc:
            if "no such key" in str(exc).lower():
                return {}
            raise
        async with self.redis.pipeline(transaction=False) as pipe:
            for group in groups:
                pipe.xlen(dead_letter_key(group["name"]))
            dead = await pipe.execute()
        return {
            g["name"]: GroupBacklog(int(g["pending"]), -1 if g.get("lag") is None else int(g["lag"]), int(d))
            for g, d in zip(groups, dead, strict=True)
        }

    async def _decode(self, group: str, entries: list) -> list[Event]:
        """Events of the entries; entries trimmed from the stream while pending are acked and dropped."""
        trimmed = [entry_id for entry_id, fields in entries if not fields]
        if trimmed:
            await self.ack(group, *trimmed)
        return [_decode_entry(entry_id, fields) for entry_id, fields in entries if fields]

    async def read(self, group: str, consumer: str, count: int, block_ms: int) -> list[Event]:
        """New events for this consumer, waiting up to ``block_ms`` for some."""
        reply = await self.redis.xreadgroup(group, consumer, {self.stream: ">"}, count=count, block=block_ms)
        return await self._decode(group, reply[0][1]) if reply else []

    async def read_own_pending(self, group: str, consumer: str, count: int) -> list[Event]:
        """What this consumer took earlier but never acked (it was restarted, or its handler failed)."""
        reply = await self.redis.xreadgroup(group, consumer, {self.stream: "0"}, count=count)
        return await self._decode(group, reply[0][1]) if reply else []

    async def claim_stale(self, group: str, consumer: str, idle_ms: int, count: int) -> list[Event]:
        """Events other consumers took but did not ack for ``idle_ms``: theirs to finish is now ours."""
        _, entries, deleted = await self.redis.xautoclaim(self.stream, group, consumer, idle_ms, "0-0", count=count)
        if deleted:
            await self.redis.xack(self.stream, group, *deleted)
        return await self._decode(group, entries)

    async def ack(self, group: str, *event_ids: str) -> None:
        if event_ids:
            await self.redis.xack(self.stream, group, *event_ids)

    async def delivery_counts(self, group: str, consumer: str, event_ids: list[str]) -> dict[str, int]:
        """How many times each of this consumer's pending events was delivered (the group's own count)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for event_id in event_ids:
                pipe.xpending_range(self.stream, group, event_id, event_id, 1, consumer)
            replies = await pipe.execute()
        return {row["message_id"]: int(row["times_delivered"]) for rows in replies for row in rows}

    async def dead_letter(self, group: str, failures: list[tuple[Event, int, str]], cap: int) -> None:
        """Move (event, attempts, last error) triples to the group's dead-letter stream and ack them."""
        args: list[Any] = [group, cap]
        for event, attempts, error in failures:
            data = event.undecodable if event.undecodable is not None else orjson.dumps(event.data)
            args += [event.id, event.type, data, attempts, error]
        await self._dead_letter(keys=[dead_letter_key(group), self.stream], args=args)

    async def dead_letters(self, group: str, limit: int) -> list[DeadLetter]:
        """The group's dead letters, oldest first."""
        entries = await self.redis.xrange(dead_letter_key(group), count=limit)
        return [
            DeadLetter(
                entry_id,
                f.get("origin", ""),
                f.get("type", ""),
                f.get("data", ""),
                int(f.get("attempts") or 0),
                f.get("error", ""),
            )
            for entry_id, f in entries
        ]

    async def replay(self, group: str, limit: int) -> int:
        """Put up to ``limit`` of the group's oldest dead letters back on the stream, for that group only."""
        moved = await self.durability.run_script(
            self.redis, self._replay, keys=[self.stream, dead_letter_key(group)], args=[group, self.maxlen, limit]
        )
        return int(moved)

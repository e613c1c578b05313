"""Direct-message conversations in Redis: one per participant set per user, newest activity first.

  ``convs:{user}``  sorted set, members ``{last status id, 19 digits}:{conversation id}`` at score 0, ranged
                    lexicographically (snowflakes exceed a double), so a page is a range by last status id;
                    at most ``CAP`` conversations (the least recently active are dropped, with their records)
  ``conv:{user}``   hash: ``k:{participant ids}`` -> conversation id, and ``c:{id}`` -> the record as JSON
                    (``id``, ``accounts``: the other participants, ``last``: the padded last status id,
                    ``unread``)

A conversation is added to or moved up by the ``Notifier`` from the durable
``status.created`` event (``add``), before the event is acked; a replayed event
(a status not newer than the conversation's last) changes nothing. The user's
own changes (read, delete) are answered once on disk (``WAITAOF``).

Both keys and the user's streaming channel carry the user's hash tag
(``redis_store.slots``): ``{user}`` above is the id inside braces, ``convs:{42}``.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

from redis_store.durability import Durability
from redis_store.notifications import channel
from redis_store.slots import tagged
from redis_store.timelines import member

CAP = 500  # conversations per user; the least recently active are dropped past it


def list_key(user_id: int) -> str:
    return tagged("convs", user_id)


def records_key(user_id: int) -> str:
    return tagged("conv", user_id)


def participants_field(participants: list[int]) -> str:
    return "k:" + ",".join(str(p) for p in sorted(participants))


# KEYS: convs:{u}, conv:{u}, the user's channel; ARGV: participants field, new conversation id, padded status id,
# '1' unread, others as JSON, cap. Returns the conversation id (as a string).
_ADD = """
local cid = redis.call('HGET', KEYS[2], ARGV[1])
local rec
if cid then
  rec = cjson.decode(redis.call('HGET', KEYS[2], 'c:' .. cid))
  if rec.last >= ARGV[3] then return cid end
  redis.call('ZREM', KEYS[1], rec.last .. ':' .. cid)
else
  cid = ARGV[2]
  rec = {id = cid, accounts = cjson.decode(ARGV[5]), key = ARGV[1]}
  redis.call('HSET', KEYS[2], ARGV[1], cid)
end
rec.last = ARGV[3]
rec.unread = ARGV[4] == '1'
redis.call('HSET', KEYS[2], 'c:' .. cid, cjson.encode(rec))
redis.call('ZADD', KEYS[1], 0, ARGV[3] .. ':' .. cid)
local size = redis.call('ZCARD', KEYS[1])
local cap = tonumber(ARGV[6])
if size > cap then
  for _, old in ipairs(redis.call('ZRANGE', KEYS[1], 0, size - cap - 1)) do
    local old_id = string.sub(old, 21)
    local old_rec = redis.call('HGET', KEYS[2], 'c:' .. old_id)
    if old_rec then redis.call('HDEL', KEYS[2], cjson.decode(old_rec).key) end
    redis.call('HDEL', KEYS[2], 'c:' .. old_id)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, size - cap - 1)
end
redis.call('PUBLISH', KEYS[3], cjson.encode({event = 'conversation', id = cid}))
return cid
"""

# KEYS: convs:{u}, conv:{u}; ARGV: conversation id, 'read' or 'delete'. Returns 1 if the conversation exists.
_CHANGE = """
local raw = redis.call('HGET', KEYS[2], 'c:' .. ARGV[1])
if not raw then return 0 end
local rec = cjson.decode(raw)
if ARGV[2] == 'read' then
  rec.unread = false
  redis.call('HSET', KEYS[2], 'c:' .. ARGV[1], cjson.encode(rec))
else
  redis.call('ZREM', KEYS[1], rec.last .. ':' .. ARGV[1])
  redis.call('HDEL', KEYS[2], 'c:' .. ARGV[1], rec.key)
end
return 1
"""


def _decode(raw: bytes | str) -> dict[str, Any]:
    rec = orjson.loads(raw)
    accounts = rec.get("accounts") or []  # Lua's cjson writes an empty list as {}
    return {
        "id": int(rec["id"]),
        "accounts": [int(a) for a in accounts],
        "last_status_id": int(rec["last"]),
        "unread": bool(rec.get("unread")),
    }


class ConversationStore:
    def __init__(self, redis: aioredis.Redis, cap: int = CAP, durability: Durability | None = None) -> None:
        self.redis = redis
        self.cap = cap
        self.durability = durability or Durability.configured()
        self._add = redis.register_script(_ADD)
        self._change = redis.register_script(_CHANGE)

    async def add(self, user_id: int, participants: list[int], new_id: int, status_id: int, unread: bool) -> int:
        """Put ``status_id`` at the head of the user's conversation with ``participants`` (all of them, the user
        included), creating it with ``new_id`` if there is none; pushes a ``conversation`` event to the user."""
        others = sorted({p for p in participants if p != user_id})
        cid = await self._add(
            keys=[list_key(user_id), records_key(user_id), channel(user_id)],
            args=[
                participants_field([user_id, *others]),
                str(new_id),
                member(status_id),
                "1" if unread else "0",
                orjson.dumps([str(a) for a in others]),
                self.cap,
            ],
        )
        return int(cid)

    async def page(self, user_id: int, max_id: int | None, since_id: int | None, min_id: int | None, limit: int):
        """Conversations by last status, newest first (``min_id``: the ones just newer than it)."""
        key = list_key(user_id)
        hi = f"({member(max_id)}" if max_id is not None else "+"
        after = min_id if min_id is not None else since_id
        lo = f"({member(after)};" if after is not None else "-"
        if min_id is not None:
            raw = await self.redis.zrangebylex(key, lo, hi, start=0, num=limit)
            raw = raw[::-1]
        else:
            raw = await self.redis.zrevrangebylex(key, hi, lo, start=0, num=limit)
        ids = [m.decode().split(":")[1] if isinstance(m, bytes) else m.split(":")[1] for m in raw]
        return await self.records(user_id, [int(i) for i in ids])

    async def records(self, user_id: int, ids: list[int]) -> list[dict[str, Any]]:
        if not ids:
            return []
        values = await self.redis.hmget(records_key(user_id), [f"c:{i}" for i in ids])
        return [_decode(v) for v in values if v is not None]

    async def mark_read(self, user_id: int, conversation_id: int) -> bool:
        return await self._run(user_id, conversation_id, "read")

    async def remove(self, user_id: int, conversation_id: int) -> bool:
        return await self._run(user_id, conversation_id, "delete")

    async def _run(self, user_id: int, conversation_id: int, change: str) -> bool:
        found = await self.durability.run_script(
            self.redis, self._change, [list_key(user_id), records_key(user_id)], [str(conversation_id), change]
        )
        return bool(found)

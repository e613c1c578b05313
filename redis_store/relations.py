"""Each viewer's blocks and mutes, cached in Redis so that a read page filters with one call.

  ``rel:{viewer}``   hash, account id -> flags, for every account the viewer blocks, is blocked by, or mutes:
                     ``b`` the viewer blocks it, ``B`` it blocks the viewer, ``m`` the viewer mutes it, ``n`` the
                     mute covers notifications, then ``:`` and the mute's expiry (unix ms, 0 for none). The field
                     ``loaded`` says the hash is there (``1``) or holds only part of a viewer's relations
                     (``partial``: that viewer's pages ask the graph instead). Expires ``TTL_SECONDS`` after loading;
                     at most ``MAX_ENTRIES`` accounts per kind (``graph.relations``).
  ``relv:{viewer}``  counter, bumped by every change of the viewer's relations. A load writes the hash only if the
                     counter did not move while it read the graph, so a load racing a change cannot cache the
                     state from before the change.

The graph is the system of record; the hash is dropped on every change of either side of a pair (a block is
both one account's ``b`` and the other's ``B``) and loaded again on the next read.

Both keys carry the viewer's hash tag (``redis_store.slots``: ``rel:{42}``), so ``_STORE`` runs in one slot of a
Redis Cluster; ``invalidate`` of both sides of a pair sends single-key commands only, which a cluster pipeline
routes to each key's node.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from graph.relations import Relations
from redis_store.slots import tagged

TTL_SECONDS = 86_400
MAX_ENTRIES = 10_000
LOADED = "loaded"


def relations_key(viewer: int) -> str:
    return tagged("rel", viewer)


def version_key(viewer: int) -> str:
    return tagged("relv", viewer)


# KEYS: rel:{viewer}, relv:{viewer}; ARGV: the version read before loading, ttl, loaded marker, then field/value pairs.
_STORE = """
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'loaded', ARGV[3])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


@dataclass(frozen=True)
class Flags:
    """What one account is to the viewer."""

    blocking: bool = False
    blocked_by: bool = False
    muting: bool = False
    muting_notifications: bool = False
    mute_expires_at: int = 0  # unix ms; 0: no end

    def muted_at(self, now_ms: int) -> bool:
        return self.muting and (self.mute_expires_at == 0 or self.mute_expires_at > now_ms)

    @property
    def hidden(self) -> bool:
        """Blocked either way: each is hidden from the other everywhere."""
        return self.blocking or self.blocked_by


NO_FLAGS = Flags()


def encode(flags: Flags) -> str:
    letters = ("b" if flags.blocking else "") + ("B" if flags.blocked_by else "")
    letters += ("m" if flags.muting else "") + ("n" if flags.muting_notifications else "")
    return f"{letters}:{flags.mute_expires_at}"


def decode(raw: bytes | str) -> Flags:
    text = raw.decode() if isinstance(raw, bytes) else raw
    letters, _, expiry = text.partition(":")
    return Flags("b" in letters, "B" in letters, "m" in letters, "n" in letters, int(expiry or 0))


def flags_of(relations: Relations) -> dict[int, Flags]:
    ids = relations.blocking | relations.blocked_by | set(relations.muting)
    result = {}
    for account in ids:
        notifications, expires_at = relations.muting.get(account, (False, 0))
        result[account] = Flags(
            account in relations.blocking,
            account in relations.blocked_by,
            account in relations.muting,
            notifications,
            expires_at,
        )
    return result


class RelationCache:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._store = redis.register_script(_STORE)

    async def lookup(self, viewer: int, ids: list[int]) -> tuple[str | None, dict[int, Flags]]:
        """(the ``loaded`` marker, or None when the hash must be loaded; the flags of those of ``ids`` that have
        any), in one call."""
        values = await self.redis.hmget(relations_key(viewer), [LOADED, *ids])
        marker = values[0].decode() if isinstance(values[0], bytes) else values[0]
        found = {account: decode(raw) for account, raw in zip(ids, values[1:], strict=True) if raw is not None}
        return marker, found

    async def version(self, viewer: int) -> str:
        raw = await self.redis.get(version_key(viewer))
        return raw.decode() if isinstance(raw, bytes) else (raw or "0")

    async def store(self, viewer: int, version: str, relations: Relations) -> bool:
        """Cache what was loaded at ``version``; False (nothing written) if a change came in meanwhile."""
        args: list[str | int] = [version, TTL_SECONDS, "1" if relations.complete else "partial"]
        for account, flags in flags_of(relations).items():
            args += [account, encode(flags)]
        return bool(await self._store(keys=[relations_key(viewer), version_key(viewer)], args=args))

    async def invalidate(self, *viewers: int) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for viewer in viewers:
                pipe.incr(version_key(viewer))
                pipe.expire(version_key(viewer), 2 * TTL_SECONDS)
                pipe.delete(relations_key(viewer))
            await pipe.execute()

"""Hash tags and slots: what lets the same code run on one Redis and on a Redis Cluster.

A cluster stores each key in one of 16,384 slots, chosen by the key's hash
tag (the part between the first ``{`` and ``}``) when it has one. A Lua
script or a transaction may only touch keys of one slot. So:

- every key that belongs to one user or one post carries that owner's tag,
  ``tagged("tl", user_id)`` → ``tl:{42}``, and all keys a script touches
  belong to one owner (or are one global key of their own);
- work that spans owners (a fan-out batch, a page's counters) is split with
  ``by_slot``: one group on a single server, one group per slot on a cluster.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

T = TypeVar("T")


def tag(owner: int | str) -> str:
    """The hash tag of an owner's keys: ``{42}``."""
    return "{" + str(owner) + "}"


def tagged(prefix: str, owner: int | str, *rest: int | str) -> str:
    """``prefix:{owner}`` and then ``:rest`` for each of the rest: a key in the owner's slot."""
    key = f"{prefix}:{{{owner}}}"
    return key + "".join(f":{part}" for part in rest) if rest else key


def is_cluster(redis: aioredis.Redis) -> bool:
    return isinstance(redis, RedisCluster)


def slot_of(key: str) -> int:
    return key_slot(key.encode())


def by_slot(redis: aioredis.Redis, items: Iterable[T], key_of: Callable[[T], str]) -> list[list[T]]:
    """The items in groups whose keys share a slot: all of them in one group on a single server (a script may
    touch any keys there), one group per slot on a cluster; each group keeps the items' order."""
    items = list(items)
    if not items:
        return []
    if not is_cluster(redis):
        return [items]
    groups: dict[int, list[T]] = defaultdict(list)
    for item in items:
        groups[slot_of(key_of(item))].append(item)
    return list(groups.values())


async def mget(redis: aioredis.Redis, keys: Sequence[str]) -> list[str | None]:
    """``MGET`` of keys of any slots, in the keys' order: one command on a single server, one per slot on a
    cluster (redis-py's ``mget_nonatomic``, sent in one pipeline)."""
    if not keys:
        return []
    if is_cluster(redis):
        return await redis.mget_nonatomic(list(keys))  # type: ignore[attr-defined]
    return await redis.mget(list(keys))

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
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.commands.core import AsyncScript
from redis.crc import key_slot

T = TypeVar("T")


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


def queue_script(pipe: Pipeline, script: AsyncScript, keys: Sequence[str], args: Sequence[object]) -> None:
    """Queue the script's ``EVALSHA`` on a pipeline; a cluster pipeline sends it to the node of its keys.

    ``EVALSHA`` itself: a ``Script`` called on a pipeline costs a ``SCRIPT EXISTS`` round trip each time, and
    redis-py's cluster pipeline refuses ``pipe.evalsha`` (the raw command it routes by its keys). A server that
    lost its scripts answers ``NoScriptError``: load the script (``redis.script_load``) and run the pipeline again.
    """
    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)


@dataclass(frozen=True)
class QueuedMget:
    """Where the replies of a ``queue_mget`` are among its pipeline's replies."""

    first: int  # the index of its first reply
    count: int  # how many replies it queued
    per_key: bool  # one reply per key (a cluster), else one MGET reply

    def values(self, replies: Sequence[Any]) -> list[str | None]:
        """The keys' values, in the keys' order, from the pipeline's replies."""
        if self.per_key:
            return list(replies[self.first : self.first + self.count])
        return list(replies[self.first]) if self.count else []


def queue_mget(pipe: Pipeline, keys: Sequence[str]) -> QueuedMget:
    """Queue a read of the keys' values on a pipeline: one ``MGET`` on a single server, one ``GET`` per key on a
    cluster (its pipeline sends them in one batch per node; a cluster pipeline refuses a cross-slot ``MGET``)."""
    first = len(pipe)
    if not keys:
        return QueuedMget(first, 0, False)
    if isinstance(pipe, ClusterPipeline):
        for key in keys:
            pipe.get(key)
        return QueuedMget(first, len(keys), True)
    pipe.mget(list(keys))
    return QueuedMget(first, 1, False)

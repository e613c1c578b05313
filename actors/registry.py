"""Naming, sharding and creation of the actors (named, detached, in the raygram namespace)."""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable

import ray
from ray.actor import ActorHandle

from config import Settings


def shard_of(key: int, shards: int) -> int:
    """A stable shard for an id: the same in every process and across restarts (unlike ``hash``)."""
    return zlib.crc32(key.to_bytes(8, "little", signed=False)) % shards


def group_by_shard(ids: Iterable[int], shards: int) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = defaultdict(list)
    for i in ids:
        groups[shard_of(i, shards)].append(i)
    return groups


def inbox_name(shard: int) -> str:
    return f"inbox-{shard}"


def outbox_name(shard: int) -> str:
    return f"outbox-{shard}"


def fanout_name(index: int) -> str:
    return f"fanout-{index}"


class ActorDirectory:
    """Handles to the named actors, looked up once per process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._inboxes: list[ActorHandle] | None = None
        self._outboxes: list[ActorHandle] | None = None

    def _lookup(self, name: str) -> ActorHandle:
        return ray.get_actor(name, namespace=self.settings.ray_namespace)

    @property
    def inboxes(self) -> list[ActorHandle]:
        if self._inboxes is None:
            self._inboxes = [self._lookup(inbox_name(k)) for k in range(self.settings.inbox_shards)]
        return self._inboxes

    @property
    def outboxes(self) -> list[ActorHandle]:
        if self._outboxes is None:
            self._outboxes = [self._lookup(outbox_name(k)) for k in range(self.settings.outbox_shards)]
        return self._outboxes

    def inbox_for(self, user_id: int) -> ActorHandle:
        return self.inboxes[shard_of(user_id, self.settings.inbox_shards)]

    def outbox_for(self, author_id: int) -> ActorHandle:
        return self.outboxes[shard_of(author_id, self.settings.outbox_shards)]


def ensure_actors(settings: Settings) -> None:
    """Create every named actor that does not exist yet and wait until each answers."""
    from actors.fanout import FanoutWorker
    from actors.inbox import InboxShard
    from actors.notifier import Notifier
    from actors.outbox import CelebrityOutbox
    from actors.persister import LikePersister

    common = {"namespace": settings.ray_namespace, "lifetime": "detached", "get_if_exists": True}
    handles = [InboxShard.options(name=inbox_name(k), **common).remote(k) for k in range(settings.inbox_shards)]
    handles += [CelebrityOutbox.options(name=outbox_name(k), **common).remote(k) for k in range(settings.outbox_shards)]
    handles += [FanoutWorker.options(name=fanout_name(k), **common).remote(k) for k in range(settings.fanout_workers)]
    # One persister and one notifier: each consumes the stream in order (a like, then its unlike).
    handles += [LikePersister.options(name="likes-0", **common).remote(0)]
    handles += [Notifier.options(name="notify-0", **common).remote(0)]
    ray.get([h.ping.remote() for h in handles], timeout=120)

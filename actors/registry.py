"""Naming, sharding, hosting and creation of the actors (named, detached, in the raygram namespace).

Shards and consumers are logical: ``INBOX_SHARDS`` inbox shards and
``OUTBOX_SHARDS`` outbox shards are what callers route to (user → shard by a
stable hash, one call per shard per page of followers), and ``FANOUT_WORKERS``
fan-out consumers, the notifier and the like persister are what the event
stream's groups know (their consumer names, ``fanout-0``, ``notify-0``…).
Fewer processes host them, because every Ray worker process costs its own
Python, Ray core worker and imports (about 60-100 MB each, measured by
``bench/footprint.py``):

  * ``InboxShards`` actors (``INBOX_HOSTS`` of them, 1 by default) hold the
    inbox shards, shard ``k`` on host ``k % INBOX_HOSTS``;
  * ``CelebrityOutboxes`` actors (``OUTBOX_HOSTS``) hold the outbox shards;
  * ``StreamConsumers`` actors (``CONSUMER_HOSTS``, 1 by default) run the
    stream's consumers, each loop a task of its own: fan-out consumer ``i``
    on host ``i % CONSUMER_HOSTS``; on host 0 the notifier, the like persister,
    the discovery indexer and the search indexer (which owns the status search
    index, ``actors.search``), one of each since each consumes in order, and the
    trends refresh timer.

A host is the unit of failure: killing its process kills every shard or
consumer it holds, and Ray restarts the actor (``max_restarts=-1``), which
brings them all back (timelines are in Redis; a consumer first finishes
its own pending events). On a Ray cluster, ``RAY_SCHEDULING=SPREAD`` places
the hosts over the nodes, and a host whose node is lost restarts on a
surviving one (with ``INBOX_HOSTS`` etc. at least the node count, every node
holds some). ``host_name`` says which actor hosts a given shard
or consumer: that is the process to kill to crash it.

The counts may change from one start to the next (docs/operations.md,
"Changing shard counts"): shards hold nothing of their own, fan-out consumer
0 adopts what retired consumers left pending, and on a Ray that outlived the
previous start the hosts it left with other counts are replaced
(``replace_stale_hosts``).
"""

from __future__ import annotations

import logging
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable

import ray
from ray.actor import ActorHandle

from config import Settings

log = logging.getLogger("raygram.registry")
NOTIFIER = "notify-0"  # the notifier's consumer name in the ``notify`` group
LIKE_PERSISTER = "likes-0"  # the like persister's consumer name in the ``likes`` group
SEARCH_INDEXER = "search-0"  # the search indexer's consumer name in the ``search`` group
DISCOVERY = "discovery-0"  # the discovery indexer's consumer name in the ``discovery`` group (and the trends timer)


ASK_SECONDS = 15.0  # how long a host actor found at start has to say which counts it was started with
HOST_PREFIXES = ("inbox-shards-", "celebrity-outboxes-", "stream-consumers-")  # the host actors' names, up to the index


def layout_of(settings: Settings) -> dict[str, int]:
    """The counts that decide which hosts exist and what each holds (``hosting``): a host actor started with other
    counts is stale (``create_actors`` replaces it)."""
    return {
        "inbox_shards": settings.inbox_shards,
        "outbox_shards": settings.outbox_shards,
        "fanout_workers": settings.fanout_workers,
        "inbox_hosts": settings.inbox_hosts,
        "outbox_hosts": settings.outbox_hosts,
        "consumer_hosts": settings.consumer_hosts,
    }


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
    """A fan-out consumer: its name in the ``fanout`` group."""
    return f"fanout-{index}"


def retired_fanout(settings: Settings) -> Callable[[str], bool]:
    """Whether a consumer name of the ``fanout`` group is none of the ``FANOUT_WORKERS`` now configured: one left by
    a start with more (``actors.consumer.adopt_retired`` hands its pending events on)."""
    current = {fanout_name(i) for i in range(settings.fanout_workers)}
    return lambda name: name not in current


def inbox_host_name(host: int) -> str:
    return f"inbox-shards-{host}"


def outbox_host_name(host: int) -> str:
    return f"celebrity-outboxes-{host}"


def consumer_host_name(host: int) -> str:
    return f"stream-consumers-{host}"


def _spread(count: int, hosts: int) -> list[list[int]]:
    """Which of ``count`` shards or consumers each of ``hosts`` holds (``k`` on host ``k % hosts``)."""
    hosts = max(1, min(hosts, count))
    return [list(range(host, count, hosts)) for host in range(hosts)]


def hosting(settings: Settings) -> dict[str, str]:
    """Every shard and consumer, by name (``inbox_name(3)``, ``fanout_name(1)``, ``NOTIFIER``…) → its host actor."""
    hosts: dict[str, str] = {}
    for host, shards in enumerate(_spread(settings.inbox_shards, settings.inbox_hosts)):
        hosts |= {inbox_name(k): inbox_host_name(host) for k in shards}
    for host, shards in enumerate(_spread(settings.outbox_shards, settings.outbox_hosts)):
        hosts |= {outbox_name(k): outbox_host_name(host) for k in shards}
    for host, consumers in enumerate(_spread(settings.fanout_workers, settings.consumer_hosts)):
        hosts |= {fanout_name(i): consumer_host_name(host) for i in consumers}
    return hosts | {name: consumer_host_name(0) for name in (NOTIFIER, LIKE_PERSISTER, SEARCH_INDEXER, DISCOVERY)}


def host_name(name: str, settings: Settings) -> str:
    """The name of the actor whose process hosts the shard or consumer ``name``: kill it to crash that one."""
    return hosting(settings)[name]


class ActorDirectory:
    """Handles to the named actors, looked up once per process; ``inboxes[k]`` is the host of inbox shard ``k``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._inboxes: list[ActorHandle] | None = None
        self._outboxes: list[ActorHandle] | None = None

    def _lookup(self, name: str) -> ActorHandle:
        return ray.get_actor(name, namespace=self.settings.ray_namespace)

    def _hosts(self, names: list[str]) -> list[ActorHandle]:
        """The host of each of ``names``, each host looked up once."""
        host_of = hosting(self.settings)
        handles = {host: self._lookup(host) for host in {host_of[name] for name in names}}
        return [handles[host_of[name]] for name in names]

    @property
    def inboxes(self) -> list[ActorHandle]:
        if self._inboxes is None:
            self._inboxes = self._hosts([inbox_name(k) for k in range(self.settings.inbox_shards)])
        return self._inboxes

    @property
    def outboxes(self) -> list[ActorHandle]:
        if self._outboxes is None:
            self._outboxes = self._hosts([outbox_name(k) for k in range(self.settings.outbox_shards)])
        return self._outboxes

    def inbox_for(self, user_id: int) -> ActorHandle:
        return self.inboxes[shard_of(user_id, self.settings.inbox_shards)]

    def outbox_for(self, author_id: int) -> ActorHandle:
        return self.outboxes[shard_of(author_id, self.settings.outbox_shards)]


def create_actors(settings: Settings) -> list[ActorHandle]:
    """Create every host actor that does not exist yet; their handles (ping them to wait until they are up).

    Host actors are detached: on a Ray that outlives a stack's start (``RAY_ADDRESS``), the next start finds
    those of the previous one. The ones started with the counts of this start are kept; the others (other shard,
    consumer or host counts, or a host index this start does not have) are killed first (``replace_stale_hosts``).
    """
    from actors.inbox import InboxShards
    from actors.outbox import CelebrityOutboxes
    from actors.stream import StreamConsumers

    common = {
        "namespace": settings.ray_namespace,
        "lifetime": "detached",
        "get_if_exists": True,
        "scheduling_strategy": settings.ray_scheduling,  # also where Ray restarts one whose node died
    }
    inboxes = _spread(settings.inbox_shards, settings.inbox_hosts)
    outboxes = _spread(settings.outbox_shards, settings.outbox_hosts)
    consumers = _spread(settings.fanout_workers, settings.consumer_hosts)
    replace_stale_hosts(
        settings,
        {inbox_host_name(h) for h in range(len(inboxes))}
        | {outbox_host_name(h) for h in range(len(outboxes))}
        | {consumer_host_name(h) for h in range(len(consumers))},
    )
    handles = [
        InboxShards.options(name=inbox_host_name(host), **common).remote(shards) for host, shards in enumerate(inboxes)
    ]
    handles += [
        CelebrityOutboxes.options(name=outbox_host_name(host), **common).remote(shards)
        for host, shards in enumerate(outboxes)
    ]
    handles += [
        StreamConsumers.options(name=consumer_host_name(host), **common).remote(fanout, host == 0)
        for host, fanout in enumerate(consumers)
    ]
    return handles


def replace_stale_hosts(settings: Settings, wanted: set[str], timeout: float = 60.0) -> list[str]:
    """Kill the host actors in the namespace that are not ``wanted`` or were started with other counts
    (``layout_of``), and wait until their names are free; the names killed.

    Nothing is lost with them: timelines, outboxes and trays are in Redis by user, and what a killed fan-out
    consumer took stays pending for its successor, or is adopted by consumer 0 if its name is retired
    (``actors.consumer.adopt_retired``).
    """
    namespace, layout = settings.ray_namespace, layout_of(settings)
    stale = []
    for entry in ray.util.list_named_actors(all_namespaces=True):
        name = entry["name"]
        if entry["namespace"] != namespace or not name.startswith(HOST_PREFIXES):
            continue
        handle = ray.get_actor(name, namespace=namespace)
        if name in wanted:
            try:
                if ray.get(handle.layout.remote(), timeout=ASK_SECONDS) == layout:
                    continue
            except Exception:  # not answering (hung, or restarting), or a version without layout(): replaced
                log.warning("the host actor %s did not say its counts; replacing it", name)
        ray.kill(handle, no_restart=True)
        stale.append(name)
    deadline = time.monotonic() + timeout
    for name in stale:
        while True:
            try:
                ray.get_actor(name, namespace=namespace)
            except ValueError:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the stale host actor {name} was still registered {timeout:.0f}s after its kill")
            time.sleep(0.1)
    return stale

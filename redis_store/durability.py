"""Answer a Redis write only once it is on disk: ``WAITAOF`` right behind the write, on the same connection.

Redis keeps likes (until the persister has written them to the graph), the
events that notifications are made from, notifications themselves and
timeline markers. The write paths whose answer promises something to a
client (a like, an unlike, a marker, a dismissed notification, an event
published after a graph write) send ``WAITAOF 1 0 timeout`` behind the write
and fail (``NotDurable``) if the local append-only file holding it was not
fsynced in time.

The embedded server fsyncs before every reply (``appendfsync always``, see
``redis_store.server``), so there ``WAITAOF`` answers at once: it costs about
0.1 ms a call (``bench/likes_bench.py``, section 4b) and states the guarantee
where the code relies on it, so that it also holds on a Redis run differently.
Not under ``appendfsync everysec``, though: there a fixed Redis makes
``WAITAOF`` wait for the next once-a-second fsync, and the pinned Valkey
(9.1.2) answers it at its next 100 ms tick without any fsync (strace shows
none), reporting the write as on disk once it is in the kernel's page cache
(the bug fixed in Redis by redis/redis#13793). Run raygram's Redis with
``appendfsync always``.

``WAITAOF`` waits for the *calling connection's* writes, so it must travel on
the same connection as the write: a non-transactional pipeline (inside
``MULTI`` it would not wait). A Redis without an append-only file cannot
honour it: set ``REDIS_WAIT_FSYNC=false`` there, and accept that a Redis crash
can lose acknowledged likes.

On a Redis Cluster each write lands on the primary that owns its key's slot,
so the callers name the keys they wrote and a ``WAITAOF`` goes to each of
those primaries, in the pipeline's batch for that node (one connection per
node), right behind the writes it covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config import Settings, get_settings
from redis_store.slots import queue_script


class NotDurable(RedisTimeoutError):
    """The write was applied but its append-only file was not on disk in time: Redis' disk is failing."""


@dataclass(frozen=True)
class Durability:
    wait: bool = True
    timeout_ms: int = 2000

    @classmethod
    def configured(cls, settings: Settings | None = None) -> Durability:
        """As the settings say (``REDIS_WAIT_FSYNC``, ``REDIS_FSYNC_TIMEOUT_MS``); the process's own by default."""
        settings = settings or get_settings()
        return cls(settings.redis_wait_fsync, settings.redis_fsync_timeout_ms)

    @staticmethod
    def pipeline(redis: aioredis.Redis) -> Pipeline:
        """A pipeline whose writes ``execute`` makes durable (non-transactional: see the module docstring)."""
        return redis.pipeline(transaction=False)

    async def execute(self, pipe: Pipeline, written: Sequence[str]) -> list[Any]:
        """Run the queued writes, then wait for their fsync; returns the writes' replies.

        ``written`` names the keys the writes touch (one per slot is enough): on a cluster, their primaries
        are the ones that must fsync."""
        waits = await self._queue_waits(pipe, written) if self.wait else 0
        replies = await pipe.execute()
        for _ in range(waits):
            fsynced_locally, _replicas = replies.pop()
            if int(fsynced_locally) < 1:
                raise NotDurable(f"Redis did not fsync its append-only file within {self.timeout_ms} ms")
        return replies

    async def _queue_waits(self, pipe: Pipeline, written: Sequence[str]) -> int:
        """Queue one ``WAITAOF`` per server the written keys live on; returns how many."""
        if not isinstance(pipe, ClusterPipeline):  # one server: the pipeline's own connection
            pipe.execute_command("WAITAOF", 1, 0, self.timeout_ms)
            return 1
        redis = pipe.cluster_client
        await redis.initialize()  # the slot map, if no command has fetched it yet
        nodes = {node.name: node for node in (redis.get_node_from_key(key) for key in written)}
        for node in nodes.values():
            pipe.execute_command("WAITAOF", 1, 0, self.timeout_ms, target_nodes=node)
        return len(nodes)

    async def run_script(self, redis: aioredis.Redis, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]):
        """Run a Lua script and wait for its fsync in one round trip; returns the script's reply.

        A server that lost the script (restarted) gets it loaded, then a retry.
        """
        try:
            return await self._evalsha(redis, script, keys, args)
        except NoScriptError:
            script.sha = await redis.script_load(script.script)
            return await self._evalsha(redis, script, keys, args)

    async def _evalsha(self, redis: aioredis.Redis, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]):
        pipe = self.pipeline(redis)
        queue_script(pipe, script, keys, args)
        (reply,) = await self.execute(pipe, keys[:1])  # a script's keys share one slot
        return reply

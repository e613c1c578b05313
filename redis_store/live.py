"""Live push over Redis pub/sub: one shared subscription per process, presence, and stream caps.

A replica may hold thousands of streaming connections; giving each its own
pub/sub connection exhausts the Redis pool (and Redis' client table) as soon
as clients drop streams faster than they are cleaned up. So, as Mastodon's
streaming server does, a process holds **one** pub/sub connection
(``LiveHub``), subscribes each channel once however many local streams want
it, and hands messages to the streams' bounded queues.

Clean-up never waits on the network. ``LiveHub.release`` is synchronous: it
drops the stream's local registrations at once, so a stream cancelled by a
disconnect (where every further ``await`` may be cancelled too) frees its
state; the Redis side (unsubscribing channels nobody wants any more, giving
the stream's lease back) is queued to the hub's own task.

Keys (all bounded: entries carry an expiry and are refreshed every heartbeat
by the process that holds the stream, so a dead replica's entries lapse), each
in its owner's Redis Cluster slot (``redis_store.slots``):
  ``streaming:online:{user}``   present while the user has an open stream (a lease,
                                renewed every heartbeat); fan-out publishes
                                ``update``/``delete`` only to users who have it. A key
                                per user rather than one set of everyone online: the
                                delivery script checks it in the user's slot, atomically
                                with the inbox write (``redis_store.timelines``)
  ``streams:account:{id}``      sorted set, stream id -> lease expiry (ms): the
  ``streams:address:{addr}``    open streams of an account / a client address,
                                counted against the caps
Channels: ``stream:{user}`` (the user's events), ``stream:celebrity:{author}``
(a celebrity's posts, announced once for all followers). The scripts that
publish to them pass them in ``KEYS``, so they carry their owner's hash tag.
On a Redis Cluster a ``PUBLISH`` reaches subscribers on every node, so the
hub's one pub/sub connection, to whichever node, hears every channel.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson
import redis.asyncio as aioredis

from redis_store.slots import is_cluster, tagged
from redis_store.timelines import celebrity_channel, celebs_key, online_key, stream_channel

log = logging.getLogger("raygram.live")

# KEYS[1] = the lease set; ARGV = now ms, expiry ms, cap, stream id.
# Drops lapsed leases, then takes one if fewer than ``cap`` are held. Returns 1 if taken.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
"""


def account_streams_key(account_id: int) -> str:
    return tagged("streams:account", account_id)


def address_streams_key(address: str) -> str:
    return tagged("streams:address", address)


class StreamLimitReached(Exception):
    """The account or the client address already has as many open streams as allowed."""

    def __init__(self, scope: str, cap: int) -> None:
        super().__init__(f"Too many open streams for this {scope} (at most {cap})")
        self.scope = scope


@dataclass(eq=False)
class Listener:
    """One open stream: its channels, its leases and a bounded queue of messages."""

    user_id: int
    channels: tuple[str, ...]
    lease_keys: tuple[str, ...]
    queue: asyncio.Queue[dict] = field(default_factory=lambda: asyncio.Queue(maxsize=256))
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    overflowed: bool = False

    async def next(self, idle_seconds: float) -> dict | None:
        """The next message, or None after ``idle_seconds`` of silence (time for a heartbeat)."""
        try:
            return await asyncio.wait_for(self.queue.get(), idle_seconds)
        except TimeoutError:
            return None


class LiveHub:
    """The process's one pub/sub connection, fanned out to its local streams."""

    def __init__(
        self, redis: aioredis.Redis, heartbeat_seconds: float, max_per_account: int, max_per_address: int
    ) -> None:
        self.redis = redis
        self.heartbeat_seconds = heartbeat_seconds
        self.max_per_account = max_per_account
        self.max_per_address = max_per_address
        self.lease_ms = int(max(3 * heartbeat_seconds, 5) * 1000)
        self._acquire = redis.register_script(_ACQUIRE)
        self._pubsub = redis.pubsub(ignore_subscribe_messages=True)
        self._listeners: dict[str, set[Listener]] = defaultdict(set)  # channel -> local streams
        self._subscribed: set[str] = set()
        self._subscribing = asyncio.Lock()  # (un)subscribe commands go out in the order the state changed
        self._open: set[Listener] = set()
        self._released: list[Listener] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    @property
    def open_streams(self) -> int:
        return len(self._open)

    async def start(self) -> None:
        if is_cluster(self.redis):  # the cluster's pub/sub picks its node from the slot map: load it first
            await self.redis.initialize()  # type: ignore[attr-defined]
        # A channel of our own keeps the connection subscribed, so the reader can always block on it.
        await self._pubsub.subscribe(f"live:process:{uuid.uuid4().hex}")
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read()), loop.create_task(self._housekeep())]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._pubsub.aclose()

    # -- streams -------------------------------------------------------------

    async def open(self, user_id: int, address: str) -> Listener:
        """Register a stream for ``user_id``; raises ``StreamLimitReached`` past a cap."""
        celebrities = await self.redis.smembers(celebs_key(user_id))
        channels = (stream_channel(user_id), *(celebrity_channel(int(a)) for a in celebrities))
        account_key, address_key = account_streams_key(user_id), address_streams_key(address)
        listener = Listener(user_id, channels, (account_key, address_key))
        now = int(time.time() * 1000)
        expiry = now + self.lease_ms
        if not await self._acquire(keys=[account_key], args=[now, expiry, self.max_per_account, listener.id]):
            raise StreamLimitReached("account", self.max_per_account)
        if not await self._acquire(keys=[address_key], args=[now, expiry, self.max_per_address, listener.id]):
            await self.redis.zrem(account_key, listener.id)
            raise StreamLimitReached("client address", self.max_per_address)
        for c in channels:
            self._listeners[c].add(listener)
        self._open.add(listener)
        try:
            async with self._subscribing:
                new = [c for c in channels if c not in self._subscribed]
                if new:
                    await self._pubsub.subscribe(*new)
                    self._subscribed.update(new)
            await self.redis.set(online_key(user_id), 1, px=self.lease_ms)
        except BaseException:
            self.release(listener)
            raise
        return listener

    def release(self, listener: Listener) -> None:
        """Forget a stream now; its Redis clean-up runs on the hub's task. Safe to call twice."""
        if listener not in self._open:
            return
        self._open.discard(listener)
        for c in listener.channels:
            self._listeners[c].discard(listener)
        self._released.append(listener)
        self._wake.set()

    # -- the hub's own tasks -------------------------------------------------

    async def _read(self) -> None:
        """Hand every message to the queues of the local streams that want its channel."""
        while True:
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis away: the client reconnects and re-subscribes on the next read
                log.warning("live push: pub/sub read failed; retrying", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            if message is None or message.get("type") != "message":
                continue
            payload = orjson.loads(message["data"])
            for listener in tuple(self._listeners.get(message["channel"], ())):
                try:
                    listener.queue.put_nowait(payload)
                except asyncio.QueueFull:  # a reader that cannot keep up is cut off, not buffered for ever
                    listener.overflowed = True

    async def _housekeep(self) -> None:
        """Every heartbeat: renew the leases of open streams, drop lapsed ones, clean up released streams."""
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.heartbeat_seconds)
            except TimeoutError:
                pass
            self._wake.clear()
            released, self._released = self._released, []
            try:
                await self._clean_up(released)
                await self._renew(self._open)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis away: leases lapse by themselves; try the clean-up again next beat
                log.warning("live push: housekeeping failed; retrying", exc_info=True)
                self._released.extend(released)

    async def _clean_up(self, released: list[Listener]) -> None:
        if not released:
            return
        async with self._subscribing:
            unwanted = {c for listener in released for c in listener.channels if not self._listeners.get(c)}
            for c in unwanted:
                self._listeners.pop(c, None)
            unwanted &= self._subscribed
            if unwanted:
                await self._pubsub.unsubscribe(*unwanted)
                self._subscribed -= unwanted
        async with self.redis.pipeline(transaction=False) as pipe:
            for listener in released:
                for key in listener.lease_keys:
                    pipe.zrem(key, listener.id)
            await pipe.execute()

    async def _renew(self, listeners: Iterable[Listener]) -> None:
        """Extend the leases of open streams, and the presence of their users (a lapsed presence needs no clean-up:
        it expires). Single-key commands only, so that a cluster pipeline sends each node its own."""
        listeners = list(listeners)
        if not listeners:
            return
        expiry = int(time.time() * 1000) + self.lease_ms
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in {listener.user_id for listener in listeners}:
                pipe.set(online_key(user_id), 1, px=self.lease_ms)
            for listener in listeners:
                for key in listener.lease_keys:
                    pipe.zadd(key, {listener.id: expiry}, xx=True)
                    pipe.pexpireat(key, expiry)
            await pipe.execute()

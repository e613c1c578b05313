"""Snowflake worker ids leased from Redis, so that no two live processes mint with the same one.

Keys:
  ``ids:{workers}:n`` string, the owner token of worker id ``n`` (0..1023); expires one lease after the
                     holder's last renewal (``PX``), renewed every quarter lease; deleted on release
  ``ids:{workers}``  string, Redis' clock (ms) when the lease table was first written after it was
                     last empty (a fresh or flushed Redis); one key, no TTL

All of them share one hash tag, so that on a Redis Cluster they live in one slot. A process claims
the first free id from a random start with ``SET NX PX`` (one Lua call over the 1,024 ids, all in
its ``KEYS``) and renews it from an asyncio task. The rules that keep ids unique:

* **A holder mints only inside its lease.** After each renewal that Redis confirmed, and that is on
  disk (``WAITAOF``, see ``redis_store.durability``), the generator may mint until the moment the
  renewal was *sent* plus 0.9 lease, by its own monotonic clock. Redis expires the key one lease
  after it *applied* the renewal, which is later: the holder stops before anyone else can take the
  id, whatever the network delay (the 10 % absorbs clock-rate differences). A holder that cannot
  renew (Redis down, a stalled process) refuses to mint (``ids.IdsUnavailable``: a 503) until a
  renewal succeeds.
* **A flush is waited out.** When Redis loses the keys (``FLUSHALL``, a restart without its data), a
  holder may still mint for up to one lease. The first claim or renewal after that writes
  the epoch; a claim made while the epoch is younger than one lease is usable only once the
  epoch is one lease old, so it cannot overlap any holder from before the flush. A holder whose key
  vanished takes the same id back at its next renewal (nobody else minted with it: a new claimer
  would own the key, and then the holder moves to another id). So a fresh Redis delays the very
  first start by one lease, and a flushed one delays only processes that start within a lease.
* Ids stay time-ordered across a change of worker id: the generator keeps its last timestamp.
  Uniqueness across machines assumes their clocks agree (NTP), as for every snowflake scheme: an
  id given up by one machine and taken by another is reused only after a lease has passed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
import time

import redis.asyncio as aioredis

from ids import MAX_WORKER, SnowflakeGenerator
from redis_store.durability import Durability

log = logging.getLogger("raygram.ids")
EPOCH = "ids:{workers}"
LEASE_SECONDS = 10.0
SAFE_FRACTION = 0.9  # of a lease, measured from the renewal's send time, during which the holder may mint

_NOW_MS = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)"

# KEYS[1] = the epoch, KEYS[2..] = the worker ids' keys in id order; ARGV: owner, lease ms, first id to try.
# Returns {worker id, ms to wait before minting} or {-1, 0} when every id is taken.
_CLAIM = f"""
{_NOW_MS}
redis.call('SET', KEYS[1], now, 'NX')
local wait = math.max(tonumber(redis.call('GET', KEYS[1])) + tonumber(ARGV[2]) - now, 0)
local count = #KEYS - 1
for i = 0, count - 1 do
  local id = (tonumber(ARGV[3]) + i) % count
  if redis.call('SET', KEYS[id + 2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {{id, wait}} end
end
return {{-1, 0}}
"""

# KEYS[1] = the worker id's key, KEYS[2] = the epoch; ARGV: owner, lease ms. 1 = renewed (or taken back after the
# key vanished), 0 = another process holds the id now.
_RENEW = f"""
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
{_NOW_MS}
redis.call('SET', KEYS[2], now, 'NX')
return 1
"""


def worker_key(worker_id: int) -> str:
    return f"{EPOCH}:{worker_id}"


_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class WorkerIdsExhausted(RuntimeError):
    """All 1,024 worker ids are leased by live processes."""


class LeasedGenerator(SnowflakeGenerator):
    """A snowflake generator whose worker id is a Redis lease, renewed in the background."""

    def __init__(self, redis: aioredis.Redis, lease_seconds: float, durability: Durability) -> None:
        super().__init__(0)
        self.extend(-1.0)  # nothing is held until ``claim``
        self.redis = redis
        self.lease_seconds = lease_seconds
        self.durability = durability
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(6)}"
        self._claim_script = redis.register_script(_CLAIM)
        self._renew_script = redis.register_script(_RENEW)
        self._release_script = redis.register_script(_RELEASE)
        self._keeper: asyncio.Task | None = None

    @property
    def lease_ms(self) -> int:
        return int(self.lease_seconds * 1000)

    async def claim(self) -> None:
        """Lease a free worker id; returns once ids may be minted with it, renewing it from then on."""
        usable_from = await self._claim()
        self._keeper = asyncio.get_running_loop().create_task(self._keep())
        await asyncio.sleep(max(usable_from - time.monotonic(), 0))

    async def _claim(self) -> float:
        sent = time.monotonic()
        worker, wait_ms = await self.durability.run_script(
            self.redis,
            self._claim_script,
            [EPOCH, *(worker_key(n) for n in range(MAX_WORKER + 1))],
            [self.owner, self.lease_ms, random.randrange(MAX_WORKER + 1)],
        )
        if worker < 0:
            raise WorkerIdsExhausted(f"all {MAX_WORKER + 1} worker ids are leased")
        usable_from = time.monotonic() + wait_ms / 1000
        self.lease(worker, usable_from, sent + SAFE_FRACTION * self.lease_seconds)
        log.info("leased snowflake worker id %s (usable in %.1fs)", worker, max(usable_from - time.monotonic(), 0))
        return usable_from

    async def renew(self) -> None:
        """Extend the lease, or take a new id if another process holds ours now."""
        sent = time.monotonic()
        held = await self.durability.run_script(
            self.redis, self._renew_script, [worker_key(self.worker_id), EPOCH], [self.owner, self.lease_ms]
        )
        if held:
            self.extend(sent + SAFE_FRACTION * self.lease_seconds)
        else:
            self.extend(-1.0)
            log.warning("snowflake worker id %s is held by another process; leasing another", self.worker_id)
            await self._claim()

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 4)
            try:
                await self.renew()
            except Exception as exc:  # keep trying: minting stops by itself at the lease's deadline
                log.warning("could not renew snowflake worker id %s: %r", self.worker_id, exc)

    async def release(self) -> None:
        """Stop minting and give the id back (only if it is still ours)."""
        self.extend(-1.0)
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
        await self._release_script(keys=[worker_key(self.worker_id)], args=[self.owner])


async def lease_generator(redis: aioredis.Redis, lease_seconds: float = LEASE_SECONDS) -> LeasedGenerator:
    generator = LeasedGenerator(redis, lease_seconds, Durability.configured())
    await generator.claim()
    return generator

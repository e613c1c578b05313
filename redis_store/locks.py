"""Short mutual-exclusion locks in Redis, for check-then-write steps in the graph.

The embedded graph server detects conflicting writes to the same record but
not a read that another transaction's insert would have changed ("is there
already a follow edge?"), so two concurrent follows of the same pair could
both insert. Such steps run under a lock named after what they protect; the
lock expires on its own, so a crashed holder blocks nobody for long.

Keys: ``lock:{name}`` (``lock:follow:{a}:{b}``, ``lock:reblog:{a}:{status}``), the holder's token,
set with ``NX PX hold_ms`` and deleted by its holder.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis

# Delete the key only if it still holds our token (we did not outlive the expiry and lose it).
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class LockBusy(Exception):
    """Another holder kept the lock for longer than we were willing to wait."""


class Locks:
    def __init__(self, redis: aioredis.Redis, hold_ms: int = 10_000, wait_seconds: float = 10.0) -> None:
        self.redis = redis
        self.hold_ms = hold_ms
        self.wait_seconds = wait_seconds
        self._release = redis.register_script(_RELEASE)

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        key, token = f"lock:{name}", secrets.token_hex(8)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_seconds
        delay = 0.005
        while not await self.redis.set(key, token, nx=True, px=self.hold_ms):
            if loop.time() > deadline:
                raise LockBusy(name)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        try:
            yield
        finally:
            await self._release(keys=[key], args=[token])

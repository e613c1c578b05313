"""Fixed-window rate limits, atomic in Redis (one Lua call per check).

Keys: ``rl:<bucket>:{subject}``, a counter that expires with its window (set on the first hit, and
repaired by the same call if a counter ever lacks a TTL). The subject is the key's hash tag
(``redis_store.slots``): an account's counters share its slot, so a script of the account's own keys
can count a hit with them on a Redis Cluster (``rl:favourite:{42}`` with ``favs:{42}``).

The counting step is also a Lua function (``RATE_HIT_LUA``) that other scripts include, so that an
action whose own work is one Lua call (a like: ``redis_store.likes``) checks its limit in the same
round trip, with the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from redis_store.slots import tagged

# rate_hit(counter key, window ms): count one hit; returns the count so far in the window and the ms until it ends.
RATE_HIT_LUA = """
local function rate_hit(key, window_ms)
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('PEXPIRE', key, window_ms) end
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then redis.call('PEXPIRE', key, window_ms); ttl = tonumber(window_ms) end
  return count, ttl
end
"""

# KEYS[1] = counter key; ARGV[1] = window ms. Returns {count, ms until reset}.
_HIT = RATE_HIT_LUA + "return {rate_hit(KEYS[1], ARGV[1])}\n"


@dataclass(frozen=True)
class RateLimit:
    """One subject's limit in one bucket: the counter key, hits allowed per window, the window."""

    key: str
    limit: int
    window_ms: int

    @classmethod
    def of(cls, bucket: str, subject: str, limit: int, window_seconds: int) -> RateLimit:
        return cls(tagged(f"rl:{bucket}", subject), limit, window_seconds * 1000)

    def decision(self, count: int, ttl_ms: int) -> RateDecision:
        """What a hit that brought the counter to ``count``, ``ttl_ms`` before the window ends, decides."""
        reset = max(1, -(-int(ttl_ms) // 1000))
        return RateDecision(count <= self.limit, self.limit, max(self.limit - count, 0), reset)


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_seconds)
        return headers


class OverLimit(Exception):
    """A hit counted inside another script (``RATE_HIT_LUA``) went past the limit; nothing else was done."""

    def __init__(self, decision: RateDecision) -> None:
        super().__init__("rate limit exceeded")
        self.decision = decision


class RateLimiter:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._hit = redis.register_script(_HIT)

    async def hit(self, bucket: str, subject: str, limit: int, window_seconds: int) -> RateDecision:
        """Count one action of ``subject`` in ``bucket``; allowed while within ``limit`` per window."""
        return await self.count(RateLimit.of(bucket, subject, limit, window_seconds))

    async def count(self, rate: RateLimit) -> RateDecision:
        count, ttl_ms = await self._hit(keys=[rate.key], args=[rate.window_ms])
        return rate.decision(int(count), int(ttl_ms))

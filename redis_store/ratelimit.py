"""Fixed-window rate limits, atomic in Redis (one Lua call per check).

Keys: ``rl:{bucket}:{subject}``, a counter that expires with its window (set on the first hit, and
repaired by the same call if a counter ever lacks a TTL).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

# KEYS[1] = counter key; ARGV[1] = window ms. Returns {count, ms until reset}.
_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
"""


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


class RateLimiter:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._hit = redis.register_script(_HIT)

    async def hit(self, bucket: str, subject: str, limit: int, window_seconds: int) -> RateDecision:
        """Count one action of ``subject`` in ``bucket``; allowed while within ``limit`` per window."""
        count, ttl_ms = await self._hit(keys=[f"rl:{bucket}:{subject}"], args=[window_seconds * 1000])
        count = int(count)
        reset = max(1, -(-int(ttl_ms) // 1000))
        return RateDecision(count <= limit, limit, max(limit - count, 0), reset)

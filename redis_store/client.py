"""Redis connections (redis-py's asyncio client; hiredis parses replies when installed)."""

from __future__ import annotations

import redis.asyncio as aioredis

from ids import MAX_WORKER, SnowflakeGenerator


def connect(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, decode_responses=True, health_check_interval=30)


async def claim_id_generator(redis: aioredis.Redis) -> SnowflakeGenerator:
    """A snowflake generator with a worker id no other live process holds.

    Worker ids come from a Redis counter, so every replica, actor and CLI
    process gets its own, wrapping after 1,024 processes.
    """
    worker = int(await redis.incr("ids:worker")) & MAX_WORKER
    return SnowflakeGenerator(worker)

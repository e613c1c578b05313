"""Redis connections (redis-py's asyncio client; hiredis parses replies when installed)."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

from redis_store.worker_lease import LeasedGenerator, lease_generator


def connect(url: str, *, fail_fast: bool = False) -> aioredis.Redis:
    """A client that reconnects and retries when the server restarts or a connection drops.

    Retried writes are safe: every multi-step write is a Lua script that checks
    its own preconditions, so running it twice does what running it once did.
    Background actors are patient (about 7 s of retries). Serving processes
    ask for ``fail_fast``: a request must learn within about a second that
    Redis is down, to degrade or answer 503 (``services.availability``); the
    socket timeout stays above the longest wait a command asks for (WAITAOF).
    """
    if fail_fast:
        retry, timeouts = Retry(ExponentialBackoff(cap=0.25, base=0.05), retries=2), (1.0, 3.0)
    else:
        retry, timeouts = Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=8), (None, None)
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        health_check_interval=30,
        retry=retry,
        retry_on_error=[ConnectionError, TimeoutError],
        socket_connect_timeout=timeouts[0],
        socket_timeout=timeouts[1],
    )


async def claim_id_generator(redis: aioredis.Redis) -> LeasedGenerator:
    """A snowflake generator with a worker id no other live process holds (a lease; see ``worker_lease``)."""
    return await lease_generator(redis)

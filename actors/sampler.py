"""``StoreSampler``: samples Redis into gauges (memory, the event groups' backlog, dead letters).

Ray's gauges hold the last value a process set, so something long-lived has to
read Redis now and then: a task on the event loop of the stream consumers'
host 0 (``actors.stream``), which runs all the time anyway and already holds
a Redis connection's worth of state; a process of its own would cost 60-100 MB
(``bench/footprint.py``) for one command every ``METRICS_SAMPLE_SECONDS``.
While Redis is down the gauges keep their last value and the sampler tries
again next period (the health endpoint reports the outage). On a Redis Cluster
the memory gauges are the sums over the primaries (``redis_store.nodes``).
"""

from __future__ import annotations

import asyncio
import logging

import redis.exceptions
from redis.asyncio import Redis

import metrics
from config import get_settings
from redis_store.client import redis_from
from redis_store.events import EventStream
from redis_store.nodes import memory_totals, primaries_info

log = logging.getLogger(__name__)


class StoreSampler:
    def __init__(self, redis: Redis, period_seconds: float) -> None:
        self.redis = redis
        self.events = EventStream(redis)
        self.period = period_seconds

    @classmethod
    def create(cls) -> StoreSampler:
        settings = get_settings()
        return cls(redis_from(settings), settings.metrics_sample_seconds)

    async def run(self) -> None:
        """Sample every period until cancelled."""
        while True:
            try:
                await self.sample()
            except redis.exceptions.RedisError as exc:
                log.warning("store sampler: Redis did not answer: %s", exc)
            await asyncio.sleep(self.period)

    async def sample(self) -> None:
        used, limit = memory_totals(await primaries_info(self.redis, "memory"))
        metrics.set_gauge(metrics.REDIS_MEMORY, float(used))
        metrics.set_gauge(metrics.REDIS_MAXMEMORY, float(limit))
        for group, backlog in (await self.events.backlog()).items():
            metrics.set_gauge(metrics.DEAD_LETTERS, backlog.dead, group=group)
            metrics.set_gauge(metrics.EVENTS_BACKLOG, backlog.pending, group=group, state="pending")
            if backlog.lag >= 0:
                metrics.set_gauge(metrics.EVENTS_BACKLOG, backlog.lag, group=group, state="lag")

"""Live push over Redis pub/sub: a user's channel, followed celebrities' channels, and presence.

Every Serve replica subscribes for the connections it holds, so a message
published by any actor reaches the user wherever they are connected.
``streaming:online`` counts a user's open connections (on any replica), so
that fan-out publishes only for users who are listening.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import redis.asyncio as aioredis

from redis_store.notifications import channel
from redis_store.timelines import ONLINE, celebrity_channel, celebs_key


class LiveChannels:
    def __init__(self, redis: aioredis.Redis, heartbeat_seconds: float) -> None:
        self.redis = redis
        self.heartbeat_seconds = heartbeat_seconds

    async def subscription(self, user_id: int) -> AsyncIterator[dict | None]:
        """Messages for the user as they arrive; None after each heartbeat interval of silence."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        # The user's own channel, plus one per followed celebrity (whose posts are announced once, not per follower).
        celebrities = await self.redis.smembers(celebs_key(user_id))
        await pubsub.subscribe(channel(user_id), *(celebrity_channel(int(a)) for a in celebrities))
        await self.redis.hincrby(ONLINE, str(user_id), 1)
        try:
            while True:
                message = await pubsub.get_message(timeout=self.heartbeat_seconds)
                yield orjson.loads(message["data"]) if message else None
        finally:
            if await self.redis.hincrby(ONLINE, str(user_id), -1) <= 0:
                await self.redis.hdel(ONLINE, str(user_id))
            await pubsub.aclose()

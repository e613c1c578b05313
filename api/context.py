"""The per-process wiring: store clients and services, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from config import Settings
from graph.accounts import AccountGraph
from graph.driver import GraphClient, async_wait_for_graph
from ids import SnowflakeGenerator
from redis_store.client import claim_id_generator, connect
from redis_store.ratelimit import RateLimiter
from services.accounts import AccountService
from services.auth import AuthService
from services.passwords import Passwords


@dataclass
class AppContext:
    settings: Settings
    redis: aioredis.Redis
    graph: GraphClient
    ids: SnowflakeGenerator
    rate_limiter: RateLimiter
    auth: AuthService
    accounts: AccountService

    @classmethod
    async def create(cls, settings: Settings) -> AppContext:
        if not settings.redis_url or not settings.neo4j_uri:
            raise RuntimeError("REDIS_URL and NEO4J_URI must be set (`raygram up` sets them for the embedded services)")
        redis = connect(settings.redis_url)
        graph = GraphClient(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database)
        await async_wait_for_graph(graph)
        ids = await claim_id_generator(redis)
        passwords = Passwords(settings)
        account_graph = AccountGraph(graph)
        return cls(
            settings=settings,
            redis=redis,
            graph=graph,
            ids=ids,
            rate_limiter=RateLimiter(redis),
            auth=AuthService(settings, account_graph, redis, ids, passwords),
            accounts=AccountService(settings, account_graph, ids, passwords),
        )

    async def close(self) -> None:
        await self.graph.close()
        await self.redis.aclose()

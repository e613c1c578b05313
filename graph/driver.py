"""A thin async client over the official ``neo4j`` driver.

Every statement runs in a managed transaction (``execute_read`` /
``execute_write``): the driver retries transient conflicts, and ArcadeDB's
auto-commit ``UNWIND … MERGE`` is neither atomic nor reliable.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import neo4j
from neo4j import AsyncGraphDatabase, AsyncManagedTransaction

T = TypeVar("T")
# The server is away (dead, hung, or restarting without its database yet): fail fast, not retry.
UNREACHABLE = (
    neo4j.exceptions.ServiceUnavailable,
    neo4j.exceptions.SessionExpired,
    neo4j.exceptions.ConnectionAcquisitionTimeoutError,
    neo4j.exceptions.DatabaseUnavailable,
)
BREAKER_SECONDS = 1.0  # fail-fast: how long calls fail at once after the server was found unreachable
CONFLICT_PATIENCE_SECONDS = 15.0  # retrying write conflicts in fail-fast mode (the driver's own default is 30 s)
Row = dict[str, Any]


class GraphClient:
    """Runs Cypher against one database; one instance per process."""

    def __init__(self, uri: str, user: str, password: str, database: str, *, fail_fast: bool = False) -> None:
        """``fail_fast`` (serving processes): give up on an unreachable server within about a second, so
        that a request degrades or answers 503 (``services.availability``) instead of hanging for the
        driver's default 30 s of retries; background workers keep the patient defaults."""
        self.database = database
        self.fail_fast = fail_fast
        patience = {"max_transaction_retry_time": 1.0, "connection_timeout": 1.0} if fail_fast else {}
        self.driver = AsyncGraphDatabase.driver(
            uri,
            auth=(user, password),
            max_connection_pool_size=50,
            connection_acquisition_timeout=2 if fail_fast else 30,
            **patience,
        )
        # Fail fast: after the server was found unreachable, calls fail at once for BREAKER_SECONDS instead
        # of each paying the driver's retries again (a request may make several graph calls).
        self._unreachable_until = 0.0

    async def close(self) -> None:
        await self.driver.close()

    async def _run(self, work: Callable[[AsyncManagedTransaction], Awaitable[T]], *, write: bool) -> T:
        """One managed transaction. In fail-fast mode the driver gives up after a second, which is right
        for an unreachable server but not for a write conflict (ArcadeDB answers concurrent changes of one
        vertex with a deadlock, a transient error): those are retried here, for as long as the driver
        would, with jittered backoff. Managed transaction functions are retry-safe by contract."""
        if time.monotonic() < self._unreachable_until:
            raise neo4j.exceptions.ServiceUnavailable("The graph server was unreachable a moment ago")
        deadline = time.monotonic() + CONFLICT_PATIENCE_SECONDS
        attempt = 0
        while True:
            try:
                async with self.driver.session(database=self.database) as session:
                    return await (session.execute_write(work) if write else session.execute_read(work))
            except UNREACHABLE:
                if self.fail_fast:
                    self._unreachable_until = time.monotonic() + BREAKER_SECONDS
                raise
            except neo4j.exceptions.TransientError:
                attempt += 1
                if not self.fail_fast or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(min(0.02 * 2**attempt, 0.5) * random.uniform(0.5, 1.5))

    async def read(self, query: str, **params: Any) -> list[Row]:
        async def work(tx: AsyncManagedTransaction) -> list[Row]:
            return await (await tx.run(query, params)).data()

        return await self._run(work, write=False)

    async def write(self, query: str, **params: Any) -> list[Row]:
        async def work(tx: AsyncManagedTransaction) -> list[Row]:
            return await (await tx.run(query, params)).data()

        return await self._run(work, write=True)

    async def write_transaction(self, work: Callable[[AsyncManagedTransaction], Awaitable[T]]) -> T:
        """Run several statements as one atomic, retried write transaction."""
        return await self._run(work, write=True)

    async def ping(self) -> bool:
        rows = await self.read("RETURN 1 AS ok")
        return bool(rows and rows[0]["ok"] == 1)


def wait_for_graph(uri: str, user: str, password: str, database: str, timeout: float = 60.0) -> None:
    """Block until ``database`` answers a query (the embedded server creates it on first start)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    with neo4j.GraphDatabase.driver(uri, auth=(user, password)) as driver:
        while time.monotonic() < deadline:
            try:
                with driver.session(database=database) as session:
                    session.execute_read(lambda tx: tx.run("RETURN 1").consume())
                return
            except Exception as exc:
                last_error = exc
                time.sleep(0.25)
    raise TimeoutError(f"graph database {database!r} at {uri} not ready: {last_error}")


async def async_wait_for_graph(client: GraphClient, patience: float = 60.0) -> None:
    """Wait until the graph answers; a replica may start before the database exists."""
    deadline = time.monotonic() + patience
    while True:
        try:
            await client.ping()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)

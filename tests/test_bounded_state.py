"""Bounded state: every Redis key family a user's activity grows stays capped or expires, and what the user
sees stays right; snowflake worker ids come from leases that cannot collide."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ids import IdsUnavailable
from launcher import ManagedProcess, free_port
from redis_store.client import connect
from redis_store.durability import Durability
from redis_store.server import start_redis_server
from redis_store.worker_lease import EPOCH, WORKER_PREFIX, LeasedGenerator, WorkerIdsExhausted

LEASE = 1.0  # seconds; short, so that expiry and renewal happen within a test


async def until(check, within: float = 15.0) -> None:
    """Poll an async condition until it holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


# -- snowflake worker id leases ---------------------------------------------------------------------


@dataclass
class PrivateRedis:
    """A Redis of the test's own, which it may flush, fill or kill without disturbing the stack's."""

    state_dir: Path
    port: int
    process: ManagedProcess | None = None

    def start(self) -> None:
        self.process = start_redis_server(self.state_dir, port=self.port)

    def kill(self) -> None:
        """``kill -9``, from outside, as a crash would."""
        assert self.process is not None
        pid = self.process.running_pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        until_dead = time.monotonic() + 10
        while self.process.running_pid() is not None and time.monotonic() < until_dead:
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[tuple[PrivateRedis, aioredis.Redis]]:
    server = PrivateRedis(tmp_path, free_port())
    server.start()
    client = connect(server.url)
    yield server, client
    await client.aclose()
    if server.process is not None:
        server.process.stop()


async def leased(client: aioredis.Redis, lease: float = LEASE, fsync: bool = True) -> LeasedGenerator:
    generator = LeasedGenerator(client, lease, Durability(wait=fsync, timeout_ms=2000))
    await generator.claim()
    return generator


async def age_lease_table(client: aioredis.Redis) -> None:
    """A lease table that has existed for a while (no process from before a flush can still be minting)."""
    await client.set(EPOCH, int(time.time() * 1000) - 3_600_000)


async def test_two_generators_never_share_a_worker_id_past_1024_claims(private_redis) -> None:
    _, client = private_redis
    await age_lease_table(client)
    first = await leased(client)
    for _ in range(1100):  # the old counter wrapped after 1,024 claims and handed out the first id again
        passing = await leased(client, lease=60, fsync=False)  # (no fsync wait: a thousand of them)
        assert passing.worker_id != first.worker_id
        await passing.release()
    held = [first]
    for _ in range(1023):
        held.append(await leased(client, lease=60, fsync=False))
    assert len({g.worker_id for g in held}) == 1024
    with pytest.raises(WorkerIdsExhausted):
        await leased(client, lease=60, fsync=False)
    assert len({g.next_id() for g in held}) == 1024
    for generator in held:
        await generator.release()


async def test_a_lost_lease_is_claimed_again_and_a_flush_is_waited_out(private_redis) -> None:
    _, client = private_redis
    await age_lease_table(client)
    holder = await leased(client)
    before = holder.next_id()
    await client.flushall()  # an operator's mistake: every lease key is gone
    await until(lambda: _holds(client, holder))  # the holder's next renewal takes its id back
    assert holder.next_id() > before
    started = time.monotonic()
    newcomer = await leased(client)  # claims after the flush must outwait any holder from before it
    assert time.monotonic() - started > 0.5 * LEASE
    assert newcomer.worker_id != holder.worker_id
    # Another process now holds the holder's id (as after a flush that it slept through): it moves on.
    stolen = holder.worker_id
    await client.set(WORKER_PREFIX + str(stolen), "someone else", px=60_000)
    await until(lambda: _moved(holder, stolen))
    assert await client.get(WORKER_PREFIX + str(stolen)) == "someone else"
    assert holder.next_id() > before
    await holder.release()
    await newcomer.release()


async def _holds(client: aioredis.Redis, generator: LeasedGenerator) -> bool:
    return await client.get(WORKER_PREFIX + str(generator.worker_id)) == generator.owner


async def _moved(generator: LeasedGenerator, old_worker: int) -> bool:
    try:
        generator.next_id()
    except IdsUnavailable:
        return False
    return generator.worker_id != old_worker


async def test_a_holder_that_cannot_renew_stops_minting_until_it_can(private_redis) -> None:
    server, client = private_redis
    await age_lease_table(client)
    holder = await leased(client)
    before = holder.next_id()
    server.kill()
    await until(lambda: _refuses(holder), within=5 * LEASE)  # within a lease, however long Redis stays away
    server.start()  # same data folder: the lease keys come back from the append-only file, or have expired
    await until(lambda: _mints(holder), within=30)
    assert holder.next_id() > before
    assert await _holds(client, holder)
    await holder.release()


async def _refuses(generator: LeasedGenerator) -> bool:
    try:
        generator.next_id()
    except IdsUnavailable:
        return True
    return False


async def _mints(generator: LeasedGenerator) -> bool:
    return not await _refuses(generator)

"""Bounded state: every Redis key family a user's activity grows stays capped or expires, and what the user
sees stays right; snowflake worker ids come from leases that cannot collide."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import neo4j
import pytest
import redis.asyncio as aioredis

from api.context import AppContext
from ids import IdsUnavailable
from launcher import ManagedProcess, free_port
from redis_store.client import connect, redis_from
from redis_store.durability import Durability
from redis_store.likes import count_key, favs_key
from redis_store.server import start_redis_server
from redis_store.timelines import PageBounds, TimelineStore, active_key, reblogs_key, timeline_key
from redis_store.worker_lease import EPOCH, LeasedGenerator, WorkerIdsExhausted, worker_key
from stack import Stack
from tests.conftest import User, UserFactory
from tests.test_feed import post
from tests.test_interactions import like

LEASE = 1.0  # seconds; short, so that expiry and renewal happen within a test


async def until(check, within: float = 15.0) -> None:
    """Poll an async condition until it holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def until_sync(check, within: float = 30.0) -> None:
    """Poll a blocking condition (a graph read) until it holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


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
    await client.set(worker_key(stolen), "someone else", px=60_000)
    await until(lambda: _moved(holder, stolen))
    assert await client.get(worker_key(stolen)) == "someone else"
    assert holder.next_id() > before
    await holder.release()
    await newcomer.release()


async def _holds(client: aioredis.Redis, generator: LeasedGenerator) -> bool:
    return await client.get(worker_key(generator.worker_id)) == generator.owner


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


# -- home timelines -------------------------------------------------------------------------------


def synthetic_user() -> int:
    """An id no account has: the test writes only this user's keys."""
    return 8_000_000_000_000_000_000 + uuid.uuid4().int % 10**15


async def test_reblog_dedupe_tracking_stays_within_the_inbox(stack: Stack) -> None:
    """3 × ``timeline_max`` reblogs of different posts into one inbox: the dedupe hash follows the inbox's cap,
    and dedupe still works for what the inbox holds."""
    client = redis_from(stack.settings)
    store = TimelineStore.from_settings(stack.settings, client)
    cap, user = stack.settings.timeline_max, synthetic_user()
    await client.set(active_key(user), 1, ex=3600)
    base = 500_000_000_000_000_000  # originals at base + k, their reblogs at base + 10^9 + k

    def reblog(k: int) -> tuple[int, int]:
        return base + 10**9 + k, base + k

    sizes = []
    for start in range(0, 3 * cap, 100):  # as fan-out batches arrive
        await store.deliver([reblog(k) for k in range(start, start + 100)], [user])
        if (start + 100) % cap == 0:
            sizes.append(await client.memory_usage(reblogs_key(user)))
    assert await client.zcard(timeline_key(user)) == cap
    assert await client.hlen(reblogs_key(user)) == 2 * cap  # two fields per reblog the inbox holds, no more
    full, twice, thrice = sizes  # memory stops growing once the inbox is full (give or take the hash table's slack)
    assert twice <= full * 1.5 and thrice <= twice * 1.05, sizes

    newest_original, oldest_kept = base + 3 * cap - 1, 2 * cap
    await store.deliver([(base + 2 * 10**9, newest_original)], [user])  # its reblog is in the inbox: skipped
    await store.deliver([(base + 2 * 10**9 + 1, base + 0)], [user])  # its reblog was trimmed: shown again
    inbox = {int(m) for m in await client.zrange(timeline_key(user), 0, -1)}
    assert base + 2 * 10**9 not in inbox and base + 2 * 10**9 + 1 in inbox
    assert reblog(oldest_kept)[0] not in inbox  # pushed out by the newcomer, and its tracking with it
    assert await client.hget(reblogs_key(user), f"{base + oldest_kept:019d}") is None
    assert await client.hlen(reblogs_key(user)) == 2 * cap

    _, page = await store.read_page(user, PageBounds.from_cursors(None, None, None), 5)
    assert page == [base + 2 * 10**9 + 1, *(reblog(k)[0] for k in range(3 * cap - 1, 3 * cap - 5, -1))]
    ttl = await client.ttl(reblogs_key(user))  # reading keeps the user's keys for inactive_days, no longer
    assert 0 < ttl <= stack.settings.inactive_days * 86_400 and abs(await client.ttl(timeline_key(user)) - ttl) <= 1
    await client.delete(timeline_key(user), reblogs_key(user), active_key(user))
    await client.aclose()


# -- likes ------------------------------------------------------------------------------------------


def persisted_likes(session: neo4j.Session, account_id: str) -> int:
    return session.execute_read(
        lambda tx: tx.run("MATCH (:Account {id: $id})-[l:LIKED]->() RETURN count(l) AS n", id=int(account_id)).single()[
            "n"
        ]
    )


def favourites(http: httpx.Client, user: User, **params: object) -> tuple[list[dict], str | None]:
    """A page of the user's favourites and the ``max_id`` of the next (older) page, from the Link header."""
    response = http.get("/api/v1/favourites", headers=user.headers, params=params)
    assert response.status_code == 200, response.text
    following = httpx.URL(response.headers["link"].split(">")[0].lstrip("<")) if "link" in response.headers else None
    return response.json(), following.params.get("max_id") if following else None


def like_count(http: httpx.Client, user: User, status_id: str) -> tuple[int, bool]:
    status = http.get(f"/api/v1/statuses/{status_id}", headers=user.headers).json()
    return status["favourites_count"], status["favourited"]


async def test_like_counters_and_liked_sets_expire_and_come_back_from_the_graph(
    stack: Stack, http: httpx.Client, make_user: UserFactory, graph_session: neo4j.Session
) -> None:
    client = redis_from(stack.settings)
    author, fan, other = make_user(), make_user(), make_user()
    status = post(http, author, "count me")
    assert like(http, fan, status["id"])["favourites_count"] == 1
    counter_ttl = await client.ttl(count_key(int(status["id"])))
    assert 0 < counter_ttl <= stack.settings.like_count_ttl_seconds
    assert 0 < await client.ttl(favs_key(int(fan.id))) <= stack.settings.inactive_days * 86_400
    await until_sync(lambda: persisted_likes(graph_session, fan.id) == 1)
    # What days without a like leave, done from outside: the counter, the fan's set and the cached record
    # (whose TTL is far shorter) are gone; the graph answers.
    await client.delete(count_key(int(status["id"])), favs_key(int(fan.id)), f"status:{status['id']}")
    assert like_count(http, fan, status["id"]) == (1, True)
    assert like(http, other, status["id"])["favourites_count"] == 2  # the counter starts again from the graph
    assert like(http, fan, status["id"])["favourites_count"] == 2  # and the fan's like was not counted twice
    await client.aclose()


@pytest.fixture
async def capped_likes(stack: Stack) -> AsyncIterator[AppContext]:
    """The services as a replica builds them, with a favourites cap of 10 and no like rate limit."""
    settings = stack.settings.model_copy(update={"favourites_load_limit": 10, "favourite_rate_limit": 10_000})
    ctx = await AppContext.create(settings)
    yield ctx
    await ctx.ids.release()
    await ctx.close()


async def test_a_heavy_likers_favourites_stay_capped_and_right(
    capped_likes: AppContext,
    http: httpx.Client,
    make_user: UserFactory,
    graph_session: neo4j.Session,
) -> None:
    """30 likes against a cap of 10: Redis keeps the newest 10, and the user still sees all 30, in order."""
    ctx, client = capped_likes, capped_likes.redis
    author, fan = make_user(), make_user()
    posts = [post(http, author, f"post {i}")["id"] for i in range(30)]
    for status_id in posts:  # oldest first, as the user scrolls back up
        target = (await ctx.statuses.get(int(status_id), int(fan.id))).original
        await ctx.likes.set_liked(int(fan.id), target, True)
        assert target.favourites_count == 1 and target.favourited
    assert await client.zcount(favs_key(int(fan.id)), 0, "+inf") == 10
    await until_sync(lambda: persisted_likes(graph_session, fan.id) == 30)

    listed, _ = favourites(http, fan, limit=40)
    assert [s["id"] for s in listed] == posts[::-1]  # the 20 oldest come from the graph
    first, older = favourites(http, fan, limit=15)
    second, _ = favourites(http, fan, limit=15, max_id=older)
    assert [s["id"] for s in first + second] == posts[::-1]
    assert like_count(http, fan, posts[0]) == (1, True)  # an evicted like still shows as liked
    # Liking it again changes nothing; unliking it works, though Redis no longer held it.
    oldest = (await ctx.statuses.get(int(posts[0]), int(fan.id))).original
    await ctx.likes.set_liked(int(fan.id), oldest, True)
    assert oldest.favourites_count == 1
    await ctx.likes.set_liked(int(fan.id), oldest, False)
    assert oldest.favourites_count == 0
    await until_sync(lambda: persisted_likes(graph_session, fan.id) == 29)  # the graph answers for old posts
    assert like_count(http, fan, posts[0]) == (0, False)
    assert await client.zcount(favs_key(int(fan.id)), 0, "+inf") <= 11

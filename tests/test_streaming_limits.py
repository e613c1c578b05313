"""Careless streaming clients cannot exhaust the server.

Phones drop live streams all day. Each test opens streams the way such
clients do (SSE and WebSocket, then the connection simply goes away) and
checks what an operator and the other users would see: the Redis client and
subscription counts come back, the replica's memory does not grow, and every
endpoint keeps answering.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import aiohttp
import httpx
import pytest
import redis
import websockets

from redis_store.live import account_streams_key
from stack import Stack
from tests.conftest import User, UserFactory
from tests.test_feed import eventually


def descendants(root: int) -> list[int]:
    """Every process under ``root`` (Ray, started by this test session, runs its workers under it)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def replica_rss_bytes() -> int:
    """Resident memory of this session's Serve replicas together, read from /proc."""
    total = 0
    for pid in descendants(os.getpid()):
        try:
            if not Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::ServeReplica"):
                continue
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) * 1024
    assert total, "no Serve replica found"
    return total


def stream_channels(r: redis.Redis) -> int:
    return len(r.pubsub_channels("stream:*"))


def leases(r: redis.Redis, user: User) -> int:
    return r.zcard(account_streams_key(int(user.id)))


def nodes(r: redis.Redis) -> int:
    """How many Redis servers hold the data: the primaries of a Redis Cluster, else one."""
    return len(r.get_primaries()) if isinstance(r, redis.RedisCluster) else 1


def redis_clients(r: redis.Redis) -> int:
    """Connected clients, on every node of a Redis Cluster (each process holds connections to every node)."""
    if isinstance(r, redis.RedisCluster):
        per_node = r.info("clients", target_nodes=redis.RedisCluster.PRIMARIES)
        return sum(info["connected_clients"] for info in per_node.values())
    return r.info("clients")["connected_clients"]


async def drop_sse(session: aiohttp.ClientSession, base_url: str, user: User) -> None:
    """Open a user stream, see it start, then vanish without a goodbye."""
    path = random.choice(["/api/v1/streaming/user", "/api/v1/streaming/user/notification"])
    response = await session.get(base_url + path, headers=user.headers)
    assert response.status == 200, await response.text()
    assert await response.content.readuntil(b"\n\n") == b":)\n\n"
    response.close()  # drops the TCP connection


async def drop_websocket(base_url: str, user: User) -> None:
    url = base_url.replace("http://", "ws://") + f"/api/v1/streaming?stream=user&access_token={user.token}"
    socket = await websockets.connect(url, open_timeout=30)
    await socket.send('{"type": "subscribe", "stream": "user:notification"}')
    socket.transport.abort()  # no close frame: the connection is simply gone


async def open_and_drop(base_url: str, users: list[User], count: int, concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def one(i: int) -> None:
            async with gate:
                user = users[i % len(users)]
                if i % 2:
                    await drop_websocket(base_url, user)
                else:
                    await drop_sse(session, base_url, user)

        await asyncio.gather(*(one(i) for i in range(count)))


def everything_answers(http: httpx.Client, user: User, oauth_client: tuple[str, str]) -> None:
    for path in (
        "/api/v1/accounts/verify_credentials",
        "/api/v1/notifications",
        "/api/v1/timelines/home",
        "/api/v1/markers?timeline[]=notifications",
        "/api/v1/instance",
        "/health",
    ):
        response = http.get(path, headers=user.headers)
        assert response.status_code == 200, (path, response.status_code, response.text)
    login = http.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "client_id": oauth_client[0],
            "client_secret": oauth_client[1],
            "username": user.username,
            "password": user.password,
            "scope": "read",
        },
    )
    assert login.status_code == 200, login.text
    posted = http.post("/api/v1/statuses", headers=user.headers, data={"status": "still here"})
    assert posted.status_code == 200, posted.text


def test_a_thousand_dropped_streams_leave_nothing_behind(
    stack: Stack, http: httpx.Client, make_user: UserFactory, redis_client: redis.Redis, oauth_app, base_url: str
) -> None:
    users = [make_user() for _ in range(8)]
    # Warm up at the same concurrency first, so that the baseline already has the replicas' code paths
    # loaded and their connection pools at working size: what must not grow is what dropped streams hold.
    asyncio.run(open_and_drop(base_url, users, 100, 32))
    eventually(lambda: all(leases(redis_client, u) == 0 for u in users), what="warm-up streams to be released")
    clients_before = redis_clients(redis_client)
    channels_before = stream_channels(redis_client)
    rss_before = replica_rss_bytes()

    asyncio.run(open_and_drop(base_url, users, 1000, 32))

    eventually(lambda: all(leases(redis_client, u) == 0 for u in users), what="every dropped stream's lease")
    eventually(lambda: stream_channels(redis_client) <= channels_before, what="the stream channels to be unsubscribed")
    # A stream that leaked would hold a connection each (a thousand); connection pools may still grow by a few
    # at peaks of concurrency, and the other actors' connections come and go (on each node of a cluster).
    eventually(
        lambda: redis_clients(redis_client) <= clients_before + 10 * nodes(redis_client),
        what=f"Redis client count to come back to about {clients_before}",
    )
    growth = replica_rss_bytes() - rss_before
    assert growth < 40 * 1024 * 1024, f"replicas grew by {growth / 2**20:.1f} MiB after 1,000 dropped streams"
    everything_answers(http, users[0], (oauth_app.client_id, oauth_app.client_secret))


def test_streams_past_the_account_cap_are_refused_until_one_closes(
    stack: Stack, make_user: UserFactory, redis_client: redis.Redis, base_url: str
) -> None:
    user = make_user()
    cap = stack.settings.streaming_max_per_account

    async def scenario() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            held = []
            for _ in range(cap):
                response = await session.get(base_url + "/api/v1/streaming/user", headers=user.headers)
                assert response.status == 200
                await response.content.readuntil(b"\n\n")
                held.append(response)
            refused = await session.get(base_url + "/api/v1/streaming/user", headers=user.headers)
            assert refused.status == 429
            assert "Too many open streams" in (await refused.json())["error"]
            assert int(refused.headers["Retry-After"]) > 0
            url = base_url.replace("http://", "ws://") + f"/api/v1/streaming?stream=user&access_token={user.token}"
            with pytest.raises(websockets.exceptions.WebSocketException):
                async with websockets.connect(url, open_timeout=30) as socket:
                    await asyncio.wait_for(socket.recv(), 30)
            held.pop().close()
            deadline = time.monotonic() + 30
            while True:  # the freed place is given back within a heartbeat
                again = await session.get(base_url + "/api/v1/streaming/user", headers=user.headers)
                if again.status == 200:
                    held.append(again)
                    break
                again.close()
                assert time.monotonic() < deadline, "the closed stream's place was never freed"
                await asyncio.sleep(0.1)
            for response in held:
                response.close()

    asyncio.run(scenario())
    eventually(lambda: leases(redis_client, user) == 0, what="every stream to be released")

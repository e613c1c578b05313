"""Background work survives Redis losing its data or crashing, and a poison event cannot block its queue.

These tests hurt the shared session stack on purpose (flush Redis, kill it),
each time from outside, and leave it healthy: Redis up, consumer groups back.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import neo4j
import orjson
import pytest
import redis

import cli
from ids import MAX_WORKER, SnowflakeGenerator
from launcher import pid_alive
from redis_store.events import STREAM, dead_letter_key
from redis_store.server import start_redis_server
from stack import Stack
from tests.conftest import REDIS_CLUSTER, User, UserFactory
from tests.test_feed import eventually, follow, home_ids, post
from tests.test_interactions import graph_likes, like, notifications, status_of

GROUPS = ("fanout", "likes", "notify")


def answers(check) -> bool:
    """``check()``, with a Redis that is still coming back counting as "not yet"."""
    try:
        return bool(check())
    except redis.exceptions.ConnectionError:
        return False


def dead_origins(redis_client: redis.Redis, group: str) -> list[str]:
    """The main-stream ids of the events in the group's dead-letter stream."""
    return [fields["origin"] for _, fields in redis_client.xrange(dead_letter_key(group))]


def entry_order(entry_id: str) -> tuple[int, int]:
    millis, sequence = entry_id.split("-")
    return int(millis), int(sequence)


def liked_pairs(session: neo4j.Session, status_ids: list[str]) -> set[tuple[str, str]]:
    """(account id, status id) of the likes the graph holds on these posts."""
    rows = session.execute_read(
        lambda tx: tx.run(
            "MATCH (a:Account)-[:LIKED]->(s:Status) WHERE s.id IN $ids RETURN a.id AS a, s.id AS s",
            ids=[int(i) for i in status_ids],
        ).data()
    )
    return {(str(r["a"]), str(r["s"])) for r in rows}


def test_background_work_resumes_after_redis_loses_its_data(
    http: httpx.Client, make_user: UserFactory, redis_client: redis.Redis, graph_session: neo4j.Session
) -> None:
    author, fan, reader = make_user(), make_user(), make_user()
    home_ids(http, reader)
    follow(http, reader, author)
    earlier = post(http, author, "before the flush")
    eventually(lambda: earlier["id"] in home_ids(http, reader))

    redis_client.flushall()  # an operator's mistake, or a restart without the data
    assert redis_client.exists(STREAM) == 0
    # Tokens live in the graph (Redis only caches them): nobody has to log in again.
    assert http.get("/api/v1/accounts/verify_credentials", headers=fan.headers).status_code == 200
    assert earlier["id"] in home_ids(http, reader)  # the reader's timeline is rebuilt from the graph

    follow(http, fan, author)
    eventually(
        lambda: any(n["type"] == "follow" and n["account"]["id"] == fan.id for n in notifications(http, author)),
        timeout=60,
    )
    like(http, fan, earlier["id"])
    eventually(lambda: graph_likes(graph_session, earlier["id"]) == (1, 1), timeout=60)
    later = post(http, author, "after the flush")
    eventually(lambda: later["id"] in home_ids(http, reader), timeout=60)  # pushed by fan-out, not rebuilt
    assert {g["name"] for g in redis_client.xinfo_groups(STREAM)} >= set(GROUPS)


def like_event(fan: User, author: User, status_id: str) -> dict[str, bytes]:
    """A well-formed ``like.created`` entry, as the like call appends it."""
    data = {
        "account_id": int(fan.id),
        "status_id": int(status_id),
        "status_account_id": int(author.id),
        "like_id": SnowflakeGenerator(MAX_WORKER).next_id(),
        "created_at": int(time.time() * 1000),
    }
    return {"type": "like.created", "data": orjson.dumps(data)}


def test_a_poison_event_is_dead_lettered_without_blocking_the_events_behind_it(
    http: httpx.Client,
    make_user: UserFactory,
    redis_client: redis.Redis,
    graph_session: neo4j.Session,
    capsys: pytest.CaptureFixture[str],
) -> None:
    author, fan = make_user(), make_user()
    status = post(http, author, "behind the poison")
    poison = {"account_id": int(fan.id), "note": "no status id: every like handler fails on it"}
    with redis_client.pipeline(transaction=True) as pipe:  # one step: the consumers read both in one batch
        pipe.xadd(STREAM, {"type": "like.created", "data": orjson.dumps(poison)})
        pipe.xadd(STREAM, like_event(fan, author, status["id"]))
        poison_id, _ = pipe.execute()

    eventually(lambda: graph_likes(graph_session, status["id"]) == (1, 1), timeout=60)
    assert poison_id not in dead_origins(redis_client, "likes")  # the good like did not wait for the poison
    eventually(lambda: poison_id in dead_origins(redis_client, "likes"), timeout=60)
    eventually(lambda: poison_id in dead_origins(redis_client, "notify"), timeout=60)  # each group gave up
    eventually(lambda: [n["type"] for n in notifications(http, author)] == ["favourite"])
    entry = next(f for _, f in redis_client.xrange(dead_letter_key("likes")) if f["origin"] == poison_id)
    assert int(entry["attempts"]) >= 5 and "KeyError" in entry["error"]
    assert orjson.loads(entry["data"]) == poison
    for group in ("likes", "notify"):
        pending = redis_client.xpending_range(STREAM, group, poison_id, poison_id, 1)
        assert pending == []  # acked: the queue moved on

    assert cli.main(["events", "dead", "--group", "likes"]) == 0
    assert poison_id in capsys.readouterr().out

    assert cli.main(["events", "replay", "--group", "likes"]) == 0
    assert poison_id not in dead_origins(redis_client, "likes")
    replayed_id, fields = next((i, f) for i, f in redis_client.xrevrange(STREAM, count=100) if f.get("group"))
    assert fields["group"] == "likes" and orjson.loads(fields["data"]) == poison
    # Only the likes group takes it again (and gives up again); the notifier passes it by.
    eventually(lambda: replayed_id in dead_origins(redis_client, "likes"), timeout=60)
    notify = next(g for g in redis_client.xinfo_groups(STREAM) if g["name"] == "notify")
    assert entry_order(notify["last-delivered-id"]) >= entry_order(replayed_id)
    assert redis_client.xpending_range(STREAM, "notify", replayed_id, replayed_id, 1) == []
    assert replayed_id not in dead_origins(redis_client, "notify")


def test_no_acknowledged_like_is_lost_when_redis_is_killed(
    http: httpx.Client,
    make_user: UserFactory,
    stack: Stack,
    base_url: str,
    redis_client: redis.Redis,
    graph_session: neo4j.Session,
) -> None:
    if REDIS_CLUSTER:
        pytest.skip("kills the single Redis server")
    server = next((p for p in stack.started if p.name == "redis server"), None)
    if server is None:
        pytest.skip("Redis was not started by this test session")
    author = make_user()
    fans = [make_user() for _ in range(4)]
    statuses = [post(http, author, f"like storm {i}")["id"] for i in range(10)]
    pairs = [(fan, status_id) for status_id in statuses for fan in fans]
    acked: list[tuple[User, str]] = []
    spans: list[tuple[float, float]] = []  # (start, end) of every request
    lock = threading.Lock()

    def attempt(pair: tuple[User, str]) -> None:
        fan, status_id = pair
        started = time.monotonic()
        with httpx.Client(base_url=base_url, timeout=60) as client:
            try:
                response = client.post(f"/api/v1/statuses/{status_id}/favourite", headers=fan.headers)
            except httpx.HTTPError:
                response = None
        with lock:
            spans.append((started, time.monotonic()))
            if response is not None and response.status_code == 200:
                acked.append(pair)

    with ThreadPoolExecutor(max_workers=4) as pool:
        done = pool.map(attempt, pairs)
        eventually(lambda: len(acked) >= 8)
        pid = server.running_pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        with lock:
            acked_before_kill = len(acked)
        os.waitpid(pid, 0)  # our child: reap it, so that the pid is free
        assert not pid_alive(pid)
        stack.started[stack.started.index(server)] = start_redis_server(stack.state_dir, port=stack.settings.redis_port)
        list(done)
    assert 8 <= acked_before_kill < len(pairs)
    assert any(start < killed_at < end for start, end in spans), "no like was in flight when Redis died"
    eventually(lambda: answers(redis_client.ping))

    for fan, status_id in acked:
        assert status_of(http, fan, status_id)["favourited"] is True
    for status_id in statuses:
        acked_here = sum(1 for _, s in acked if s == status_id)
        assert status_of(http, author, status_id)["favourites_count"] >= acked_here
    expected = {(fan.id, status_id) for fan, status_id in acked}
    eventually(lambda: expected <= liked_pairs(graph_session, statuses), timeout=90)
    assert {g["name"] for g in redis_client.xinfo_groups(STREAM)} >= set(GROUPS)

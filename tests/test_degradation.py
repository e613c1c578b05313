"""Degrade, do not fail: with a store down, reads still answer where they can and writes fail fast.

Each test stops a real server of the session's stack (``kill -9``, from
outside the code under test), checks what clients see while it is down,
restarts it on the same data and checks that everything recovers by itself.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from graph.server import start_graph_server
from launcher import ManagedProcess
from redis_store.server import start_redis_server
from stack import Stack
from tests.conftest import User, UserFactory
from tests.test_feed import eventually

# Generous enough for a loaded 2-core machine; a hang (the driver's 30 s of retries) would exceed it.
FAST = 5.0
RECOVERY = 60.0  # seconds for a killed server to die, or a restarted one to serve again


def writes_answer(http: httpx.Client, user: User) -> bool:
    """A few posts in a row succeed, so that every replica (behind round-robin) took one."""
    return all(
        http.post("/api/v1/statuses", headers=user.headers, data={"status": f"back {i}"}).status_code == 200
        for i in range(4)
    )


def kill_hard(stack: Stack, name_prefix: str) -> ManagedProcess:
    """``kill -9`` one of the stack's servers and wait until it is gone."""
    server = next(p for p in stack.started if p.name.startswith(name_prefix))
    pid = server.running_pid()
    assert pid is not None, f"{server.name} is not running"
    os.kill(pid, signal.SIGKILL)
    eventually(timeout=RECOVERY, check=lambda: server.running_pid() is None, what=f"{server.name} to die")
    return server


@pytest.fixture
def fast_client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=FAST) as client:
        yield client


def test_redis_down_feeds_come_from_the_graph_and_writes_fail_fast(
    stack: Stack, http: httpx.Client, fast_client: httpx.Client, make_user: UserFactory
) -> None:
    author, reader = make_user(), make_user()
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.headers).status_code == 200
    posted = http.post("/api/v1/statuses", headers=author.headers, data={"status": "seen while redis sleeps"}).json()
    liked = http.post(f"/api/v1/statuses/{posted['id']}/favourite", headers=reader.headers).json()
    assert liked["favourited"] is True
    eventually(
        timeout=RECOVERY,
        check=lambda: any(
            s["id"] == posted["id"] for s in http.get("/api/v1/timelines/home", headers=reader.headers).json()
        ),
        what="the post in the reader's feed",
    )
    eventually(
        timeout=RECOVERY,
        check=lambda: (
            http.get(f"/api/v1/statuses/{posted['id']}", headers=author.headers).json()["favourites_count"] == 1
        ),
        what="the like",
    )

    server = kill_hard(stack, "redis")
    try:
        home = fast_client.get("/api/v1/timelines/home", headers=reader.headers)
        assert home.status_code == 200, home.text
        assert home.headers["X-Raygram-Degraded"] == "redis"
        [seen] = [s for s in home.json() if s["id"] == posted["id"]]
        assert seen["content"].endswith("seen while redis sleeps</p>")
        assert seen["favourited"] is True  # the viewer's state comes from the graph's edges

        profile = fast_client.get(f"/api/v1/accounts/{author.id}/statuses", headers=reader.headers)
        assert profile.status_code == 200 and profile.json()[0]["id"] == posted["id"]

        for method, path, data in (
            ("POST", "/api/v1/statuses", {"status": "not now"}),
            ("POST", f"/api/v1/statuses/{posted['id']}/reblog", {}),
            ("POST", f"/api/v1/accounts/{author.id}/unfollow", {}),
        ):
            started = time.monotonic()
            answer = fast_client.request(method, path, headers=reader.headers, data=data)
            assert answer.status_code == 503, (path, answer.status_code, answer.text)
            assert "unavailable" in answer.json()["error"] and int(answer.headers["Retry-After"]) > 0
            print(f"503 for {method} {path} in {time.monotonic() - started:.2f}s")

        health = fast_client.get("/health")
        assert health.status_code == 503
        assert health.json()["redis"] != "ok" and health.json()["graph"] == "ok"
    finally:
        stack.started[stack.started.index(server)] = start_redis_server(stack.state_dir, port=stack.settings.redis_port)

    eventually(timeout=RECOVERY, check=lambda: http.get("/health").status_code == 200, what="health to recover")
    eventually(timeout=RECOVERY, check=lambda: writes_answer(http, author), what="writes to recover on every replica")
    home = http.get("/api/v1/timelines/home", headers=reader.headers)
    assert home.status_code == 200 and "X-Raygram-Degraded" not in home.headers
    assert [s for s in home.json() if s["id"] == posted["id"]]
    # Nothing the failed writes attempted happened.
    assert http.get(f"/api/v1/statuses/{posted['id']}", headers=author.headers).json()["reblogs_count"] == 0
    relationship = http.get("/api/v1/accounts/relationships", params={"id[]": author.id}, headers=reader.headers)
    assert relationship.json()[0]["following"] is True


def test_graph_down_cached_reads_answer_and_writes_fail_fast(
    stack: Stack, http: httpx.Client, fast_client: httpx.Client, make_user: UserFactory
) -> None:
    author, reader = make_user(), make_user()
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.headers).status_code == 200
    posted = http.post("/api/v1/statuses", headers=author.headers, data={"status": "cached"}).json()
    eventually(
        timeout=RECOVERY,
        check=lambda: any(
            s["id"] == posted["id"] for s in http.get("/api/v1/timelines/home", headers=reader.headers).json()
        ),
        what="the post in the reader's feed",
    )

    s = stack.settings
    server = kill_hard(stack, "graph")
    try:
        home = fast_client.get("/api/v1/timelines/home", headers=reader.headers)
        assert home.status_code == 200, home.text
        assert any(p["id"] == posted["id"] for p in home.json())
        liked = fast_client.post(f"/api/v1/statuses/{posted['id']}/favourite", headers=reader.headers)
        assert liked.status_code == 200  # likes are Redis-first; the persister writes them when the graph is back

        started = time.monotonic()
        answer = fast_client.post("/api/v1/statuses", headers=author.headers, data={"status": "not now"})
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["Retry-After"]) > 0
        print(f"503 for a post with the graph down in {time.monotonic() - started:.2f}s")
        health = fast_client.get("/health")
        assert health.status_code == 503 and health.json()["graph"] != "ok" and health.json()["redis"] == "ok"
    finally:
        stack.started[stack.started.index(server)] = start_graph_server(
            stack.state_dir,
            bolt_port=s.graph_bolt_port,
            http_port=s.graph_http_port,
            password=s.neo4j_password,
            database=s.neo4j_database,
            heap=s.graph_heap,
        )

    eventually(lambda: http.get("/health").status_code == 200, timeout=120, what="health to recover")
    eventually(timeout=RECOVERY, check=lambda: writes_answer(http, author), what="writes to recover on every replica")
    eventually(
        timeout=RECOVERY,
        check=lambda: (
            http.get(f"/api/v1/statuses/{posted['id']}", headers=author.headers).json()["favourites_count"] == 1
        ),
        what="the like made while the graph was down",
    )

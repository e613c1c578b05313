"""A reduced chaos run inside ``make test``; the full suite, one kill of every component, is ``make chaos``.

On the session stack, under a constant open-loop mix from a generated
population (``bench.load``), a fan-out worker's process and then Redis are
killed with SIGKILL while work is in flight (Redis is started again on the
same data folder, as ``stack`` starts it, so later tests find it running).
Nothing the client was told succeeded may be missing afterwards, and every
sampled home feed must become exactly what the graph says within a deadline.

The second test pins down a loss the full suite found (a Serve replica killed
while a cold user's first home read was rebuilding their timeline), with the
timing forced instead of waited for.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
import ray

from bench.chaos import ChaosConfig, Suite, actor_process, kill9
from bench.load import PopulationSpec, plan_population
from redis_store.client import connect
from redis_store.timelines import active_key
from stack import Stack
from tests.conftest import UserFactory

CONVERGE_DEADLINE = 60.0  # seconds after the component is back


@pytest.mark.timeout(240)
async def test_kills_under_load_lose_no_acknowledged_write(stack: Stack, tmp_path: Path) -> None:
    if not any(proc.name.startswith("redis") for proc in stack.started):
        pytest.skip("Redis is external (TEST_REDIS_URL): this run cannot kill and restart it")
    settings = stack.settings
    plan = plan_population(
        PopulationSpec(users=80, celebrities=2, celebrity_threshold=settings.celebrity_threshold, seed=3)
    )
    config = ChaosConfig(
        users=plan.users,
        rate=15.0,
        warmup=8.0,
        steady=3.0,
        after=3.0,
        converge_patience=CONVERGE_DEADLINE,
        redis_down=2.0,
        sample=80,
        budget=300.0,
        photo_seconds=120.0,
        faults=("fanout", "redis"),
        seed=3,
    )
    suite = Suite(stack, plan, config, tmp_path)
    await suite.run()
    report = suite.details()

    assert [o.fault for o in suite.outcomes] == ["fanout", "redis"]
    for outcome in suite.outcomes:
        assert outcome.kill.in_flight_seen, f"{outcome.fault}: nothing was in flight at the kill\n{report}"
        assert outcome.losses.checked_posts > 0, f"{outcome.fault}: no post was acknowledged around the kill"
        assert outcome.lost == 0, f"{outcome.fault}: acknowledged writes lost\n{report}"
        assert outcome.converge_seconds is not None, f"{outcome.fault}: feeds never became exact\n{report}"
    assert suite.final is not None and suite.final.lost == 0, report
    assert suite.final_feeds is not None and suite.final_feeds.converged_at is not None, report


async def _replica_pids() -> list[int]:
    pids = []
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] == "serve" and entry["name"].startswith("SERVE_REPLICA::"):
            pids.append((await actor_process(ray.get_actor(entry["name"], namespace="serve")))[0])
    return pids


@pytest.mark.timeout(240)
async def test_a_replica_killed_mid_rebuild_leaves_no_partial_feed(stack: Stack, make_user: UserFactory) -> None:
    graph = next((p for p in stack.started if p.name.startswith("graph")), None)
    if graph is None:
        pytest.skip("the graph server is external (TEST_NEO4J_URI): this run cannot pause it")
    author, reader = make_user(), make_user()
    async with httpx.AsyncClient(base_url=stack.settings.base_url, timeout=30) as http:
        posts = [
            (await http.post("/api/v1/statuses", headers=author.headers, data={"status": f"before {i}"})).json()["id"]
            for i in range(3)
        ]
        followed = await http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.headers)
        assert followed.json()["following"] is True
        assert (await http.get("/api/v1/accounts/verify_credentials", headers=reader.headers)).status_code == 200
        replicas = await _replica_pids()
        graph_pid = graph.running_pid()
        if graph_pid is None or not replicas:
            raise RuntimeError("the graph server or the Serve replicas are not running")

        # The graph paused: the reader's first home read marks them active, then waits on the graph to rebuild.
        redis = connect(stack.settings.redis_url)
        os.kill(graph_pid, signal.SIGSTOP)
        try:
            first_read = asyncio.create_task(http.get("/api/v1/timelines/home", headers=reader.headers))
            for _ in range(5000):
                if await redis.exists(active_key(int(reader.id))):
                    break
                await asyncio.sleep(0.001)
            else:
                raise RuntimeError("the first read never reached the rebuild")
            for pid in replicas:  # the process doing the rebuild dies with it
                kill9(pid, "ray::ServeReplica")
            await asyncio.gather(first_read, return_exceptions=True)
        finally:
            os.kill(graph_pid, signal.SIGCONT)
            await redis.aclose()

        deadline = time.monotonic() + 120
        while True:  # Serve starts new replicas
            try:
                feed = await http.get("/api/v1/timelines/home", headers=reader.headers)
                if feed.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the home feed did not answer 200 after the replicas came back")
            await asyncio.sleep(0.5)
    assert [s["id"] for s in feed.json()] == posts[::-1]

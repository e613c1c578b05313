"""A reduced chaos run inside ``make test``; the full suite, one kill of every component, is ``make chaos``.

On the session stack, under a constant open-loop mix from a generated
population (``bench.load``), a fan-out worker's process and then Redis are
killed with SIGKILL while work is in flight (Redis is started again on the
same data folder, as ``stack`` starts it, so later tests find it running).
Nothing the client was told succeeded may be missing afterwards, and every
sampled home feed must become exactly what the graph says within a deadline.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import ChaosConfig, Suite
from bench.load import PopulationSpec, plan_population
from stack import Stack

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

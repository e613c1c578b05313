"""Snowflake ids, the graph schema and the Redis rate limiter, against the real stores."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from ids import SnowflakeGenerator, id_to_ms
from redis_store.client import connect
from redis_store.ratelimit import RateLimiter
from stack import Stack


def test_snowflakes_are_unique_time_ordered_and_fit_64_bits() -> None:
    generator = SnowflakeGenerator(worker_id=5)
    before = int(time.time() * 1000)
    ids = [generator.next_id() for _ in range(20_000)]
    after = int(time.time() * 1000)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(0 < i < 2**63 for i in ids)
    assert before <= id_to_ms(ids[0]) <= id_to_ms(ids[-1]) <= after + 5
    other = SnowflakeGenerator(worker_id=6).next_id()
    assert other not in ids
    with pytest.raises(ValueError):
        SnowflakeGenerator(worker_id=1024)


def test_schema_applies_twice_without_error(stack: Stack) -> None:
    from graph.schema import apply_schema

    s = stack.settings
    apply_schema(s.neo4j_uri, s.neo4j_user, s.neo4j_password, s.neo4j_database)
    apply_schema(s.neo4j_uri, s.neo4j_user, s.neo4j_password, s.neo4j_database)


def test_embedded_redis_runs_with_aof(stack: Stack) -> None:
    client = redis.Redis.from_url(stack.settings.redis_url, decode_responses=True)
    assert client.config_get("appendonly")["appendonly"] == "yes"
    assert client.config_get("bind")["bind"].startswith("127.0.0.1")


async def test_rate_limiter_allows_the_limit_then_refuses_with_retry_after(stack: Stack) -> None:
    client = connect(stack.settings.redis_url)
    limiter = RateLimiter(client)
    subject = uuid.uuid4().hex
    decisions = [await limiter.hit("test", subject, limit=3, window_seconds=60) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    refused = decisions[-1].headers()
    assert 1 <= int(refused["Retry-After"]) <= 60 and refused["X-RateLimit-Limit"] == "3"
    await client.aclose()


def test_installed_modules_import_outside_the_checkout(tmp_path: Path) -> None:
    """``raygram up`` runs from the venv's console script, where the checkout is not on sys.path."""
    modules = "cli, serve_app, stack, metrics, ops_status, actors.fanout, actors.notifier, actors.persister, "
    modules += "media.tasks"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", f"import {modules}"], cwd=tmp_path, capture_output=True, text=True, check=False, env=env
    )
    assert result.returncode == 0, result.stderr

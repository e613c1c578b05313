"""Replicas and settings change through the Serve config on a running stack, under load; no request fails.

The stack runs its Serve application from the declarative config that
``deploy/serve.yaml`` spells out (``serve_app.serve_config``). The tests
apply edited copies of it to the running session stack, the way an
operator's ``serve deploy`` or ``raygram serve apply`` does, while an
open-loop load (requests sent at a fixed rate, whatever the answers' speed)
reads home feeds: replicas go to three, then one, then back to where they
were; a setting changed through ``raygram serve apply`` rolls the replicas
over to it, and the stack's own config rolls them back. Every request is
counted, none may fail, and requests must have been answered while each
change was under way. (A roll-over once answered some requests 401: while the
new version was built, HAProxy sent them to Serve's fallback proxy, on a port
every stack on the machine shared; ``Stack.serve_env`` gives each its own.)
The stack ends as it started, so the tests after these see the usual
replicas and settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from ray import serve
from ray.serve.schema import ServeDeploySchema

import serve_app
from config import Settings
from stack import Stack
from tests.conftest import UserFactory
from tests.test_feed import eventually

ROOT = Path(__file__).resolve().parent.parent
RATE = 20  # requests per second, open loop


@dataclass
class Load:
    """An open loop of home-feed reads in a thread of its own; outcomes by the time they were answered."""

    base_url: str
    headers: dict[str, str]
    answered: list[tuple[float, int | str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # status, headers and body of the first few failed
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as client:
            tasks = []
            start = time.monotonic()
            sent = 0
            while not self.stop.is_set():
                tasks.append(asyncio.create_task(self._one(client)))
                sent += 1
                await asyncio.sleep(max(0.0, start + sent / RATE - time.monotonic()))
            await asyncio.gather(*tasks)

    async def _one(self, client: httpx.AsyncClient) -> None:
        try:
            response = await client.get("/api/v1/timelines/home", headers=self.headers)
            outcome: int | str = response.status_code
            if outcome != 200 and len(self.failures) < 10:
                self.failures.append(f"{outcome} {dict(response.headers)} {response.text[:200]}")
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        self.answered.append((time.monotonic(), outcome))

    def between(self, start: float, end: float) -> int:
        return sum(1 for at, _ in self.answered if start <= at <= end)

    def assert_served_through(self, changes: list[tuple[str, float, float]]) -> None:
        """No request failed, and requests were answered while each change (name, start, end) went on."""
        failed = [outcome for _, outcome in self.answered if outcome != 200]
        assert not failed, f"{len(failed)} of {len(self.answered)} requests failed: {self.failures[:3]}"
        for change, start, end in changes:
            assert self.between(start, end) > 0, f"no request answered while going to {change}"


@contextlib.contextmanager
def running(load: Load) -> Iterator[Load]:
    """The load, running in its thread from its first answers until the block ends."""
    thread = threading.Thread(target=load.run)
    thread.start()
    try:
        eventually(lambda: len(load.answered) >= RATE, what="the load to be answered")
        yield load
    finally:
        load.stop.set()
        thread.join()


def replicas_running() -> tuple[int, int]:
    """(running, all) replicas of the API deployment."""
    states = serve.status().applications[serve_app.APP_NAME].deployments[serve_app.DEPLOYMENT].replica_states
    return states.get("RUNNING", 0), sum(states.values())


def with_replicas(config: dict, count: int, env_vars: dict[str, str] | None = None) -> dict:
    changed = copy.deepcopy(config)
    application = changed["applications"][0]
    application["deployments"][0]["autoscaling_config"].update(
        min_replicas=count, initial_replicas=count, max_replicas=count
    )
    if env_vars:
        application["runtime_env"] = {"env_vars": env_vars}
    return changed


def cli_apply(config: dict, folder: Path, state_dir: Path) -> None:
    """``raygram serve apply`` with the config in a file, as an operator runs it."""
    path = folder / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [Path(sys.executable).parent / "raygram", "serve", "apply", str(path), "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_serve_yaml_is_the_stacks_config_in_serve_deploy_format() -> None:
    """deploy/serve.yaml is what ``serve deploy`` reads, for the application and deployment the stack runs."""
    config = yaml.safe_load((ROOT / "deploy" / "serve.yaml").read_text())
    schema = ServeDeploySchema.model_validate(config)
    ours = ServeDeploySchema.model_validate(serve_app.serve_config(Settings()))
    (app,), (stack_app,) = schema.applications, ours.applications
    assert (app.name, app.import_path, app.route_prefix) == (stack_app.name, stack_app.import_path, "/")
    assert [d.name for d in app.deployments] == [d.name for d in stack_app.deployments] == [serve_app.DEPLOYMENT]
    scaling = app.deployments[0].autoscaling_config
    assert scaling["min_replicas"] <= scaling["initial_replicas"] <= scaling["max_replicas"]
    assert not {"REDIS_URL", "NEO4J_PASSWORD", "MEDIA_URL_SECRET"} & set(app.runtime_env.get("env_vars", {}))


def test_settings_give_the_autoscaling_config() -> None:
    assert Settings(serve_replicas=2).serve_autoscaling == {
        "min_replicas": 2,
        "initial_replicas": 2,
        "max_replicas": 2,
        "target_ongoing_requests": 2.0,
    }
    scaling = Settings(serve_replicas=1, serve_min_replicas=2, serve_max_replicas=6).serve_autoscaling
    assert (scaling["min_replicas"], scaling["initial_replicas"], scaling["max_replicas"]) == (2, 2, 6)
    with pytest.raises(ValueError, match="SERVE_MIN_REPLICAS"):
        _ = Settings(serve_min_replicas=4, serve_max_replicas=2).serve_autoscaling


def instance_title(http: httpx.Client) -> str:
    return http.get("/api/v1/instance").json()["title"]


def test_replicas_up_and_down_under_load_fail_no_request(stack: Stack, make_user: UserFactory) -> None:
    config = serve_app.serve_config(stack.settings)
    original, _ = replicas_running()
    changes = []
    with running(Load(stack.settings.base_url, make_user().headers)) as load:
        for count in (3, 1, original):
            started = time.monotonic()
            serve_app.apply_config(with_replicas(config, count))
            eventually(lambda n=count: replicas_running() == (n, n), timeout=90, what=f"{count} replicas")
            changes.append((f"{count} replicas", started, time.monotonic()))
    load.assert_served_through(changes)
    assert replicas_running() == (original, original)


def test_a_setting_changed_by_raygram_serve_apply_under_load_fails_no_request(
    stack: Stack, http: httpx.Client, make_user: UserFactory, tmp_path: Path
) -> None:
    config = serve_app.serve_config(stack.settings)
    original, _ = replicas_running()
    title = instance_title(http)
    changes = []
    with running(Load(stack.settings.base_url, make_user().headers)) as load:
        started = time.monotonic()
        cli_apply(
            with_replicas(config, original, {"INSTANCE_TITLE": "raygram, reconfigured"}), tmp_path, stack.state_dir
        )
        eventually(lambda: instance_title(http) == "raygram, reconfigured", timeout=90, what="the new title")
        eventually(lambda: replicas_running() == (original, original), timeout=90, what="the replicas rolled over")
        changes.append(("the new setting", started, time.monotonic()))
        started = time.monotonic()
        serve_app.apply_config(config)  # back to the stack's own config
        eventually(lambda: instance_title(http) == title, timeout=90, what="the title back")
        eventually(lambda: replicas_running() == (original, original), timeout=90, what="the replicas rolled back")
        changes.append(("the stack's own config", started, time.monotonic()))
    load.assert_served_through(changes)

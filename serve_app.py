"""The Ray Serve application: the FastAPI ingress as a Serve deployment, and the Serve config that runs it.

``serve run serve_app:app`` works once ``REDIS_URL`` and ``NEO4J_URI`` point at
running services; ``raygram up`` starts those and applies ``serve_config``,
the same kind of file as ``deploy/serve.yaml``: Serve's declarative config
(what ``serve deploy`` reads), so that an operator's later config is an
update of the running application (replicas and autoscaling change in place;
new settings, given as runtime environment variables, roll the replicas over
one by one) rather than a second deployment (docs/operations.md).

Each replica builds the FastAPI app when it starts (``build_app``), so
importing this module, which building the application does, stays cheap: the
building process does not load the HTTP app, the services and the store
clients only to hand the app to Serve, which would pickle it and ship it to
the replicas that load it all again.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve.schema import LoggingConfig

from config import Settings, get_settings

APP_NAME = "raygram"
DEPLOYMENT = "RaygramApi"
IMPORT_PATH = "serve_app:app"


def build_app() -> FastAPI:
    """The HTTP app; runs in each replica as it starts."""
    from api.app import create_app

    return create_app()


@serve.deployment(
    name=DEPLOYMENT,
    autoscaling_config=get_settings().serve_autoscaling,
    ray_actor_options={"num_cpus": 0},
    max_ongoing_requests=256,
    # A log line per request cost about a tenth of the replica's CPU on a feed read (bench/feed_bench.py);
    # request metrics stay in the dashboard, errors are still logged.
    logging_config=LoggingConfig(enable_access_log=False),
)
@serve.ingress(build_app)
class RaygramApi:
    """HTTP ingress; the FastAPI lifespan builds the store clients in each replica."""


app = RaygramApi.bind()


def serve_config(settings: Settings, env_vars: dict[str, str] | None = None) -> dict[str, Any]:
    """Serve's declarative config for raygram (``ServeDeploySchema``), as ``deploy/serve.yaml`` writes it.

    ``env_vars``: the settings for the replicas' runtime environment, needed where their processes do not inherit
    them (a Ray cluster); a Ray this stack started passes its environment on to every process it starts.
    """
    application: dict[str, Any] = {
        "name": APP_NAME,
        "route_prefix": "/",
        "import_path": IMPORT_PATH,
        "deployments": [{"name": DEPLOYMENT, "autoscaling_config": settings.serve_autoscaling}],
    }
    if env_vars:
        application["runtime_env"] = {"env_vars": env_vars}
    return {
        "http_options": {"host": settings.http_host, "port": settings.http_port},
        "applications": [application],
    }


def apply_config(config: dict[str, Any], timeout: float = 120.0) -> None:
    """Apply a Serve config to the running Serve (what ``serve deploy`` does through the dashboard) and wait
    until its applications run.

    Through the Serve controller, so that it works without the dashboard too (``raygram serve apply``).
    ``http_options`` apply only when Serve starts; a running Serve keeps its own.
    """
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(config)
    _get_global_client().deploy_apps(schema)
    wait_running([a.name for a in schema.applications], timeout)


def wait_running(app_names: list[str], timeout: float) -> None:
    """Wait until every named application is RUNNING (every deployment at its target); raise if one failed."""
    deadline = time.monotonic() + timeout
    while True:
        apps = serve.status().applications
        states = {name: apps.get(name) for name in app_names}
        failed = {n: a.message for n, a in states.items() if a is not None and a.status == "DEPLOY_FAILED"}
        if failed:
            raise RuntimeError(f"Serve could not deploy {failed}")
        if all(a is not None and a.status == "RUNNING" for a in states.values()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"Serve applications not running after {timeout:.0f}s: {states}")
        time.sleep(0.5)

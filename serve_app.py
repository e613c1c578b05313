"""The Ray Serve application: the FastAPI ingress as a Serve deployment.

``serve run serve_app:app`` works once ``REDIS_URL`` and ``NEO4J_URI`` point at
running services; ``raygram up`` starts those and deploys ``app`` itself.

Each replica builds the FastAPI app when it starts (``build_app``), so
importing this module, which deploying does, stays cheap: the deploying
process does not load the HTTP app, the services and the store clients only
to hand the app to Serve, which would pickle it and ship it to the replicas
that load it all again (``stack.deploy_app``).
"""

from __future__ import annotations

from fastapi import FastAPI
from ray import serve
from ray.serve.schema import LoggingConfig

from config import get_settings


def build_app() -> FastAPI:
    """The HTTP app; runs in each replica as it starts."""
    from api.app import create_app

    return create_app()


@serve.deployment(
    name="RaygramApi",
    num_replicas=get_settings().serve_replicas,
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

"""The Ray Serve application: the FastAPI ingress as a Serve deployment.

``serve run serve_app:app`` works once ``REDIS_URL`` and ``NEO4J_URI`` point at
running services; ``raygram up`` starts those and deploys ``app`` itself.
"""

from __future__ import annotations

from ray import serve
from ray.serve.schema import LoggingConfig

from api.app import create_app
from config import get_settings

fastapi_app = create_app()


@serve.deployment(
    name="RaygramApi",
    num_replicas=get_settings().serve_replicas,
    ray_actor_options={"num_cpus": 0},
    max_ongoing_requests=256,
    # A log line per request cost about a tenth of the replica's CPU on a feed read (bench/feed_bench.py);
    # request metrics stay in the dashboard, errors are still logged.
    logging_config=LoggingConfig(enable_access_log=False),
)
@serve.ingress(fastapi_app)
class RaygramApi:
    """HTTP ingress; the FastAPI lifespan builds the store clients in each replica."""


app = RaygramApi.bind()

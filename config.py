"""One settings object for the whole stack, read from environment variables.

Every process (the CLI, Serve replicas, actors, remote tasks) builds its
settings the same way, so pointing raygram at real deployments is a matter of
exporting ``REDIS_URL``, ``NEO4J_URI`` and friends.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration; field names map to upper-case env variables."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # Where embedded services keep their data, pid files and logs.
    state_dir: Path = Path(".raygram")

    # External services; empty means "start the embedded one".
    redis_url: str = ""
    neo4j_uri: str = ""
    neo4j_user: str = "root"
    neo4j_password: str = "raygram-local-graph"
    neo4j_database: str = "raygram"
    ray_address: str = ""

    # Embedded service ports (used only when the service is embedded).
    redis_port: int = 6390
    graph_bolt_port: int = 7687
    graph_http_port: int = 2480
    graph_heap: str = "512m"

    # HTTP API.
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    public_url: str = ""  # what clients see; defaults to http://host:port
    serve_replicas: int = 1
    ray_namespace: str = "raygram"

    # Instance metadata.
    instance_domain: str = "localhost"
    instance_title: str = "raygram"
    instance_description: str = "An actor-based photo and video sharing server."
    contact_email: str = ""

    # Accounts and auth.
    username_max: int = 30
    display_name_max: int = 30
    note_max: int = 500
    password_min: int = 8
    password_max: int = 128
    token_cache_seconds: int = 300
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 2
    signup_rate_limit: int = 30  # sign-ups per client address per window
    login_rate_limit: int = 60  # password grants per client address per window
    rate_limit_window_seconds: int = 300

    @property
    def base_url(self) -> str:
        """The public base URL clients use to reach the API."""
        return self.public_url.rstrip("/") or f"http://{self.http_host}:{self.http_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()

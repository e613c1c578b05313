"""Session fixtures: one real Redis, one real Bolt graph server, one real Ray + Serve.

They start once per test session on free loopback ports, in a temporary state
folder, through the same ``stack.Stack`` that ``raygram up`` uses, and stop
only the processes they started.

Media tests take the ``media`` fixture and run twice: against the stack's own
app on the local disk, and against SeaweedFS, a real S3 object store. That
second run does not start a second stack: the same Ray, Redis and graph also
run a second Serve application (one replica, under ``/s3``) whose replicas,
and the media tasks they launch, read an S3 ``MEDIA_STORE_URL`` and a shared
``MEDIA_URL_SECRET`` from their runtime environment.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import neo4j
import pytest
import redis

from config import Settings
from launcher import free_port
from media.store import ObjectStore, object_store
from stack import Stack, wait_for_http

# Cheap password hashing keeps sign-up fast in tests; production keeps argon2's defaults.
TEST_ENV = {
    "ARGON2_TIME_COST": "1",
    "ARGON2_MEMORY_KIB": "8192",
    "ARGON2_PARALLELISM": "1",
    "SIGNUP_RATE_LIMIT": "100000",  # every test signs up from 127.0.0.1
    # Small numbers so tests cross the celebrity threshold and page followers.
    "CELEBRITY_THRESHOLD": "3",
    "CELEBRITY_DEMOTE_BELOW": "2",
    "FOLLOWER_PAGE_SIZE": "50",
    "FANOUT_CLAIM_IDLE_MS": "2000",
    "SWEEP_INTERVAL_SECONDS": "1",
    "SWEEP_GRACE_SECONDS": "2",
    "FAVOURITE_RATE_LIMIT": "40",
    "STREAMING_HEARTBEAT_SECONDS": "1",
    "STORY_EXPIRY_INTERVAL_SECONDS": "1",  # tests/test_stories.py waits for the expiry actor's clean-up
    # Metrics reach the endpoint within a second or two (tests/test_metrics.py waits for them).
    "METRICS_REPORT_INTERVAL_MS": "1000",
    "METRICS_SAMPLE_SECONDS": "1",
    "TRENDS_INTERVAL_SECONDS": "2",  # trends and explore refresh often enough for tests to wait on them
}


# ``make test-cluster``: the same tests against a three-master Redis Cluster (Valkey in cluster mode) that the
# stack builds from the pinned binary (redis_store.server.start_redis_cluster), instead of one Redis server.
REDIS_CLUSTER = os.environ.get("TEST_REDIS_CLUSTER") == "1"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack.isolated(
        tmp_path_factory.mktemp("raygram-state"),
        "test",
        TEST_ENV,
        redis_url=os.environ.get("TEST_REDIS_URL", ""),
        neo4j_uri=os.environ.get("TEST_NEO4J_URI", ""),
        **({"redis_cluster_nodes": "3"} if REDIS_CLUSTER else {}),
    )
    settings = running.settings
    try:
        running.start_services()
        running.start_ray(dashboard=False, num_cpus=4)
        running.deploy()
        wait_for_http(f"{settings.base_url}/health")
        yield running
    finally:
        running.stop()


@dataclass
class MediaBackend:
    """One object store the media suite runs against, and the app that uses it."""

    name: str
    base_url: str
    http: httpx.Client
    settings: Settings  # what that app's replicas and tasks read
    restart: Callable[[], None] | None = None  # SeaweedFS only: start it again (after a test killed it)

    def store(self) -> ObjectStore:
        return object_store(self.settings)

    def keys(self) -> list[str]:
        """Every object key in the store, sorted."""
        store = self.store()
        if self.settings.media_store_url:
            import obstore

            return sorted(meta["path"] for batch in obstore.list(store.store) for meta in batch)
        root = store.root
        return sorted(
            str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.is_relative_to(store.tmp)
        )

    def scratch_files(self) -> list[Path]:
        """Local scratch files of the store (staged uploads, fetched originals): none once a request is over."""
        return sorted(p for p in self.store().tmp.rglob("*") if p.is_file())


@pytest.fixture(scope="session")
def local_media(stack: Stack, http: httpx.Client) -> MediaBackend:
    return MediaBackend("local", stack.settings.base_url, http, stack.settings)


@pytest.fixture(scope="session")
def seaweedfs_media(stack: Stack) -> Iterator[MediaBackend]:
    """SeaweedFS started by the project's launcher, and a second Serve app ("/s3") whose media live there."""
    from ray import serve

    import serve_app
    from media import seaweedfs

    state = stack.state_dir
    s3_port = free_port()
    key, secret = seaweedfs.credentials(state)

    def start() -> None:
        started.append(seaweedfs.start_seaweedfs(state, s3_port=s3_port, access_key_id=key, secret_access_key=secret))

    started: list = []
    start()
    base = f"{stack.settings.base_url}/s3"
    env = {
        "MEDIA_STORE_URL": seaweedfs.store_url(s3_port),
        "MEDIA_S3_ACCESS_KEY_ID": key,
        "MEDIA_S3_SECRET_ACCESS_KEY": secret,
        "MEDIA_URL_SECRET": uuid.uuid4().hex,
        "PUBLIC_URL": base,
    }
    settings = stack.settings.model_copy(update={name.lower(): value for name, value in env.items()})
    options = {"num_cpus": 0, "runtime_env": {"env_vars": env}}  # its tasks inherit the runtime environment
    app = serve_app.RaygramApi.options(name="RaygramApiS3", num_replicas=1, ray_actor_options=options).bind()
    try:
        serve.run(app, name="raygram-s3", route_prefix="/s3")
        wait_for_http(f"{base}/health")
        with httpx.Client(base_url=base, timeout=30) as client:
            yield MediaBackend("seaweedfs", base, client, settings, restart=start)
    finally:
        try:
            serve.delete("raygram-s3")
        finally:
            for proc in started:
                proc.stop()


@pytest.fixture(scope="module", params=["local", "seaweedfs"])
def media(request: pytest.FixtureRequest) -> MediaBackend:
    """The media suite runs once per object store: module by module, local disk first."""
    return request.getfixturevalue(f"{request.param}_media")


@pytest.fixture(scope="session")
def base_url(stack: Stack) -> str:
    return stack.settings.base_url


@pytest.fixture(scope="session")
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


@dataclass
class OAuthApp:
    client_id: str
    client_secret: str
    app_token: str


@dataclass
class User:
    id: str
    username: str
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def unique_name(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def oauth_app(http: httpx.Client) -> OAuthApp:
    app = http.post("/api/v1/apps", data={"client_name": "tests", "scopes": "read write follow push"}).json()
    token = http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
            "scope": "read write follow push",
        },
    ).json()["access_token"]
    return OAuthApp(app["client_id"], app["client_secret"], token)


UserFactory = Callable[..., User]


@pytest.fixture(scope="session")
def make_user(http: httpx.Client, oauth_app: OAuthApp) -> UserFactory:
    """Signs up a fresh user over HTTP (a unique username unless one is given)."""

    def make(username: str | None = None) -> User:
        username = username or unique_name()
        email = f"{username}@example.org"
        password = "correct horse battery"
        response = http.post(
            "/api/v1/accounts",
            headers={"Authorization": f"Bearer {oauth_app.app_token}"},
            data={"username": username, "email": email, "password": password, "agreement": "true"},
        )
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        me = http.get("/api/v1/accounts/verify_credentials", headers={"Authorization": f"Bearer {token}"}).json()
        return User(me["id"], username, email, password, token)

    return make


@pytest.fixture(scope="session")
def redis_client(stack: Stack) -> Iterator[redis.Redis]:
    """Direct access to the real Redis, for white-box checks and for simulating failures."""
    s = stack.settings
    if s.redis_cluster_urls:
        client = redis.RedisCluster.from_url(s.redis_cluster_urls.split(",")[0], decode_responses=True)
    else:
        client = redis.Redis.from_url(s.redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="session")
def graph_session(stack: Stack) -> Iterator[neo4j.Session]:
    """A Bolt session on the real graph, for seeding large follower sets and simulating crashes."""
    s = stack.settings
    with neo4j.GraphDatabase.driver(s.neo4j_uri, auth=(s.neo4j_user, s.neo4j_password)) as driver:
        with driver.session(database=s.neo4j_database) as session:
            yield session

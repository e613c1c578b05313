"""One settings object for the whole stack, read from environment variables.

Every process (the CLI, Serve replicas, actors, remote tasks) builds its
settings the same way, so pointing raygram at real deployments is a matter of
exporting ``REDIS_URL``, ``NEO4J_URI`` and friends.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration; field names map to upper-case env variables."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # Where embedded services keep their data, pid files and logs.
    state_dir: Path = Path(".raygram")

    # External services; empty means "start the embedded one".
    redis_url: str = ""
    # A Redis Cluster instead (redis_store.client.redis_from): its nodes' URLs, comma-separated (any few of them;
    # the client discovers the rest). REDIS_CLUSTER_NODES > 0 with no URLs starts an embedded cluster of that many
    # masters (redis_store.server.start_redis_cluster), on ports from REDIS_PORT up.
    redis_cluster_urls: str = ""
    redis_cluster_nodes: int = 0
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
    # Serve replicas of the API (serve_app.autoscaling_config). SERVE_REPLICAS start, one per core here: the
    # replica's CPU bounds feed reads (bench/feed_bench.py). Serve keeps between the min and the max (0: as many as
    # SERVE_REPLICAS), adding replicas while they average more than SERVE_TARGET_ONGOING_REQUESTS requests in flight;
    # a replica is CPU-bound, so a few in flight each is already a queue. deploy/serve.yaml changes them live.
    serve_replicas: int = 2
    serve_min_replicas: int = 0
    serve_max_replicas: int = 0
    serve_target_ongoing_requests: float = 2.0
    ray_namespace: str = "raygram"
    # Metrics (metrics.py): the Prometheus endpoint of a local Ray's metrics agent (127.0.0.1), how often each
    # process reports to it, and how often Redis' gauges are sampled (actors.sampler).
    metrics_export_port: int = 8080
    metrics_report_interval_ms: int = 10_000
    metrics_sample_seconds: float = 10.0

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

    # Posts and the feed (docs/architecture.md).
    status_max_chars: int = 2200
    celebrity_threshold: int = 10_000  # followers at which an author switches to pull
    celebrity_demote_below: int = 0  # 0 means 80 % of the threshold (hysteresis)
    inbox_shards: int = 4  # routing: users map to shards by a stable hash
    outbox_shards: int = 2
    fanout_workers: int = 2  # fan-out consumers in the stream group
    # Processes hosting them (actors.registry): a Ray worker process each costs 60-100 MB (bench/footprint.py).
    inbox_hosts: int = 1
    outbox_hosts: int = 1
    consumer_hosts: int = 1  # stream consumers: fan-out spread over them, notifier and like persister on the first
    # Where Ray places the host actors and media tasks (docs/operations.md, "Running on a Ray cluster"). DEFAULT:
    # Ray's own choice, which fills the node it is asked on first (one machine: the same either way). SPREAD: over
    # the nodes alive, so a cluster shares the work, and a host of a lost node restarts on a surviving one.
    ray_scheduling: Literal["DEFAULT", "SPREAD"] = "DEFAULT"
    timeline_max: int = 800
    outbox_max: int = 800
    inactive_days: int = 30
    follower_page_size: int = 5000
    follower_list_days: int = 30  # an author's follower list in Redis expires this long after their last fan-out
    backfill_count: int = 100
    rebuild_window_days: int = 90  # a cold timeline is rebuilt from posts this recent
    status_cache_seconds: int = 60
    account_cache_seconds: int = 60
    event_stream_max: int = 1_000_000
    fanout_claim_idle_ms: int = 30_000  # pending events of a dead worker are re-claimed after this
    sweep_interval_seconds: float = 15.0
    sweep_grace_seconds: float = 30.0  # an undelivered post older than this is re-emitted
    # Background consumers (actors.consumer): an event whose handler failed on this many deliveries goes to
    # its group's dead-letter stream (``raygram events dead`` / ``replay``), which keeps this many entries.
    event_max_attempts: int = 5
    event_retry_seconds: float = 1.0  # pause before events whose handler failed are tried again
    event_dead_letter_max: int = 10_000
    # Durable Redis writes (redis_store.durability): WAITAOF before a like, marker or event is acknowledged.
    # False only for a Redis without an append-only file (then a Redis crash can lose acknowledged likes).
    redis_wait_fsync: bool = True
    redis_fsync_timeout_ms: int = 2000

    # Discovery: follow suggestions are cached per user (and the popular list for everyone) this long.
    suggestions_cache_seconds: int = 300
    # Discovery (docs/architecture.md): tag and public timelines in Redis, trends refreshed on a timer.
    tag_timeline_max: int = 10_000  # posts kept per tag timeline (and per tag's media timeline)
    public_timeline_max: int = 10_000
    trends_interval_seconds: float = 300.0
    explore_pool: int = 500  # the newest public posts with media that the explore grid ranks
    tag_pull_threshold: int = 0  # followers at which a tag is pulled at read time; 0: the celebrity threshold

    # Media (docs/architecture.md). Limits are checked before anything is stored.
    media_image_max_bytes: int = 16 * 1024 * 1024
    media_video_max_bytes: int = 99 * 1024 * 1024
    media_image_max_pixels: int = 50_000_000  # a 48-megapixel phone photo fits; bigger is a bomb
    media_image_max_side: int = 16_384
    media_video_max_pixels: int = 3840 * 2160
    media_video_max_seconds: float = 600.0
    media_description_max: int = 1500
    media_max_per_status: int = 10
    # The key of signed media URLs. Empty: generated once and kept under state_dir, which only one machine
    # sees, so a deployment of several nodes (``multi_node``) refuses to start without it (media.urls).
    media_url_secret: str = ""
    # Where media objects live (docs/operations.md#media-storage). Empty: files under state_dir/media, on this
    # machine. ``s3://bucket[/prefix]?endpoint=http://host:port&region=...``: an S3 bucket every node reaches.
    media_store_url: str = ""
    media_s3_access_key_id: str = ""  # empty: AWS_ACCESS_KEY_ID and the rest of the AWS_* environment
    media_s3_secret_access_key: str = ""
    # "seaweedfs": `raygram up` starts an embedded SeaweedFS (media.seaweedfs) and points media_store_url at it.
    media_store: str = "local"
    seaweedfs_s3_port: int = 8333  # its S3 gateway; its other ports are picked once and kept under state_dir
    cdn_base_url: str = ""  # replaces the scheme and host of media URLs
    media_url_ttl_seconds: int = 86_400
    media_sync_wait_seconds: float = 3.0  # how long an upload of a small image waits for its variants
    media_sync_max_pixels: int = 12_000_000  # images up to this size are "small"
    media_stale_seconds: float = 600.0  # a record still processing this long after its last attempt is re-launched
    media_sweep_interval_seconds: float = 120.0
    media_task_max_retries: int = 3

    # Stories (docs/architecture.md, "Stories"): Pixelfed's API, 24 hours each.
    story_lifetime_seconds: int = 86_400  # a story is served until exactly this long after it was published
    story_max_active: int = 20  # active stories per account; publishing one more is refused
    story_min_duration: int = 3  # seconds a story is shown for (the client's timer), as published
    story_max_duration: int = 30
    story_image_max_bytes: int = 16 * 1024 * 1024
    story_video_max_bytes: int = 50 * 1024 * 1024
    story_video_max_seconds: float = 60.0  # "short videos": longer ones are refused at upload
    story_tray_max: int = 2000  # entries in a user's story tray (authors followed x their active stories)
    story_keep_media: bool = False  # whether an expired story's upload is kept (archive) or deleted
    story_expiry_interval_seconds: float = 10.0  # how often the expiry actor prunes trays and expires stories

    # Interactions (issue: likes, comments, shares, notifications).
    notifications_max: int = 800
    favourites_load_limit: int = 1000  # a user's likes loaded into Redis after a cold start, and kept there at most
    like_count_ttl_seconds: int = 3 * 86_400  # a post's live like counter expires this long after its last change
    streaming_heartbeat_seconds: float = 15.0
    # Open live streams (SSE or WebSocket) at once, over all replicas. Behind a proxy that hides client
    # addresses every client shares one address, so that cap is generous.
    streaming_max_per_account: int = 16
    streaming_max_per_address: int = 512
    # Per-account rate limits: (count, window seconds), Mastodon-like defaults.
    post_rate_limit: int = 300
    post_rate_window: int = 10_800
    comment_rate_limit: int = 300
    comment_rate_window: int = 3_600
    favourite_rate_limit: int = 600
    favourite_rate_window: int = 3_600
    follow_rate_limit: int = 400
    follow_rate_window: int = 86_400
    # Comment spam heuristics.
    spam_same_text_posts: int = 3  # the same comment text on this many different posts within the window
    spam_window_seconds: int = 3_600
    new_account_hours: int = 24
    new_account_link_comments: int = 3  # comments with links from a new account within 10 minutes

    @property
    def demote_below(self) -> int:
        return self.celebrity_demote_below or max(1, int(self.celebrity_threshold * 0.8))

    @property
    def serve_autoscaling(self) -> dict[str, float]:
        """The API deployment's Serve ``autoscaling_config``; min equal to max is a fixed number of replicas."""
        low = self.serve_min_replicas or self.serve_replicas
        high = self.serve_max_replicas or self.serve_replicas
        if not 1 <= low <= high:
            raise ValueError(f"SERVE_MIN_REPLICAS ({low}) must be at least 1 and at most SERVE_MAX_REPLICAS ({high})")
        return {
            "min_replicas": low,
            "initial_replicas": min(max(self.serve_replicas, low), high),
            "max_replicas": high,
            "target_ongoing_requests": self.serve_target_ongoing_requests,
        }

    @property
    def multi_node(self) -> bool:
        """Whether processes on other machines may serve or process media: a Ray cluster joined at an address
        that is not this machine's, or media in S3. Such a deployment needs ``media_url_secret`` set alike on
        every node; a secret kept in one machine's state folder would differ from node to node."""
        if self.media_store_url or self.media_store == "seaweedfs":
            return True
        host = self.ray_address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
        return bool(self.ray_address) and self.ray_address != "local" and host not in ("127.0.0.1", "localhost", "::1")

    @property
    def base_url(self) -> str:
        """The public base URL clients use to reach the API."""
        return self.public_url.rstrip("/") or f"http://{self.http_host}:{self.http_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()

"""Every raygram metric, defined once, recorded through ``ray.util.metrics``.

Ray's metrics agent on each node serves them on its Prometheus endpoint (the
``METRICS_EXPORT_PORT`` a local stack gives it; ``docs/operations.md``), under
the exported names ``Metric.exported`` gives: Ray prefixes ``ray_`` and
Prometheus adds ``_total`` to counters and ``_bucket``/``_count``/``_sum`` to
histograms. The table below is what ``raygram status``
(``services.status_report``), the Grafana dashboard
(``deploy/grafana-raygram.json``) and the operator's page read, so a metric
is added here or nowhere.

Rates (likes per second, say) are ``rate()`` over the counters; ratios (cache
hits, upload success) are one counter's series over the sum of its outcomes.
The Ray metric objects are made on first use in the process that records, and
only inside Ray: outside it (the CLI, unit tests) recording does nothing. Ray
aggregates a histogram's observations into its buckets, so its ``_sum`` is
approximate (bucket midpoints); counts and buckets are exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

import ray

LATENCY_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
LAG_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
PROCESSING_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)

Kind = Literal["counter", "histogram", "gauge"]


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Kind
    description: str
    tags: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = ()

    @property
    def exported(self) -> str:
        """The name on Ray's Prometheus endpoint (histograms add ``_bucket``, ``_count`` and ``_sum`` to it)."""
        return f"ray_{self.name}_total" if self.kind == "counter" else f"ray_{self.name}"


FEED_LOAD = Metric(
    "raygram_feed_load_ms",
    "histogram",
    "Home feed page load in the replica, by path: inbox (the timeline was kept), rebuild (rebuilt from the graph "
    "first), degraded (pulled from the graph while Redis is down)",
    ("path",),
    LATENCY_MS,
)
CACHE_LOOKUPS = Metric(
    "raygram_cache_lookups",
    "counter",
    "Cache lookups by cache (timeline, status, account) and result (hit, miss); a timeline miss is a rebuild",
    ("cache", "result"),
)
POSTS = Metric(
    "raygram_posts",
    "counter",
    "Posts and comments by kind (post, comment) and outcome (created, failed: the write did not commit)",
    ("kind", "outcome"),
)
LIKES = Metric("raygram_likes", "counter", "Likes made (a like of a post already liked is not counted)")
MEDIA_UPLOADS = Metric(
    "raygram_media_uploads",
    "counter",
    "Media uploads by kind and outcome: accepted, failed (storing it failed), or the reason of a refusal "
    "(too_large, unsupported, invalid)",
    ("kind", "outcome"),
)
MEDIA_PROCESSED = Metric(
    "raygram_media_processed",
    "counter",
    "Variant tasks finished, by kind and final state (ready or failed)",
    ("kind", "state"),
)
MEDIA_PROCESSING = Metric(
    "raygram_media_processing_seconds",
    "histogram",
    "Time a variant task took, from start to the record turning ready or failed",
    ("kind",),
    PROCESSING_SECONDS,
)
NOTIFICATIONS = Metric("raygram_notifications_delivered", "counter", "Notifications delivered, by type", ("type",))
NOTIFICATION_LAG = Metric(
    "raygram_notification_lag_ms", "histogram", "From the event to its notification being stored", (), LAG_MS
)
FANOUT_LAG = Metric(
    "raygram_fanout_lag_ms", "histogram", "From a post's creation to its fan-out being acknowledged", (), LAG_MS
)
DEAD_LETTERED = Metric(
    "raygram_events_dead_lettered",
    "counter",
    "Events moved to a dead-letter stream, by consumer group and event type",
    ("group", "type"),
)
DEAD_LETTERS = Metric(
    "raygram_dead_letters", "gauge", "Events in each group's dead-letter stream (sampled)", ("group",)
)
EVENTS_BACKLOG = Metric(
    "raygram_events_backlog",
    "gauge",
    "Events of each consumer group not yet handled: delivered but unacknowledged (pending) or not yet read (lag)",
    ("group", "state"),
)
REDIS_MEMORY = Metric(
    "raygram_redis_memory_bytes", "gauge", "Redis used_memory, summed over a cluster's primaries (sampled)"
)
REDIS_MAXMEMORY = Metric(
    "raygram_redis_maxmemory_bytes",
    "gauge",
    "Redis maxmemory, summed over a cluster's primaries; 0 if unlimited (sampled)",
)

METRICS: tuple[Metric, ...] = (
    FEED_LOAD,
    CACHE_LOOKUPS,
    POSTS,
    LIKES,
    MEDIA_UPLOADS,
    MEDIA_PROCESSED,
    MEDIA_PROCESSING,
    NOTIFICATIONS,
    NOTIFICATION_LAG,
    FANOUT_LAG,
    DEAD_LETTERED,
    DEAD_LETTERS,
    EVENTS_BACKLOG,
    REDIS_MEMORY,
    REDIS_MAXMEMORY,
)


@cache
def _instrument(metric: Metric):
    from ray.util import metrics

    if metric.kind == "counter":
        return metrics.Counter(metric.name, description=metric.description, tag_keys=metric.tags)
    if metric.kind == "gauge":
        return metrics.Gauge(metric.name, description=metric.description, tag_keys=metric.tags)
    return metrics.Histogram(
        metric.name, description=metric.description, boundaries=list(metric.boundaries), tag_keys=metric.tags
    )


def inc(metric: Metric, value: float = 1.0, **tags: str) -> None:
    if value and ray.is_initialized():
        _instrument(metric).inc(value, tags=tags or None)


def observe(metric: Metric, value: float, **tags: str) -> None:
    if ray.is_initialized():
        _instrument(metric).observe(value, tags=tags or None)


def set_gauge(metric: Metric, value: float, **tags: str) -> None:
    if ray.is_initialized():
        _instrument(metric).set(value, tags=tags or None)

"""Upload and processing metrics through ``ray.util.metrics``, exported by Ray's Prometheus endpoint.

The metric objects are made on first use, inside a Ray worker: outside Ray
(unit tests, scripts) recording is a no-op instead of an error.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import ray

PROCESSING_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300]


@cache
def _metrics() -> dict[str, Any]:
    from ray.util import metrics

    return {
        "uploads": metrics.Counter(
            "raygram_media_uploads_total",
            description="Media uploads by kind and outcome (accepted, or the reason of a refusal).",
            tag_keys=("kind", "outcome"),
        ),
        "processed": metrics.Counter(
            "raygram_media_processed_total",
            description="Variant tasks finished, by kind and final state (ready or failed).",
            tag_keys=("kind", "state"),
        ),
        "seconds": metrics.Histogram(
            "raygram_media_processing_seconds",
            description="Time a variant task took, from start to the record turning ready or failed.",
            boundaries=PROCESSING_BUCKETS,
            tag_keys=("kind",),
        ),
    }


def record_upload(kind: str, outcome: str) -> None:
    if ray.is_initialized():
        _metrics()["uploads"].inc(1, tags={"kind": kind, "outcome": outcome})


def record_processing(kind: str, state: str, seconds: float) -> None:
    if ray.is_initialized():
        m = _metrics()
        m["processed"].inc(1, tags={"kind": kind, "state": state})
        m["seconds"].observe(seconds, tags={"kind": kind})

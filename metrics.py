"""Ray metrics (visible in the Ray dashboard and its Prometheus endpoint).

Created on first use in the process that reports them: a metric object made
at import time would need a Ray worker context that the CLI and tests lack.
Rates (likes per second, say) are ``rate()`` over these counters.
"""

from __future__ import annotations

from functools import cache

from ray.util import metrics

LATENCY_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]


@cache
def counter(name: str, description: str, tags: tuple[str, ...] = ()) -> metrics.Counter:
    return metrics.Counter(name, description=description, tag_keys=tags)


@cache
def histogram(name: str, description: str) -> metrics.Histogram:
    return metrics.Histogram(name, description=description, boundaries=LATENCY_MS)


def count(name: str, description: str, value: float = 1.0, **tags: str) -> None:
    counter(name, description, tuple(sorted(tags))).inc(value, tags=tags or None)


def observe_ms(name: str, description: str, value_ms: float) -> None:
    histogram(name, description).observe(value_ms)

"""Degrade, do not fail: what "a store is down" looks like, and the note that an answer was degraded.

Redis holds what can be rebuilt from the graph, and the graph's hot records
are cached in Redis, so each can stand in for the other on reads:

* Redis down: home feeds are pulled from the graph (fan-out on read), the
  record cache and token cache are skipped, like counts come from the graph;
* graph down: whatever Redis can answer (timelines, cached records, cached
  tokens) still answers; records only the graph has are left out.

Such answers carry ``X-Raygram-Degraded: redis`` (or ``graph``). Writes need
both stores: when one is down they fail fast with ``503`` and ``Retry-After``
(``api/availability.py``), before anything is written where the order of
the steps allows it. The clients are built to fail fast in the serving
processes (few retries, short timeouts: ``redis_store.client``,
``graph.driver``), so a dead store costs a request about a second, never a
30-second hang, and everything recovers by itself when the store is back.
"""

from __future__ import annotations

from contextvars import ContextVar

import ray.exceptions
import redis.exceptions

from graph.driver import UNREACHABLE

# BusyLoadingError (a restarted Redis replaying its append-only file) is a ConnectionError.
REDIS_DOWN: tuple[type[Exception], ...] = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
GRAPH_DOWN: tuple[type[Exception], ...] = UNREACHABLE  # dead, hung, or restarting without its database
ACTORS_DOWN: tuple[type[Exception], ...] = (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError)

_degraded: ContextVar[set[str] | None] = ContextVar("raygram_degraded", default=None)


def begin_request() -> set[str]:
    """A fresh, empty note for the current request; the parts that were down get added to it."""
    parts: set[str] = set()
    _degraded.set(parts)
    return parts


def mark_degraded(part: str) -> None:
    """Record that this request's answer was made without ``part`` ("redis" or "graph")."""
    parts = _degraded.get()
    if parts is not None:
        parts.add(part)

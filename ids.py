"""Snowflake ids: 64-bit, time-ordered, unique across processes.

Layout (most significant first): 41 bits of milliseconds since ``EPOCH_MS``,
10 bits of worker id, 12 bits of sequence. Sorting ids sorts by creation time,
so a timeline's score and its paging cursor are the same number. Ids leave the
server as decimal strings, as Mastodon does, because JavaScript clients cannot
hold 64-bit integers.

A worker id is unique only while its holder holds it: a generator can be
given a validity window (``lease``), outside which it refuses to mint
(``IdsUnavailable``) rather than risk an id another process makes too. The
window is kept by ``redis_store.worker_lease``.
"""

from __future__ import annotations

import math
import threading
import time

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
WORKER_BITS = 10
SEQUENCE_BITS = 12
MAX_WORKER = (1 << WORKER_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1


class IdsUnavailable(RuntimeError):
    """The generator's worker id lease is not valid now (lost, not yet renewed, or not yet usable)."""


class SnowflakeGenerator:
    """Makes ids for one worker; thread-safe, monotonic even if the clock steps back or the worker id changes."""

    def __init__(self, worker_id: int) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._sequence = 0
        self.lease(worker_id, -math.inf, math.inf)  # unbounded: the caller vouches for the worker id

    def lease(self, worker_id: int, usable_from: float, valid_until: float) -> None:
        """Mint as ``worker_id`` while ``usable_from <= time.monotonic() < valid_until``."""
        if not 0 <= worker_id <= MAX_WORKER:
            raise ValueError(f"worker_id must be within 0..{MAX_WORKER}")
        with self._lock:
            self.worker_id, self._usable_from, self._valid_until = worker_id, usable_from, valid_until

    def extend(self, valid_until: float) -> None:
        with self._lock:
            self._valid_until = valid_until

    def next_id(self) -> int:
        with self._lock:
            if not self._usable_from <= time.monotonic() < self._valid_until:
                raise IdsUnavailable("No worker id lease is held right now; retry shortly")
            now = max(int(time.time() * 1000) - EPOCH_MS, self._last_ms)
            if now == self._last_ms:
                self._sequence = (self._sequence + 1) & MAX_SEQUENCE
                if self._sequence == 0:  # sequence exhausted in this ms: borrow the next
                    now += 1
            else:
                self._sequence = 0
            self._last_ms = now
            return (now << (WORKER_BITS + SEQUENCE_BITS)) | (self.worker_id << SEQUENCE_BITS) | self._sequence


def id_to_ms(snowflake: int) -> int:
    """The Unix time in milliseconds at which ``snowflake`` was made."""
    return (snowflake >> (WORKER_BITS + SEQUENCE_BITS)) + EPOCH_MS


def min_id_at_ms(unix_ms: int) -> int:
    """The smallest id that could have been made at ``unix_ms``; a time cursor."""
    return max(unix_ms - EPOCH_MS, 0) << (WORKER_BITS + SEQUENCE_BITS)

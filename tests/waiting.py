"""Waiting in tests: read until a condition holds of what was read, with a deadline; never a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
POLL_SECONDS = 0.1


def wait_for(
    read: Callable[[], T],
    condition: Callable[[T], object] = bool,
    what: str = "condition",
    timeout: float = 30.0,
    interval: float = POLL_SECONDS,
) -> T:
    """The first value of ``read()`` that ``condition`` holds of, read every ``interval`` seconds; fails
    (AssertionError) after ``timeout`` seconds. A costly read (many pages) wants a longer interval."""
    deadline = time.monotonic() + timeout
    while not condition(value := read()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: last saw {value!r}")
        time.sleep(interval)
    return value

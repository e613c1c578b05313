"""The clock the time-bound rules read: ``now_ms()``, passed to the services that need it.

Stories expire exactly 24 hours after publishing (``services.stories``). Their
deadline is computed once, at publishing, from the clock, stored with the
story, and every read compares it with the clock's ``now``. A service takes
its clock as a constructor argument (``AppContext.create(settings, clock=...)``),
so a caller that builds the service in-process with a clock of its own, set
to any moment, sees exactly what a client would see at that moment: that is
how ``tests/test_stories.py`` checks "visible at 23:59, gone at 24:00"
against the real Redis and graph without waiting a day. Production builds
the services with ``SYSTEM_CLOCK``; nothing in them knows about tests.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now_ms(self) -> int:
        return int(time.time() * 1000)


SYSTEM_CLOCK = SystemClock()

"""The clock, behind one small Protocol, so that tests drive time instead of waiting on it.

Every component that reads the time or waits takes a ``clock`` in its constructor, the system
clock by default; tests pass ``tests.support.clock.ManualClock`` and advance it by hand. What
stays on the real clock: durations measured for metrics (``Histogram.time()``) and deadlines on
real network I/O, whose timeouts the operating system counts anyway.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Wall and monotonic time, and waiting.

    ``now`` and ``monotonic`` never block or raise. ``sleep`` blocks for ``seconds``; ``wait``
    blocks until ``event`` is set or ``seconds`` have passed, whichever is first, and says
    whether the event is set (a stage's ``wait(stopping, delay)`` ends early on shutdown).
    """

    def now(self) -> float:
        """Wall-clock time in unix seconds: for timestamps and due times that outlive us."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going back: for intervals and deadlines."""
        ...

    def sleep(self, seconds: float) -> None: ...

    def wait(self, event: threading.Event, seconds: float) -> bool: ...


class SystemClock:
    """The real clock. Stateless: one instance serves every thread."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(seconds)


SYSTEM_CLOCK: Clock = SystemClock()

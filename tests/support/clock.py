"""A clock that moves only when told to: the fake of ``monitor.clock.Clock``."""

from __future__ import annotations

import threading


class ManualClock:
    """Wall and monotonic time advance together, by :meth:`advance` or by a sleep or a wait
    (which return at once, as if the time had passed). Thread-safe."""

    def __init__(self, now: float = 1_700_000_000.0, monotonic: float = 1000.0) -> None:
        self._lock = threading.Lock()
        self._now, self._monotonic = now, monotonic
        self.slept: list[float] = []  # every sleep and wait asked for, in order

    def now(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock does not go back ({seconds} s)")
        with self._lock:
            self._now += seconds
            self._monotonic += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(max(seconds, 0.0))

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """True at once when ``event`` is set; otherwise the time passes and it is read again."""
        if event.is_set():
            return True
        self.sleep(seconds)
        return event.is_set()

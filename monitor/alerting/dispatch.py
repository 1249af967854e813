"""Sending queued notifications on worker threads, so that network waits overlap.

The alert stage hands a notification over once its ``pending`` record is written
(:meth:`DeliveryPool.submit`) and collects what became of it later
(:meth:`DeliveryPool.take_done`); it writes the outcome records itself. Two limits:

- at most ``per_receiver`` attempts to one receiver at a time (a slow or throttling receiver
  holds that many threads, never the others' deliveries);
- one attempt at a time per *lane* (a group: its notifications go out in the order they were
  submitted), so a group's second notification never overtakes its first.

The channels are synchronous (httpx, smtplib, Apprise), hence threads. An attempt that raises
is a bug: the error is handed to the stage's thread by :meth:`take_done`, which raises it.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from monitor.alerting.core import Attempt
from monitor.alerting.progress import PendingAlert

DEFAULT_PER_RECEIVER = 8


@dataclass(frozen=True, slots=True)
class Delivered:
    """One attempt finished: the entry as submitted and what the core said of it."""

    entry: PendingAlert
    outcome: Attempt


@dataclass(frozen=True, slots=True)
class _Job:
    entry: PendingAlert
    lane: str


class DeliveryPool:
    """Runs ``attempt`` for submitted entries; see the module doc. Thread-safe.

    ``submit``, ``take_done``, ``forget`` and ``in_flight`` never block; ``wait`` blocks up to
    its timeout; ``close`` waits for the attempts running (bounded by the channels' timeouts).
    """

    def __init__(self, attempt: Callable[[PendingAlert], Attempt], *,
                 per_receiver: int = DEFAULT_PER_RECEIVER, max_threads: int = 32) -> None:
        if per_receiver < 1:
            raise ValueError("deliveries per receiver must be at least 1")
        self._attempt, self._per_receiver = attempt, per_receiver
        # Threads are made as needed; the cap bounds many receivers all busy at once.
        self._executor = ThreadPoolExecutor(max_workers=max(max_threads, per_receiver),
                                            thread_name_prefix="alert-delivery")
        self._changed = threading.Condition()
        self._waiting: deque[_Job] = deque()
        self._running: Counter[str] = Counter()  # per receiver
        self._busy_lanes: set[str] = set()
        self._done: list[Delivered] = []
        self._error: BaseException | None = None
        self._closed = False

    def submit(self, entry: PendingAlert, lane: str) -> None:
        """Send ``entry`` when its receiver has a free slot and its lane is free."""
        with self._changed:
            if self._closed:
                raise RuntimeError("alert delivery pool: closed")
            self._waiting.append(_Job(entry, lane))
            self._start_ready()

    def take_done(self) -> list[Delivered]:
        """The attempts finished since the last call; raises an attempt's error (a bug)."""
        with self._changed:
            done, self._done = self._done, []
            error, self._error = self._error, None
        if error is not None:
            raise error
        return done

    def wait(self, timeout_seconds: float) -> None:
        """Until an attempt finishes (or one has finished unread), at most ``timeout_seconds``."""
        with self._changed:
            self._changed.wait_for(lambda: self._done or self._error is not None
                                   or not self._count(), timeout_seconds)

    def in_flight(self) -> int:
        """Submitted and not taken back by :meth:`take_done` yet."""
        with self._changed:
            return self._count() + len(self._done)

    def forget(self, keep: Callable[[PendingAlert], bool]) -> int:
        """Drop the waiting (not yet started) entries ``keep`` refuses; returns how many."""
        with self._changed:
            kept = deque(job for job in self._waiting if keep(job.entry))
            dropped = len(self._waiting) - len(kept)
            self._waiting = kept
            return dropped

    def close(self) -> None:
        """Start nothing more; wait for the attempts running."""
        with self._changed:
            self._closed = True
            self._waiting.clear()
        self._executor.shutdown(wait=True)

    def _count(self) -> int:
        return len(self._waiting) + sum(self._running.values())

    def _start_ready(self) -> None:
        """Start every waiting job whose receiver and lane are free, oldest first (holding
        the lock). A lane blocked further up blocks its later jobs too: order is kept."""
        blocked: set[str] = set()
        for job in list(self._waiting):
            receiver = job.entry.receiver
            if (job.lane in blocked or job.lane in self._busy_lanes
                    or self._running[receiver] >= self._per_receiver):
                blocked.add(job.lane)
                continue
            self._waiting.remove(job)
            self._running[receiver] += 1
            self._busy_lanes.add(job.lane)
            self._executor.submit(self._run, job)

    def _run(self, job: _Job) -> None:
        outcome: Attempt | None = None
        error: BaseException | None = None
        try:
            outcome = self._attempt(job.entry)
        except BaseException as exc:  # a bug: the stage's thread raises it
            error = exc
        with self._changed:
            self._running[job.entry.receiver] -= 1
            self._busy_lanes.discard(job.lane)
            if outcome is not None:
                self._done.append(Delivered(job.entry, outcome))
            elif self._error is None and error is not None:
                self._error = error
            if not self._closed:
                self._start_ready()
            self._changed.notify_all()


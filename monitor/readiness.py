"""Readiness that tells the truth about the feeds: a poller none of whose feeds works is not ready.

The poll stage is degraded when it has feeds and none of them is currently succeeding: none has
ever succeeded (just started, or every URL is wrong) or every one's last poll failed. A grace
(``http.readiness_grace_seconds``) keeps start-up and a short blip from failing /readyz: the
check fails once the stage has been degraded for longer than the grace, counted from start-up
for feeds that never succeeded and otherwise from the first evaluation that found it degraded
(/readyz probes and scrapes evaluate it every few seconds). The first feed that succeeds makes
it pass again. The Kafka broker's own check is :meth:`monitor.bus.connectivity.BrokerWatch.
is_ready`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Protocol

from monitor.clock import SYSTEM_CLOCK, Clock


class FeedStatus(Protocol):
    """What the check needs of a feed (``feed_table.FeedRecord`` has it)."""

    @property
    def last_success(self) -> float | None: ...

    @property
    def consecutive_failures(self) -> int: ...


def succeeding(feed: FeedStatus) -> bool:
    return feed.last_success is not None and feed.consecutive_failures == 0


class FeedsReadiness:
    """A readiness check (call it: True = ready) over the feeds this process polls."""

    def __init__(self, feeds: Callable[[], Iterable[FeedStatus]], grace_seconds: float, *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self._feeds, self._grace, self._clock = feeds, grace_seconds, clock
        self._lock = threading.Lock()
        self._degraded_since: float | None = clock.monotonic()  # nothing has succeeded at start-up

    def __call__(self) -> bool:
        feeds = list(self._feeds())
        degraded = bool(feeds) and not any(succeeding(feed) for feed in feeds)
        now = self._clock.monotonic()
        with self._lock:
            if not degraded:
                self._degraded_since = None
                return True
            if self._degraded_since is None:
                self._degraded_since = now
            return now - self._degraded_since <= self._grace

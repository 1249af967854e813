"""Every feed's poll figures in one plain table, read by ``feed_metrics.FeedCollector``.

One small record a feed under one lock, instead of a dozen Prometheus children a feed: at
50,000 feeds those made /metrics 80 MB and start-up slow. ``FeedRecord.health`` mirrors the
MonitorFeedStale rule of deploy/prometheus/rules.yml, so that a feed the rule would fire for
is always one the collector exports.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from monitor.model import FeedState

STALE_INTERVALS = 3  # as in MonitorFeedStale
# A scheduled poll starting later than this after it was due is late (APScheduler's default
# misfire grace): every worker was busy.
LATE_SECONDS = 1.0
START_DELAY_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class PollOutcome(StrEnum):
    NEW_ITEMS = "new_items"          # body parsed, at least one new item published
    NO_NEW_ITEMS = "no_new_items"    # body parsed, every item already seen
    NOT_MODIFIED = "not_modified"    # HTTP 304
    UNCHANGED = "unchanged"          # 200 with a byte-identical body: not parsed again
    FETCH_ERROR = "fetch_error"
    PARSE_ERROR = "parse_error"
    PUBLISH_ERROR = "publish_error"

    @property
    def failed(self) -> bool:
        return self in (PollOutcome.FETCH_ERROR, PollOutcome.PARSE_ERROR,
                        PollOutcome.PUBLISH_ERROR)


class FeedHealth(StrEnum):
    """In order of urgency: the per-feed limit keeps the first ones."""

    POLLING_LONG = "polling_long"        # a poll in flight for over slow_poll_seconds
    STALE = "stale"                      # no success for 3 intervals (not waiting on max-age)
    NEVER_SUCCEEDED = "never_succeeded"  # polled and failed, never a success
    FAILING = "failing"                  # the last poll failed; not stale yet
    HEALTHY = "healthy"
    PENDING = "pending"                  # not polled yet, nothing stored

    @property
    def unhealthy(self) -> bool:
        return self not in (FeedHealth.HEALTHY, FeedHealth.PENDING)


_COUNTERS = ("items_published", "duplicates_skipped", "entries_without_id")
Counted = Literal["items_published", "duplicates_skipped", "entries_without_id"]


@dataclass(slots=True)
class FeedRecord:
    interval_seconds: float | None = None
    consecutive_failures: int = 0
    last_success: float | None = None
    next_poll: float | None = None
    poll_started: float | None = None
    polls: dict[PollOutcome, int] = field(default_factory=lambda: dict.fromkeys(PollOutcome, 0))
    items_published: int = 0
    duplicates_skipped: int = 0
    entries_without_id: int = 0

    def health(self, now: float, slow_poll_seconds: float) -> FeedHealth:
        if self.poll_started is not None and now - self.poll_started > slow_poll_seconds:
            return FeedHealth.POLLING_LONG
        if self.last_success is None:
            return FeedHealth.NEVER_SUCCEEDED if self.consecutive_failures else FeedHealth.PENDING
        if self._stale(now):
            return FeedHealth.STALE
        return FeedHealth.FAILING if self.consecutive_failures else FeedHealth.HEALTHY

    def _stale(self, now: float) -> bool:
        if self.interval_seconds is None or self.last_success is None:
            return False
        waiting_on_max_age = (self.consecutive_failures == 0 and self.next_poll is not None
                              and self.next_poll > now)
        old = now - self.last_success > STALE_INTERVALS * self.interval_seconds
        return old and not waiting_on_max_age


class FeedTable:
    """Every feed's figures; safe to update from poller threads while a scrape reads it.

    Totals over all feeds are kept apart from the records, so that removing a feed never
    makes a summed counter go down.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: dict[str, FeedRecord] = {}
        self.polls_total = dict.fromkeys(PollOutcome, 0)
        self.totals = dict.fromkeys(_COUNTERS, 0)
        self.start_delays = StartDelays()

    def init(self, feed_id: str, interval_seconds: float | None = None,
             state: FeedState | None = None) -> None:
        """Known from now on (a dashboard sees it before its first poll); ``state`` is what
        the state store kept, so that failures and the last success survive a restart."""
        with self.lock:
            record = self.records.setdefault(feed_id, FeedRecord())
            if interval_seconds is not None:
                record.interval_seconds = interval_seconds
            if state is not None:
                _apply(record, state)

    def remove(self, feed_id: str) -> None:
        with self.lock:
            self.records.pop(feed_id, None)

    def poll_started(self, feed_id: str, interval_seconds: float | None, now: float) -> None:
        with self.lock:
            record = self.records.setdefault(feed_id, FeedRecord(interval_seconds))
            record.poll_started = now

    def run_started(self, delay_seconds: float) -> None:
        """A scheduled poll started ``delay_seconds`` after it was due."""
        with self.lock:
            self.start_delays.add(delay_seconds)

    def poll_ended(self, feed_id: str) -> None:
        with self.lock:
            record = self.records.get(feed_id)
            if record is not None:
                record.poll_started = None

    def record_poll(self, outcome: PollOutcome, state: FeedState) -> None:
        """A finished poll and the state it left; a feed removed meanwhile stays removed."""
        with self.lock:
            self.polls_total[outcome] += 1
            record = self.records.get(state.feed_id)
            if record is not None:
                record.polls[outcome] += 1
                _apply(record, state)

    def polls_by_feed(self) -> dict[tuple[str, PollOutcome], int]:
        """(feed id, outcome) -> polls, for the feeds still known; without a scrape."""
        with self.lock:
            return {(feed_id, outcome): count for feed_id, record in self.records.items()
                    for outcome, count in record.polls.items() if count}

    def total(self, what: Counted) -> int:
        with self.lock:
            return self.totals[what]

    def count(self, feed_id: str, what: Counted, amount: int) -> None:
        with self.lock:
            self.totals[what] += amount
            record = self.records.get(feed_id)
            if record is not None:
                setattr(record, what, getattr(record, what) + amount)


@dataclass(slots=True)
class StartDelays:
    """How late scheduled polls started: a histogram (per-bucket counts) and the late ones."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(START_DELAY_BUCKETS) + 1))
    total_seconds: float = 0.0
    late: int = 0

    def add(self, delay_seconds: float) -> None:
        delay = max(0.0, delay_seconds)  # a clock step back is not an early poll
        self.counts[bisect.bisect_left(START_DELAY_BUCKETS, delay)] += 1
        self.total_seconds += delay
        self.late += delay > LATE_SECONDS

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, count at or below it), as a Prometheus histogram's buckets."""
        running, buckets = 0, []
        for bound, count in zip((*START_DELAY_BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return buckets


def _apply(record: FeedRecord, state: FeedState) -> None:
    record.consecutive_failures = state.consecutive_failures
    record.last_success = state.last_success_at or record.last_success
    record.next_poll = state.next_check_at or record.next_poll


class FeedCounterChild:
    def __init__(self, table: FeedTable, feed_id: str, what: Counted) -> None:
        self._table, self._feed_id, self._what = table, feed_id, what

    def inc(self, amount: float = 1) -> None:
        self._table.count(self._feed_id, self._what, int(amount))


class FeedCounter:
    """``labels(feed_id).inc(n)``, as on a prometheus_client Counter, kept in the table."""

    def __init__(self, table: FeedTable, what: Counted) -> None:
        self._table, self._what = table, what

    def labels(self, feed_id: str) -> FeedCounterChild:
        return FeedCounterChild(self._table, feed_id, self._what)

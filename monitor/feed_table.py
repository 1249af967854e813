"""Every feed's poll figures in one plain table, read by ``feed_metrics.FeedCollector``.

One small record a feed under one lock, instead of a dozen Prometheus children a feed: at
50,000 feeds those made /metrics 80 MB and start-up slow. ``FeedRecord.health`` mirrors the
MonitorFeedStale rule of deploy/prometheus/rules.yml, so that a feed the rule would fire for
is always one the collector exports.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from monitor.model import FeedState

STALE_INTERVALS = 3  # as in MonitorFeedStale


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

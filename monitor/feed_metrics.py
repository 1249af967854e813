"""The per-feed series, decided on every scrape from ``FeedTable`` (part of metrics.py's set).

Always exported, whatever the number of feeds:

- the poll counters summed over feeds: ``monitor_feed_polls_total{outcome}``,
  ``monitor_items_published_total``, ``monitor_items_duplicates_skipped_total``,
  ``monitor_feed_entries_without_id_total``;
- ``monitor_feeds_by_health{health}``, ``monitor_feeds_listed`` (feeds with series of their
  own in this scrape), ``monitor_polls_in_flight``, and for each poll in flight
  ``monitor_feed_poll_started_timestamp_seconds{feed}`` (at most one per worker);
- how late scheduled polls started after they were due: ``monitor_poll_start_delay_seconds``
  (a histogram) and ``monitor_polls_late_total`` (more than ``LATE_SECONDS``).

Per feed, by ``per_feed``:

- ``all``: every feed's ``monitor_feed_interval_seconds``, ``..._last_success_timestamp_seconds``,
  ``..._consecutive_failures`` and ``..._next_poll_timestamp_seconds``, and the counters above
  with a ``feed`` label instead of the sums (queries that sum them work in both modes);
- ``unhealthy``: those four gauges for the unhealthy feeds only, at most ``limit`` feeds, the
  most urgent first (polling long, stale, never succeeded, failing; then by feed id, so that
  the set does not flap between scrapes);
- ``auto``: ``all`` up to ``AUTO_ALL_MAX_FEEDS`` feeds, ``unhealthy`` above.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Literal

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from monitor.clock import SYSTEM_CLOCK, Clock
from monitor.feed_table import (
    LATE_SECONDS,
    FeedHealth,
    FeedRecord,
    FeedTable,
    PollOutcome,
    StartDelays,
)

PerFeed = Literal["auto", "all", "unhealthy"]
AUTO_ALL_MAX_FEEDS = 2000
_RANK = {health: rank for rank, health in enumerate(FeedHealth)}
_Families = dict[str, GaugeMetricFamily | CounterMetricFamily]


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """What one scrape exports, copied under the table's lock."""

    per_feed: bool
    listed: list[tuple[str, FeedRecord]]
    in_flight: list[tuple[str, float]]
    by_health: dict[FeedHealth, int]
    polls_total: dict[PollOutcome, int]
    totals: dict[str, int]
    start_delays: StartDelays


class FeedCollector(Collector):
    """Turns ``table`` into series at scrape time; cheap enough for 50,000 feeds (a scan)."""

    def __init__(self, table: FeedTable, *, per_feed: PerFeed = "auto", limit: int = 1000,
                 slow_poll_seconds: float = 120.0,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self._table, self._per_feed, self._limit = table, per_feed, limit
        self._slow_poll_seconds, self._clock = slow_poll_seconds, clock

    def describe(self) -> Iterator[Metric]:
        yield from _families(per_feed=False).values()
        yield from _delay_families(StartDelays())

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot(self._clock.now())
        families = _families(snap.per_feed)
        _add_totals(families, snap)
        for feed_id, record in snap.listed:
            _add_feed(families, feed_id, record, snap.per_feed)
        for feed_id, started in snap.in_flight:
            families["started"].add_metric([feed_id], started)
        yield from families.values()
        yield from _delay_families(snap.start_delays)

    def _snapshot(self, now: float) -> _Snapshot:
        with self._table.lock:
            records = self._table.records
            per_feed = self._per_feed == "all" or (
                self._per_feed == "auto" and len(records) <= AUTO_ALL_MAX_FEEDS)
            by_health = dict.fromkeys(FeedHealth, 0)
            ranked: list[tuple[int, str, FeedRecord]] = []
            in_flight = []
            for feed_id, record in records.items():
                health = record.health(now, self._slow_poll_seconds)
                by_health[health] += 1
                if per_feed or health.unhealthy:
                    ranked.append((0 if per_feed else _RANK[health], feed_id, record))
                if record.poll_started is not None:
                    in_flight.append((feed_id, record.poll_started))
            chosen = sorted(ranked)[:None if per_feed else self._limit]
            listed = [(feed_id, replace(record, polls=dict(record.polls)))
                      for _, feed_id, record in chosen]
            delays = self._table.start_delays
            return _Snapshot(per_feed, listed, in_flight, by_health,
                             dict(self._table.polls_total), dict(self._table.totals),
                             replace(delays, counts=list(delays.counts)))


def _families(per_feed: bool) -> _Families:
    feed = ["feed"] if per_feed else []
    return {
        "interval": GaugeMetricFamily(
            "monitor_feed_interval_seconds",
            "The feed's polling interval from feeds.yaml (staleness is measured in these).",
            labels=["feed"]),
        "last_success": GaugeMetricFamily(
            "monitor_feed_last_success_timestamp_seconds",
            "Unix time of the feed's last successful poll.", labels=["feed"]),
        "failures": GaugeMetricFamily(
            "monitor_feed_consecutive_failures",
            "Failed polls of the feed since its last success.", labels=["feed"]),
        "next_poll": GaugeMetricFamily(
            "monitor_feed_next_poll_timestamp_seconds",
            "Unix time the feed is next due to be polled.", labels=["feed"]),
        "started": GaugeMetricFamily(
            "monitor_feed_poll_started_timestamp_seconds",
            "Unix time the feed's poll in flight started (only while one is).", labels=["feed"]),
        "in_flight": GaugeMetricFamily(
            "monitor_polls_in_flight", "Polls started and not finished yet."),
        "by_health": GaugeMetricFamily(
            "monitor_feeds_by_health", "Feeds by health (see MONITOR_METRICS__PER_FEED).",
            labels=["health"]),
        "listed": GaugeMetricFamily(
            "monitor_feeds_listed", "Feeds with per-feed series in this scrape."),

        "polls": CounterMetricFamily(
            "monitor_feed_polls", "Feed polls by outcome (and feed, with per_feed=all).",
            labels=[*feed, "outcome"]),
        "items_published": CounterMetricFamily(
            "monitor_items_published",
            "New items (or new versions) acknowledged by the bus.", labels=feed),
        "duplicates_skipped": CounterMetricFamily(
            "monitor_items_duplicates_skipped",
            "Items skipped because this version was already published.", labels=feed),
        "entries_without_id": CounterMetricFamily(
            "monitor_feed_entries_without_id",
            "Feed entries with neither link, guid nor title: cannot be identified.",
            labels=feed),
    }


def _delay_families(delays: StartDelays) -> tuple[Metric, Metric]:
    histogram = HistogramMetricFamily(
        "monitor_poll_start_delay_seconds",
        "How long after it was due each scheduled poll started (waiting for a worker).")
    histogram.add_metric([], delays.cumulative(), delays.total_seconds)
    late = CounterMetricFamily(
        "monitor_polls_late",
        f"Scheduled polls that started more than {LATE_SECONDS:g} s after they were due "
        "(every worker busy).")
    late.add_metric([], delays.late)
    return histogram, late


def _add_totals(families: _Families, snap: _Snapshot) -> None:
    families["in_flight"].add_metric([], len(snap.in_flight))

    families["listed"].add_metric([], len(snap.listed))
    for health, count in snap.by_health.items():
        families["by_health"].add_metric([health.value], count)
    if snap.per_feed:
        return
    for outcome, count in snap.polls_total.items():
        families["polls"].add_metric([outcome.value], count)
    for name, count in snap.totals.items():
        families[name].add_metric([], count)


def _add_feed(families: _Families, feed_id: str, record: FeedRecord,
              per_feed: bool) -> None:
    if record.interval_seconds is not None:
        families["interval"].add_metric([feed_id], record.interval_seconds)
    families["failures"].add_metric([feed_id], record.consecutive_failures)
    if record.last_success is not None:
        families["last_success"].add_metric([feed_id], record.last_success)
    if record.next_poll is not None:
        families["next_poll"].add_metric([feed_id], record.next_poll)
    if not per_feed:
        return
    for outcome, count in record.polls.items():
        families["polls"].add_metric([feed_id, outcome.value], count)
    families["items_published"].add_metric([feed_id], record.items_published)
    families["duplicates_skipped"].add_metric([feed_id], record.duplicates_skipped)
    families["entries_without_id"].add_metric([feed_id], record.entries_without_id)

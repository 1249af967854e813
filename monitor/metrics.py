"""Every metric the monitor exports, in one place, on an injectable registry.

Names start with ``monitor_``; counters end in ``_total``; durations are ``_seconds``
histograms. Label values come from closed sets only: feed ids from feeds.yaml, outcomes and
stages named here. Never an item id or a URL.
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Callable, Iterator, Mapping
from enum import StrEnum

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor import __version__


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


class AlertOutcome(StrEnum):
    SENT = "sent"                                    # every URL of the receiver accepted it
    FAILED = "failed"                                # an attempt failed (retried or not)
    RETRIED = "retried"                              # a failed attempt was rescheduled
    SUPPRESSED_SILENCE = "suppressed_silence"        # a match dropped by an active silence
    SUPPRESSED_RATE_LIMIT = "suppressed_rate_limit"  # a due group held by the rate limit
    DEAD_LETTERED = "dead_lettered"                  # given up: in the DLQ, replayable


_POLL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """The metric objects, created on ``registry`` (a fresh one per test)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # process_* (CPU, memory, open files) and python_info, as on the default registry.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        self.build_info = Info("monitor_build", "Version of the running monitor.",
                               registry=registry)
        self.build_info.info({"version": __version__, "python": platform.python_version()})
        self.feeds_configured = Gauge(
            "monitor_feeds_configured", "Feeds enabled in feeds.yaml.", registry=registry)
        self.polls = Counter(
            "monitor_feed_polls_total", "Feed polls by feed and outcome.",
            ["feed", "outcome"], registry=registry)
        self.poll_duration = Histogram(
            "monitor_feed_poll_duration_seconds",
            "Time to poll one feed: fetch, parse, publish.", ["feed"],
            buckets=_POLL_BUCKETS, registry=registry)
        self.last_success = Gauge(
            "monitor_feed_last_success_timestamp_seconds",
            "Unix time of the feed's last successful poll.", ["feed"], registry=registry)
        self.consecutive_failures = Gauge(
            "monitor_feed_consecutive_failures",
            "Failed polls of the feed since its last success.", ["feed"], registry=registry)
        self.interval = Gauge(
            "monitor_feed_interval_seconds",
            "The feed's polling interval from feeds.yaml (staleness is measured in these).",
            ["feed"], registry=registry)
        self.next_poll = Gauge(
            "monitor_feed_next_poll_timestamp_seconds",
            "Unix time the feed is next due to be polled.", ["feed"], registry=registry)
        self.items_published = Counter(
            "monitor_items_published_total",
            "New items (or new versions) acknowledged by the bus.", ["feed"], registry=registry)
        self.duplicates_skipped = Counter(
            "monitor_items_duplicates_skipped_total",
            "Items skipped because this version was already published.", ["feed"],
            registry=registry)
        self.entries_without_id = Counter(
            "monitor_feed_entries_without_id_total",
            "Feed entries with neither link, guid nor title: cannot be identified.", ["feed"],
            registry=registry)
        self.publish_errors = Counter(
            "monitor_publish_errors_total",
            "Publish attempts that left items unacknowledged.", ["bus"], registry=registry)

        self.match_items = Counter(
            "monitor_match_items_total", "Items the matcher handled, by outcome.", ["outcome"],
            registry=registry)
        self.matches = Counter(
            "monitor_matches_total", "Matches made, by relation.", ["relation"],
            registry=registry)
        # Claim ids are a closed set (claims.yaml, tens for a desk); a desk tracking thousands
        # of claims should drop this series rather than the per-relation one above.
        self.claim_matches = Counter(
            "monitor_claim_matches_total", "Matches made, by claim and relation.",
            ["claim", "relation"], registry=registry)
        self.match_duration = Histogram(
            "monitor_match_duration_seconds", "Time to match one item against every claim.",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
            registry=registry)
        self.consumer_lag = Gauge(
            "monitor_consumer_lag", "Messages waiting for a stage.", ["stage"], registry=registry)
        self.claims_tracked = Gauge(
            "monitor_claims_tracked", "Claims with status tracking in claims.yaml.",
            registry=registry)
        self.dead_letters = Counter(
            "monitor_dead_letters_total", "Messages a stage could not read, set aside.",
            ["stage"], registry=registry)
        self.alerts = Counter(
            "monitor_alerts_total", "Alert notifications (silences: matches) by receiver and "
            "outcome.", ["receiver", "outcome"], registry=registry)
        self.alert_delivery_duration = Histogram(
            "monitor_alert_delivery_duration_seconds",
            "Time to deliver one notification to every URL of its receiver.", ["receiver"],
            buckets=_POLL_BUCKETS, registry=registry)
        self.alert_outbox_size = Gauge(
            "monitor_alert_outbox_size", "Alert notifications pending delivery.",
            registry=registry)
        self.alert_oldest_pending_age = Gauge(
            "monitor_alert_oldest_pending_age_seconds",
            "Age of the oldest alert notification pending delivery.", registry=registry)
        for outcome in ("matched", "unmatched", "invalid"):
            self.match_items.labels(outcome)
        for relation in ("follow-up", "denial", "corroboration"):
            self.matches.labels(relation)
        # At zero from the start: increase() cannot see a series' first sample as growth.
        for stage in ("match", "alert"):
            self.dead_letters.labels(stage)

    def init_feed(self, feed_id: str, interval_seconds: float | None = None) -> None:
        """Create a feed's series at zero so dashboards see it before its first poll."""
        if interval_seconds is not None:
            self.interval.labels(feed_id).set(interval_seconds)
        for outcome in PollOutcome:
            self.polls.labels(feed_id, outcome.value)
        self.consecutive_failures.labels(feed_id).set(0)
        self.items_published.labels(feed_id)
        self.duplicates_skipped.labels(feed_id)
        self.entries_without_id.labels(feed_id)

    def remove_feed(self, feed_id: str) -> None:
        """Drop a feed removed from feeds.yaml, so that its frozen last success does not look
        like a stale feed to the alerting rules."""
        per_feed = (self.interval, self.last_success, self.consecutive_failures, self.next_poll,
                    self.items_published, self.duplicates_skipped, self.entries_without_id,
                    self.poll_duration)
        for metric in per_feed:
            with contextlib.suppress(KeyError):
                metric.remove(feed_id)
        for outcome in PollOutcome:
            with contextlib.suppress(KeyError):
                self.polls.remove(feed_id, outcome.value)

    def init_receiver(self, receiver: str) -> None:
        """Create a receiver's alert series at zero (receiver names come from routes.yaml)."""
        for outcome in AlertOutcome:
            self.alerts.labels(receiver, outcome.value)
        self.alert_delivery_duration.labels(receiver)


class ReadinessCollector(Collector):
    """``monitor_ready{check}``: each /readyz check, evaluated on every scrape so that the
    metric and /readyz never disagree. ``results`` must be cheap and must not raise."""

    def __init__(self, results: Callable[[], Mapping[str, bool]]) -> None:
        self._results = results

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        for check, ok in self._results().items():
            family.add_metric([check], 1.0 if ok else 0.0)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "monitor_ready", "1 while the /readyz check passes, 0 while it fails.",
            labels=["check"])

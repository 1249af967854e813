"""Every metric the monitor exports, in one place, on an injectable registry.

Names start with ``monitor_``; counters end in ``_total``; durations are ``_seconds``
histograms. Label values come from closed sets only: feed ids from feeds.yaml, outcomes and
stages named here. Never an item id, a URL or error text.

The per-feed series are not Prometheus children but a table the poller writes
(``feed_table.FeedTable``, as ``Metrics.feeds``) that ``feed_metrics.FeedCollector`` exports on
each scrape: which feeds get series of their own is a setting (``MONITOR_METRICS__PER_FEED``),
so that 50,000 feeds make a scrape of a few hundred KB instead of 80 MB.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator, Mapping
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
from monitor.config.settings import MetricsSettings
from monitor.feed_metrics import FeedCollector
from monitor.feed_table import FeedCounter, FeedTable, PollOutcome
from monitor.model import FeedState

__all__ = ["AlertOutcome", "Metrics", "PollOutcome", "ReadinessCollector"]


class AlertOutcome(StrEnum):
    SENT = "sent"                                    # every URL of the receiver accepted it
    FAILED = "failed"                                # an attempt failed (retried or not)
    RETRIED = "retried"                              # a failed attempt was rescheduled
    SUPPRESSED_SILENCE = "suppressed_silence"        # a match dropped by an active silence
    SUPPRESSED_RATE_LIMIT = "suppressed_rate_limit"  # a due group held by the rate limit
    SUPPRESSED_BACKGROUND = "suppressed_background"  # a match older than its claim: record only
    SUPPRESSED_BACKLOG = "suppressed_backlog"        # from a feed's first poll: record only
    DEAD_LETTERED = "dead_lettered"                  # given up: in the DLQ, replayable


ROLES = ("poll", "match", "alert", "desk")  # the parts a process may run
_POLL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """The metric objects, created on ``registry`` (a fresh one per test)."""

    def __init__(self, registry: CollectorRegistry,
                 settings: MetricsSettings | None = None) -> None:
        self.registry = registry
        settings = settings or MetricsSettings()
        # process_* (CPU, memory, open files) and python_info, as on the default registry.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        self.build_info = Info("monitor_build", "Version of the running monitor.",
                               registry=registry)
        self.build_info.info({"version": __version__, "python": platform.python_version()})
        # What this process runs, so `monitor status` can name each endpoint it reads.
        self.process_role = Gauge(
            "monitor_process_info", "1 for each part this process runs (role: poll, match, "
            "alert, desk).", ["role"], registry=registry)
        self.feeds_configured = Gauge(
            "monitor_feeds_configured", "Feeds enabled in feeds.yaml.", registry=registry)
        # Over every feed: a histogram a feed was most of the 80 MB at 50,000 feeds.
        self.poll_duration = Histogram(
            "monitor_feed_poll_duration_seconds",
            "Time to poll one feed: fetch, parse, publish.", buckets=_POLL_BUCKETS,
            registry=registry)
        self.feeds = FeedTable()
        registry.register(FeedCollector(
            self.feeds, per_feed=settings.per_feed, limit=settings.per_feed_limit,
            slow_poll_seconds=settings.slow_poll_seconds))
        self.items_published = FeedCounter(self.feeds, "items_published")
        self.duplicates_skipped = FeedCounter(self.feeds, "duplicates_skipped")
        self.entries_without_id = FeedCounter(self.feeds, "entries_without_id")
        # APScheduler skips a feed's run while its last poll still runs (a publish waiting
        # for the broker, a slow server); its WARNING per skip is held back by logsetup.
        self.polls_skipped = Counter(
            "monitor_polls_skipped", "Scheduled polls skipped because the feed's previous poll "
            "was still running.", registry=registry)
        # Which reader took each body: the fast lxml path, or feedparser for what it refuses
        # (malformed XML, DOCTYPE, odd encodings): a rising feedparser share costs CPU.
        self.feed_parses = Counter(
            "monitor_feed_parses_total", "Feed bodies parsed, by parser (lxml: the fast path; "
            "feedparser: the fallback).", ["parser"], registry=registry)
        for parser in ("lxml", "feedparser"):
            self.feed_parses.labels(parser)
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
        self.embed_duration = Histogram(
            "monitor_embed_duration_seconds",
            "Time to embed one batch of items (the sentence model; texts it read before "
            "come from the vector cache).",
            buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
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
        # The claim desk's view of the match log (its lag is monitor_consumer_lag{stage="desk"}).
        self.desk_matches = Gauge(
            "monitor_desk_matches", "Match records in the desk's view.", registry=registry)
        self.desk_skipped = Counter(
            "monitor_desk_records_skipped_total",
            "Records of the match log the desk could not read and left out of its view.",
            registry=registry)
        for outcome in ("matched", "unmatched", "invalid"):
            self.match_items.labels(outcome)
        for relation in ("follow-up", "denial", "corroboration"):
            self.matches.labels(relation)
        # At zero from the start: increase() cannot see a series' first sample as growth.
        for stage in ("match", "alert"):
            self.dead_letters.labels(stage)

    def init_feed(self, feed_id: str, interval_seconds: float | None = None,
                  state: FeedState | None = None) -> None:
        """Make a feed known so dashboards see it before its first poll; ``state`` (from the
        state store) carries its failures and last success over a restart."""
        self.feeds.init(feed_id, interval_seconds, state)

    def remove_feed(self, feed_id: str) -> None:
        """Drop a feed removed from feeds.yaml, so that its frozen last success does not look
        like a stale feed to the alerting rules."""
        self.feeds.remove(feed_id)

    def set_roles(self, roles: Iterable[str]) -> None:
        """The parts this process runs (``ROLES``); set once, at start."""
        for role in roles:
            if role not in ROLES:
                raise ValueError(f"metrics: unknown process role {role!r}")
            self.process_role.labels(role).set(1)

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

"""Per-feed series: every feed with few feeds, only the unhealthy ones with many; polls in flight.

Values are read back from a fresh registry (``get_sample_value``) or a real scrape.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitor.bus.embedded import EmbeddedItemLog
from monitor.config.feeds import FeedConfig
from monitor.config.settings import DEFAULT_USER_AGENT, MetricsSettings
from monitor.errors import FetchError
from monitor.feed_metrics import AUTO_ALL_MAX_FEEDS
from monitor.feeds.fetch import Fetcher, FetchLimits, FetchResult, Validators
from monitor.feeds.parse import TextLimits
from monitor.feeds.poller import FeedPoller
from monitor.feeds.schedule import SchedulePolicy
from monitor.feeds.state import SQLitePollState
from monitor.metrics import Metrics, PollOutcome
from monitor.model import FeedState
from monitor.store import Database
from tests.support.clock import ManualClock

INTERVAL = 300.0


def feeds_at(now: float) -> dict[str, FeedState]:
    """id -> state as the poller left it: one feed in each state of health."""
    return {
        "fresh": FeedState("fresh", last_success_at=now - 10, next_check_at=now + 290),
        "failing": FeedState("failing", consecutive_failures=2, last_success_at=now - 400,
                             next_check_at=now + 60),
        "stale": FeedState("stale", consecutive_failures=7, last_success_at=now - 86400,
                           next_check_at=now + 600),
        "never": FeedState("never", consecutive_failures=3, next_check_at=now + 60),
        # Healthy, waiting for the hour a Cache-Control max-age asked for (not stale).
        "maxage": FeedState("maxage", last_success_at=now - 1000, next_check_at=now + 2600),
    }


NOW = time.time()
FEEDS = feeds_at(NOW)


@pytest.fixture(autouse=True)
def _states_relative_to_the_test() -> None:
    """Each test's states are relative to when it runs, as the collector's clock is: on a
    loaded machine minutes pass between import and a test, and "due in 60 s" turns overdue."""
    global NOW, FEEDS
    NOW = time.time()
    FEEDS = feeds_at(NOW)


def metrics_with_feeds(per_feed: str, limit: int = 1000) -> Metrics:
    metrics = Metrics(CollectorRegistry(),
                      MetricsSettings(per_feed=per_feed, per_feed_limit=limit))  # type: ignore[arg-type]
    metrics.init_feed("pending", INTERVAL)
    for feed_id, state in FEEDS.items():
        metrics.init_feed(feed_id, INTERVAL)
        metrics.feeds.record_poll(
            PollOutcome.FETCH_ERROR if state.consecutive_failures else PollOutcome.NOT_MODIFIED,
            state)
    metrics.items_published.labels("fresh").inc(3)
    return metrics


def listed(metrics: Metrics, name: str = "monitor_feed_consecutive_failures") -> set[str]:
    return {sample.labels["feed"] for family in metrics.registry.collect()
            for sample in family.samples if sample.name == name}


def test_unhealthy_mode_lists_only_the_feeds_the_stale_rule_needs_with_exact_counts() -> None:
    metrics = metrics_with_feeds("unhealthy")
    value = metrics.registry.get_sample_value

    assert listed(metrics) == {"failing", "stale", "never"}
    assert listed(metrics, "monitor_feed_interval_seconds") == {"failing", "stale", "never"}
    assert value("monitor_feed_last_success_timestamp_seconds", {"feed": "stale"}) == NOW - 86400
    assert value("monitor_feed_next_poll_timestamp_seconds", {"feed": "never"}) == NOW + 60
    counts = {health: value("monitor_feeds_by_health", {"health": health})
              for health in ("healthy", "failing", "stale", "never_succeeded", "pending",
                             "polling_long")}
    assert counts == {"healthy": 2, "failing": 1, "stale": 1, "never_succeeded": 1,
                      "pending": 1, "polling_long": 0}
    assert value("monitor_feeds_listed") == 3
    # Counters are summed over feeds: no feed label.
    assert value("monitor_feed_polls_total", {"outcome": "fetch_error"}) == 3
    assert value("monitor_feed_polls_total", {"outcome": "not_modified"}) == 2
    assert value("monitor_items_published_total") == 3
    assert value("monitor_items_published_total", {"feed": "fresh"}) is None


def test_all_mode_keeps_every_feed_and_the_counters_by_feed() -> None:
    metrics = metrics_with_feeds("all")
    value = metrics.registry.get_sample_value

    assert listed(metrics) == {"pending", *FEEDS}
    assert value("monitor_feed_polls_total", {"feed": "stale", "outcome": "fetch_error"}) == 1
    assert value("monitor_feed_polls_total", {"feed": "pending", "outcome": "new_items"}) == 0
    assert value("monitor_items_published_total", {"feed": "fresh"}) == 3
    assert value("monitor_feed_interval_seconds", {"feed": "pending"}) == INTERVAL
    assert value("monitor_feed_polls_total", {"outcome": "fetch_error"}) is None


def test_the_limit_keeps_the_most_urgent_feeds() -> None:
    metrics = metrics_with_feeds("unhealthy", limit=2)
    assert listed(metrics) == {"stale", "never"}
    assert metrics.registry.get_sample_value("monitor_feeds_by_health",
                                             {"health": "failing"}) == 1


def test_auto_lists_every_feed_up_to_its_threshold_and_only_unhealthy_ones_above() -> None:
    metrics = metrics_with_feeds("auto")
    assert "fresh" in listed(metrics)
    for n in range(AUTO_ALL_MAX_FEEDS):
        metrics.init_feed(f"more-{n}", INTERVAL)
    assert listed(metrics) == {"failing", "stale", "never"}


def test_a_removed_feed_leaves_the_summed_counters_as_they_were() -> None:
    metrics = metrics_with_feeds("unhealthy")
    metrics.remove_feed("fresh")
    metrics.remove_feed("stale")
    assert "stale" not in listed(metrics)
    assert metrics.registry.get_sample_value("monitor_items_published_total") == 3
    assert metrics.registry.get_sample_value("monitor_feed_polls_total",
                                             {"outcome": "fetch_error"}) == 3


def test_a_scrape_of_50000_feeds_stays_under_5_mb() -> None:
    metrics = Metrics(CollectorRegistry())
    for n in range(50_000):
        state = FeedState(f"feed-{n:05d}", consecutive_failures=5 if n % 50 == 0 else 0,
                          last_success_at=NOW - (86400 if n % 50 == 0 else 60),
                          next_check_at=NOW + INTERVAL)
        metrics.init_feed(state.feed_id, INTERVAL, state)
        metrics.feeds.record_poll(PollOutcome.NOT_MODIFIED, state)
    body = generate_latest(metrics.registry)
    assert len(body) < 5_000_000
    assert metrics.registry.get_sample_value("monitor_feeds_by_health",
                                             {"health": "stale"}) == 1000
    assert len(listed(metrics)) == 1000


def test_seeded_state_survives_a_restart_in_the_metrics() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.init_feed("stale", INTERVAL, FEEDS["stale"])
    value = metrics.registry.get_sample_value
    assert value("monitor_feed_consecutive_failures", {"feed": "stale"}) == 7
    assert value("monitor_feed_last_success_timestamp_seconds", {"feed": "stale"}) == NOW - 86400


# --- a poll in flight ------------------------------------------------------------------------

class HangingFetcher(Fetcher):
    """Blocks every fetch until ``release`` is set, then fails it: a server that never ends."""

    def __init__(self) -> None:
        super().__init__(FetchLimits(user_agent=DEFAULT_USER_AGENT))
        self.entered, self.release = threading.Event(), threading.Event()

    def fetch(self, url: str, validators: Validators, now: datetime) -> FetchResult:
        self.entered.set()
        self.release.wait(timeout=30)
        raise FetchError(f"timed out reading {url}")


@pytest.fixture
def hanging(tmp_path: Path) -> Iterator[tuple[Metrics, HangingFetcher, threading.Thread]]:
    database = Database(tmp_path / "state.sqlite3")
    metrics = Metrics(CollectorRegistry(), MetricsSettings(per_feed="unhealthy",
                                                           slow_poll_seconds=60))
    fetcher = HangingFetcher()
    started_at = NOW - 600  # the poller's clock: this poll began ten minutes ago
    poller = FeedPoller(fetcher, SQLitePollState(database), EmbeddedItemLog(database), metrics,
                        policy=SchedulePolicy(3600, 21600, 0.1), text_limits=TextLimits(),
                        bus_name="embedded", clock=ManualClock(now=started_at))
    feed = FeedConfig(id="slow", source="Slow", url="https://slow.example/feed.xml")
    metrics.init_feed(feed.id, feed.interval_seconds)
    thread = threading.Thread(target=poller.poll, args=(feed,), daemon=True)
    thread.start()
    assert fetcher.entered.wait(timeout=10)
    yield metrics, fetcher, thread
    fetcher.release.set()
    thread.join(timeout=10)
    database.close()


def test_a_hanging_poll_is_in_flight_and_its_feed_unhealthy(
        hanging: tuple[Metrics, HangingFetcher, threading.Thread]) -> None:
    metrics, fetcher, thread = hanging
    value = metrics.registry.get_sample_value
    assert value("monitor_polls_in_flight") == 1
    assert value("monitor_feed_poll_started_timestamp_seconds", {"feed": "slow"}) == NOW - 600
    assert value("monitor_feeds_by_health", {"health": "polling_long"}) == 1
    assert listed(metrics) == {"slow"}

    fetcher.release.set()
    thread.join(timeout=10)
    assert value("monitor_polls_in_flight") == 0
    assert value("monitor_feed_poll_started_timestamp_seconds", {"feed": "slow"}) is None
    assert value("monitor_feed_consecutive_failures", {"feed": "slow"}) == 1

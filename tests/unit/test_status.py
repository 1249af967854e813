"""``monitor status``: a scrape summarised, failing and stale feeds first."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from monitor.config.settings import MetricsSettings
from monitor.feeds.state import SQLitePollState
from monitor.metrics import Metrics, PollOutcome
from monitor.model import FeedState
from monitor.status import parse_status, read_last_errors, render_status
from monitor.store import Database

NOW = 1_800_000_000.0


def test_status_lists_failing_then_stale_feeds_with_claims_lag_and_outbox() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for feed_id, last, failures, next_poll in (("fresh", NOW - 30, 0, NOW + 270),
                                               ("stale", NOW - 7200, 0, NOW + 60),
                                               ("broken", NOW - 90000, 4, NOW + 3600)):
        metrics.init_feed(feed_id, 300, FeedState(feed_id, consecutive_failures=failures,
                                                  last_success_at=last, next_check_at=next_poll))
    metrics.claims_tracked.set(4)
    metrics.consumer_lag.labels("match").set(12)
    metrics.alert_outbox_size.set(2)
    metrics.alert_oldest_pending_age.set(45)

    text = render_status(parse_status(generate_latest(registry).decode()), now=NOW)

    lines = text.splitlines()
    assert [line.split()[0] for line in lines[1:4]] == ["broken", "stale", "fresh"]
    assert "90000 s ago" in lines[1] and "in 3600 s" in lines[1] and " 4 " in lines[1]
    assert "claims tracked: 4" in text
    assert "consumer lag: match 12" in text
    assert "alert outbox: 2 pending, oldest 45 s" in text


def test_a_feed_never_polled_successfully_says_never() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.init_feed("new", 300, FeedState("new", consecutive_failures=1))
    text = render_status(parse_status(generate_latest(registry).decode()), now=NOW)
    assert "never" in text.splitlines()[1]


def test_failing_feeds_show_their_last_error_from_the_state_file(tmp_path: Path) -> None:
    database = Database(tmp_path / "state.sqlite3")
    store = SQLitePollState(database)
    store.save(FeedState("broken", consecutive_failures=2,
                         last_error="HTTP 503 from https://broken.example/feed.xml"))
    store.save(FeedState("fine", last_success_at=NOW - 10))
    database.close()
    metrics = Metrics(CollectorRegistry())
    for state in (FeedState("broken", consecutive_failures=2),
                  FeedState("fine", last_success_at=NOW - 10)):
        metrics.init_feed(state.feed_id, 300, state)

    errors = read_last_errors(tmp_path / "state.sqlite3")
    text = render_status(parse_status(generate_latest(metrics.registry).decode()), now=NOW,
                         errors=errors)

    assert errors == {"broken": "HTTP 503 from https://broken.example/feed.xml"}
    broken, fine = text.splitlines()[1:3]
    assert broken.endswith("HTTP 503 from https://broken.example/feed.xml")
    assert fine.startswith("fine ") and "HTTP" not in fine
    assert read_last_errors(tmp_path / "absent.sqlite3") == {}


def test_a_poll_in_flight_and_the_counts_of_unlisted_feeds_are_shown() -> None:
    now = time.time()  # the collector classifies feeds by the real clock
    metrics = Metrics(CollectorRegistry(), MetricsSettings(per_feed="unhealthy"))
    for n in range(5):
        metrics.init_feed(f"ok-{n}", 300, FeedState(f"ok-{n}", last_success_at=now - 10))
    metrics.init_feed("slow", 300, FeedState("slow", last_success_at=now - 10))
    metrics.feeds.poll_started("slow", 300, now - 400)
    metrics.init_feed("down", 300, FeedState("down", consecutive_failures=1,
                                             last_success_at=now - 100))
    metrics.feeds.record_poll(PollOutcome.FETCH_ERROR, FeedState(
        "down", consecutive_failures=1, last_success_at=now - 100))

    text = render_status(parse_status(generate_latest(metrics.registry).decode()), now=now)

    assert [line.split()[0] for line in text.splitlines()[1:3]] == ["down", "slow"]
    assert text.splitlines()[2].endswith("polling for 400 s")
    assert ("feeds: 1 polling long, 1 failing, 5 healthy (only unhealthy feeds listed; "
            "MONITOR_METRICS__PER_FEED=all lists every one)") in text

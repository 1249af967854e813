"""``monitor status``: a scrape summarised, failing and stale feeds first."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from monitor.metrics import Metrics
from monitor.status import parse_status, render_status

NOW = 1_800_000_000.0


def test_status_lists_failing_then_stale_feeds_with_claims_lag_and_outbox() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for feed_id, last, failures, next_poll in (("fresh", NOW - 30, 0, NOW + 270),
                                               ("stale", NOW - 7200, 0, NOW + 60),
                                               ("broken", NOW - 90000, 4, NOW + 3600)):
        metrics.last_success.labels(feed_id).set(last)
        metrics.consecutive_failures.labels(feed_id).set(failures)
        metrics.next_poll.labels(feed_id).set(next_poll)
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
    metrics.consecutive_failures.labels("new").set(1)
    text = render_status(parse_status(generate_latest(registry).decode()), now=NOW)
    assert "never" in text.splitlines()[1]

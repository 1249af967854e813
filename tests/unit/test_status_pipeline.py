"""``monitor status`` over several processes: each one's roles and state, and the pipeline.

Each process is a fresh registry filled as its parts would fill it, scraped as text (what
``monitor status`` reads over HTTP); :func:`combine` and :func:`render_pipeline` are pure.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitor.metrics import Metrics
from monitor.model import FeedState
from monitor.status import Endpoint, Status, combine, parse_status, render_pipeline, roles_of

NOW = 1_800_000_000.0


def scraped(metrics: Metrics) -> Status:
    return parse_status(generate_latest(metrics.registry).decode())


def poller(*feeds: tuple[str, int]) -> Status:
    """A poller whose share is ``feeds`` (id, consecutive failures)."""
    metrics = Metrics(CollectorRegistry())
    metrics.set_roles(["poll"])
    for feed_id, failures in feeds:
        metrics.init_feed(feed_id, 300, FeedState(feed_id, consecutive_failures=failures,
                                                  last_success_at=NOW - 60))
    return scraped(metrics)


def stage(role: str, lag: int, *, claims: int = 4, outbox: int = 0,
          oldest: float = 0.0) -> Status:
    metrics = Metrics(CollectorRegistry())
    metrics.set_roles([role])
    metrics.consumer_lag.labels(role).set(lag)
    metrics.claims_tracked.set(claims)
    metrics.alert_outbox_size.set(outbox)
    metrics.alert_oldest_pending_age.set(oldest)
    return scraped(metrics)


def test_the_role_each_process_reports_is_read_from_its_metrics() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.set_roles(["poll", "match", "alert"])
    assert roles_of(scraped(metrics)) == ["poll", "match", "alert"]
    assert roles_of(stage("match", 3)) == ["match"]
    with pytest.raises(ValueError, match="unknown process role"):
        metrics.set_roles(["mystery"])


def test_a_process_without_the_role_metric_is_known_by_what_it_exports() -> None:
    older = Status(consumer_lag={"alert": 0.0}, by_health={"healthy": 2.0})
    assert roles_of(older) == ["poll", "alert"]
    assert roles_of(Status()) == []


def test_the_pipeline_sums_feeds_over_pollers_and_lag_over_replicas() -> None:
    total = combine([
        poller(("tass", 0), ("ria", 3)),   # a shared poller group: each has its share
        poller(("reuters", 0)),
        stage("match", 12), stage("match", 5),
        stage("alert", 1, outbox=2, oldest=45.0), stage("alert", 0, outbox=1, oldest=80.0),
    ])
    assert sorted(total.feeds) == ["reuters", "ria", "tass"]
    assert total.by_health["healthy"] == 2 and total.by_health["failing"] == 1
    assert total.consumer_lag == {"match": 17.0, "alert": 1.0}
    assert total.outbox_size == 3 and total.oldest_pending_seconds == 80.0
    assert total.claims_tracked == 4  # every stage loads the same claims: not 16


def test_every_desk_reads_the_whole_log_so_their_lag_is_the_largest_not_the_sum() -> None:
    assert combine([stage("desk", 3), stage("desk", 9)]).consumer_lag == {"desk": 9.0}


def test_the_outbox_of_processes_that_do_not_alert_is_not_counted() -> None:
    total = combine([poller(("tass", 0)), stage("match", 0)])
    assert total.outbox_size is None


def test_render_shows_each_process_then_the_pipeline_and_a_down_one_in_one_line() -> None:
    endpoints = [
        Endpoint("http://poll-0:9464/metrics", poller(("tass", 0), ("ria", 2))),
        Endpoint("http://match-0:9464/metrics", stage("match", 7)),
        Endpoint("https://ops:s3cret@alert-0:9464/metrics?token=abc", None,
                 "ConnectError: [Errno 111] Connection refused"),
    ]
    text = render_pipeline(endpoints, now=NOW)
    lines = text.splitlines()
    assert lines[0].split() == ["process", "roles", "state"]
    assert lines[1].split() == ["http://poll-0:9464/metrics", "poll", "up"]
    assert lines[2].split() == ["http://match-0:9464/metrics", "match", "up"]
    assert lines[3].startswith("https://***@alert-0:9464/metrics?token=***")
    assert lines[3].endswith("-                 DOWN: ConnectError: [Errno 111] Connection "
                             "refused")
    assert "s3cret" not in text and "abc" not in text
    assert "pipeline: 2 of 3 processes up" in text
    assert "feeds: 1 failing, 1 healthy" in text
    assert "consumer lag: match 7" in text and "claims tracked: 4" in text
    assert "alert outbox" not in text  # the alerter is down: nothing to sum
    assert [line.split()[0] for line in lines[6:9]] == ["feed", "ria", "tass"]  # failing first

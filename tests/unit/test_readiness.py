"""/readyz about the feeds: not ready once no feed has been succeeding for longer than the grace."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from monitor.config.feeds import FeedConfig
from monitor.config.settings import Settings
from monitor.readiness import FeedsReadiness
from monitor.service import Service
from tests.support.clock import ManualClock
from tests.support.feed_server import FeedServer
from tests.support.waiting import eventually

GRACE = 15.0
RSS = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>W</title><item><title>Story'
       b'</title><link>https://wire.example/1</link></item></channel></rss>')


@dataclass
class Feed:
    last_success: float | None = None
    consecutive_failures: int = 0


def check_over(feeds: list[Feed]) -> tuple[FeedsReadiness, ManualClock]:
    clock = ManualClock()
    return FeedsReadiness(lambda: feeds, GRACE, clock=clock), clock


def test_feeds_that_never_succeed_fail_readiness_after_the_grace_from_start_up() -> None:
    feeds = [Feed(), Feed(consecutive_failures=3)]  # one not polled yet, one refused
    ready, clock = check_over(feeds)
    clock.advance(GRACE)
    assert ready()
    clock.advance(1)
    assert not ready()
    feeds[0].last_success = clock.now()  # the first success is enough
    assert ready()


def test_every_feed_failing_fails_readiness_after_the_grace_and_recovers() -> None:
    feeds = [Feed(last_success=900.0), Feed(last_success=950.0)]
    ready, clock = check_over(feeds)
    assert ready()
    for feed in feeds:
        feed.consecutive_failures = 1
    assert ready()  # a blip: within the grace
    clock.advance(GRACE + 1)
    assert not ready()
    feeds[1].consecutive_failures = 0
    assert ready()


def test_one_working_feed_keeps_the_poller_ready_and_no_feeds_is_ready() -> None:
    feeds = [Feed(consecutive_failures=9), Feed(last_success=990.0)]
    ready, clock = check_over(feeds)
    clock.advance(10 * GRACE)
    assert ready()
    idle, clock = check_over([])  # a shared poller that owns no feed right now
    clock.advance(10 * GRACE)
    assert idle()


# -- wired into the poll stage, over real HTTP -------------------------------------------------


def test_a_poller_whose_only_feed_fails_turns_unready_and_back(
        feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.set("/wire.xml", RSS)
    feed_server.change("/wire.xml", status=503)
    feeds = [FeedConfig.model_validate({"id": "wire", "url": feed_server.url("/wire.xml"),
                                        "source": "Wire", "interval": 1})]
    settings = Settings.model_validate({
        "http": {"address": "127.0.0.1:0", "readiness_grace_seconds": 1},
        "poll": {"allowed_networks": "127.0.0.0/8", "backoff_cap_seconds": 1},
        "state_path": tmp_path / "state.sqlite3"})
    service = Service(settings, feeds, CollectorRegistry())
    readyz = f"http://127.0.0.1:{service.health.port}/readyz"  # type: ignore[union-attr]
    try:
        service.start()
        # Failing for longer than the grace since start-up; today's code stays 200.
        eventually(lambda: httpx.get(readyz).status_code == 503, 30, "/readyz 503")
        assert "feeds" in httpx.get(readyz).text
        assert service.registry.get_sample_value("monitor_ready", {"check": "feeds"}) == 0.0
        feed_server.change("/wire.xml", status=200)
        eventually(lambda: httpx.get(readyz).status_code == 200, 30, "/readyz 200 again")
    finally:
        service.close()

"""The poller against a real HTTP server on 127.0.0.1, with the embedded item log."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.bus import ItemPublisher
from monitor.bus.embedded import EmbeddedItemLog
from monitor.config.feeds import FeedConfig
from monitor.feeds.fetch import Fetcher, FetchLimits
from monitor.feeds.parse import TextLimits
from monitor.feeds.poller import FeedPoller
from monitor.feeds.schedule import SchedulePolicy
from monitor.feeds.state import SQLitePollState
from monitor.metrics import Metrics, PollOutcome
from monitor.store import Database
from tests.support.clock import ManualClock
from tests.support.fakes import FlakyPublisher
from tests.support.feed_server import LOOPBACK, FeedServer

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Test wire</title>
{items}
</channel></rss>"""
ITEM = """<item><title>{title}</title><link>https://wire.example/{n}?utm_source=rss</link>
<description>Story number {n}</description><pubDate>Sat, 03 Dec 2022 16:43:00 +0300</pubDate>
</item>"""


def rss(*numbers: int, title: str = "Story {n}") -> bytes:
    items = "\n".join(ITEM.format(n=n, title=title.format(n=n)) for n in numbers)
    return RSS.format(items=items).encode()


@dataclass
class Rig:
    poller: FeedPoller
    state: SQLitePollState
    log: EmbeddedItemLog
    registry: CollectorRegistry
    server: FeedServer
    clock: ManualClock

    def feed(self, feed_id: str, path: str, **extra: object) -> FeedConfig:
        return FeedConfig.model_validate(
            {"id": feed_id, "url": self.server.url(path), "source": "Test Wire",
             "language": "ru", "interval": 60, **extra})

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def make_poller(db: Database, publisher: ItemPublisher, registry: CollectorRegistry,
                clock: ManualClock,
                publish_failure_level: Callable[[BaseException], int] | None = None,
                **limits: object) -> FeedPoller:
    fetch_limits = FetchLimits(user_agent="monitor-tests/1", timeout_seconds=2,
                               allowed_networks=LOOPBACK, **limits)  # type: ignore[arg-type]
    return FeedPoller(
        Fetcher(fetch_limits), SQLitePollState(db), publisher, Metrics(registry),
        policy=SchedulePolicy(backoff_cap_seconds=3600), text_limits=TextLimits(),
        bus_name="embedded", clock=clock, rng=random.Random(7),
        publish_failure_level=publish_failure_level,
    )


@pytest.fixture
def rig(tmp_path: Path, feed_server: FeedServer) -> Iterator[Rig]:
    db = Database(tmp_path / "state.sqlite3")
    registry, clock = CollectorRegistry(), ManualClock(now=1_700_000_000.0)
    item_log = EmbeddedItemLog(db)
    yield Rig(make_poller(db, item_log, registry, clock), SQLitePollState(db), item_log,
              registry, feed_server, clock)
    db.close()


def test_second_poll_is_conditional_and_adds_nothing(rig: Rig) -> None:
    rig.server.set("/wire.xml", rss(1, 2, 3))
    feed = rig.feed("wire", "/wire.xml")
    first = rig.poller.poll(feed)
    second = rig.poller.poll(feed)
    assert (first.outcome, first.new_items) == (PollOutcome.NEW_ITEMS, 3)
    assert second.outcome is PollOutcome.NOT_MODIFIED
    assert rig.log.count() == 3
    conditional = rig.server.hits("/wire.xml")[1].headers
    assert conditional["If-None-Match"] == rig.server.route("/wire.xml").etag  # type: ignore[union-attr]
    assert rig.sample("monitor_items_published_total", feed="wire") == 3
    assert rig.sample("monitor_feed_polls_total", feed="wire", outcome="not_modified") == 1


def test_each_parse_is_counted_by_the_parser_that_read_it(rig: Rig) -> None:
    rig.server.set("/wire.xml", rss(1, 2))
    rig.server.set("/doctype.xml", rss(3).replace(
        b"<rss", b'<!DOCTYPE rss SYSTEM "rss.dtd">\n<rss', 1))
    rig.poller.poll(rig.feed("wire", "/wire.xml"))
    assert rig.sample("monitor_feed_parses_total", parser="lxml") == 1
    assert rig.sample("monitor_feed_parses_total", parser="feedparser") == 0
    result = rig.poller.poll(rig.feed("doctype", "/doctype.xml"))  # the fast path refuses it
    assert (result.outcome, result.new_items) == (PollOutcome.NEW_ITEMS, 1)
    assert rig.sample("monitor_feed_parses_total", parser="feedparser") == 1


def test_identical_body_without_validators_is_not_parsed_again(rig: Rig) -> None:
    rig.server.set("/plain.xml", rss(1, 2), conditional=False)
    feed = rig.feed("plain", "/plain.xml")
    rig.poller.poll(feed)
    assert rig.poller.poll(feed).outcome is PollOutcome.UNCHANGED
    assert rig.sample("monitor_items_duplicates_skipped_total", feed="plain") == 0


def test_only_new_items_and_new_versions_are_published(rig: Rig) -> None:
    rig.server.set("/wire.xml", rss(1, 2))
    feed = rig.feed("wire", "/wire.xml")
    rig.poller.poll(feed)
    # A wire re-issues story 2 with a new headline and adds story 3.
    reissued = ITEM.format(n=2, title="UPDATE 2: Story 2").encode()
    rig.server.set("/wire.xml", rss(1, 3).replace(b"</channel>", reissued + b"</channel>"))
    result = rig.poller.poll(feed)
    assert result.new_items == 2
    logged = [item for _, item in rig.log.read_after(0)]
    versions = [item for item in logged if item.url == "https://wire.example/2"]
    assert [v.title for v in versions] == ["Story 2", "UPDATE 2: Story 2"]
    assert versions[0].item_id == versions[1].item_id
    assert versions[0].content_hash != versions[1].content_hash
    assert rig.sample("monitor_items_duplicates_skipped_total", feed="wire") == 1


def test_one_story_in_two_feeds_of_one_outlet_is_one_item(rig: Rig) -> None:
    rig.server.set("/all.xml", rss(1, 2))
    rig.server.set("/world.xml", rss(2, 3))
    rig.poller.poll(rig.feed("all", "/all.xml"))
    assert rig.poller.poll(rig.feed("world", "/world.xml")).new_items == 1
    assert rig.log.count() == 3


def test_restart_repeats_nothing(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.set("/wire.xml", rss(1, 2, 3), conditional=False)
    clock = ManualClock(now=1_700_000_000.0)
    for expected_new in (3, 0):
        db = Database(tmp_path / "state.sqlite3")  # a fresh process on the same state file
        item_log = EmbeddedItemLog(db)
        poller = make_poller(db, item_log, CollectorRegistry(), clock)
        feed_server.set("/wire.xml", rss(3, 2, 1), conditional=False)  # same items, new bytes
        feed = FeedConfig.model_validate(
            {"id": "wire", "url": feed_server.url("/wire.xml"), "source": "W"})
        assert poller.poll(feed).new_items == expected_new
        assert item_log.count() == 3
        db.close()


def test_unacknowledged_items_are_found_again(tmp_path: Path, feed_server: FeedServer) -> None:
    db = Database(tmp_path / "state.sqlite3")
    bus, registry, clock = FlakyPublisher(), CollectorRegistry(), ManualClock(now=1_700_000_000.0)
    poller = make_poller(db, bus, registry, clock)
    feed_server.set("/wire.xml", rss(1, 2, 3, 4))
    feed = FeedConfig.model_validate(
        {"id": "wire", "url": feed_server.url("/wire.xml"), "source": "W"})
    bus.failing, bus.accept = True, 1
    failed = poller.poll(feed)
    assert failed.outcome is PollOutcome.PUBLISH_ERROR
    assert "3 of 4 items kept for retry" in (failed.error or "")
    bus.failing = False
    retried = poller.poll(feed)
    # The validators were not advanced, so the retry fetched the full body again.
    assert feed_server.hits("/wire.xml")[1].status == 200
    assert retried.new_items == 3
    assert sorted(item.url or "" for item in bus.published) == [
        f"https://wire.example/{n}" for n in (1, 2, 3, 4)]
    assert registry.get_sample_value("monitor_publish_errors_total", {"bus": "embedded"}) == 1
    db.close()


@pytest.mark.parametrize(
    ("path", "setup", "outcome", "message"),
    [
        pytest.param("/gone.xml", {"status": 500}, PollOutcome.FETCH_ERROR, "HTTP 500",
                     id="server-error"),
        pytest.param("/page.html", {"content_type": "text/html"}, PollOutcome.PARSE_ERROR,
                     "not a feed", id="html-page-at-feed-url"),
        pytest.param("/missing.xml", None, PollOutcome.FETCH_ERROR, "HTTP 404", id="not-found"),
    ],
)
def test_broken_feed_fails_loudly_while_others_go_on(
    rig: Rig, caplog: pytest.LogCaptureFixture, path: str, setup: dict[str, object] | None,
    outcome: PollOutcome, message: str,
) -> None:
    if setup is not None:
        body = b"<html><body><h1>Moved</h1></body></html>" if path.endswith(".html") else b"x"
        rig.server.set(path, body, **setup)
    rig.server.set("/good.xml", rss(1))
    broken, good = rig.feed("broken", path), rig.feed("good", "/good.xml")
    with caplog.at_level(logging.DEBUG, logger="monitor.feeds.poller"):
        results = [rig.poller.poll(broken), rig.poller.poll(good), rig.poller.poll(broken)]
    assert [r.outcome for r in results] == [outcome, PollOutcome.NEW_ITEMS, outcome]
    assert message in (results[0].error or "")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "broken" in warnings[0].getMessage()  # logged once
    assert rig.sample("monitor_feed_consecutive_failures", feed="broken") == 2
    assert rig.sample("monitor_feed_consecutive_failures", feed="good") == 0
    # Backed off: the second failure waits longer than the interval, but it is still tried.
    assert results[2].next_check_at - rig.clock.now() >= 60


def test_retry_after_is_honoured(rig: Rig) -> None:
    rig.server.set("/busy.xml", b"", status=503, headers={"Retry-After": "900"})
    result = rig.poller.poll(rig.feed("busy", "/busy.xml"))
    assert result.outcome is PollOutcome.FETCH_ERROR
    assert result.next_check_at - rig.clock.now() >= 900


def test_max_age_stretches_the_interval(rig: Rig) -> None:
    rig.server.set("/cached.xml", rss(1), headers={"Cache-Control": "public, max-age=1800"})
    result = rig.poller.poll(rig.feed("cached", "/cached.xml"))
    assert result.next_check_at - rig.clock.now() >= 1800


def test_recovery_resets_failures_and_is_logged(rig: Rig, caplog: pytest.LogCaptureFixture
                                                ) -> None:
    rig.server.set("/flaky.xml", rss(1), status=502)
    feed = rig.feed("flaky", "/flaky.xml")
    rig.poller.poll(feed)
    rig.server.change("/flaky.xml", status=200)
    with caplog.at_level(logging.INFO, logger="monitor.feeds.poller"):
        assert rig.poller.poll(feed).outcome is PollOutcome.NEW_ITEMS
    assert any("recovered" in r.getMessage() for r in caplog.records)
    assert rig.state.load("flaky").consecutive_failures == 0
    last_success = rig.sample("monitor_feed_last_success_timestamp_seconds", feed="flaky")
    assert last_success == rig.clock.now()


def test_permanent_redirect_is_followed_and_reported_once(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.server.set("/new.xml", rss(1))
    rig.server.set("/old.xml", b"", status=301, headers={"Location": "/new.xml"})
    feed = rig.feed("moved", "/old.xml")
    with caplog.at_level(logging.WARNING, logger="monitor.feeds.poller"):
        assert rig.poller.poll(feed).new_items == 1
        rig.poller.poll(feed)
    reports = [r for r in caplog.records if "redirects permanently" in r.getMessage()]
    assert len(reports) == 1 and rig.server.url("/new.xml") in reports[0].getMessage()


def test_oversized_body_is_refused(tmp_path: Path, feed_server: FeedServer) -> None:
    db = Database(tmp_path / "s.sqlite3")
    poller = make_poller(db, EmbeddedItemLog(db), CollectorRegistry(), ManualClock(now=0.0),
                         max_body_bytes=10_000)
    feed_server.set("/huge.xml", rss(*range(200)))
    feed = FeedConfig.model_validate(
        {"id": "huge", "url": feed_server.url("/huge.xml"), "source": "W"})
    result = poller.poll(feed)
    assert result.outcome is PollOutcome.FETCH_ERROR and "10000-byte limit" in (result.error or "")
    db.close()


def test_slow_feed_times_out(tmp_path: Path, feed_server: FeedServer) -> None:
    db = Database(tmp_path / "s.sqlite3")
    poller = make_poller(db, EmbeddedItemLog(db), CollectorRegistry(), ManualClock(now=0.0))
    feed_server.set("/slow.xml", rss(1), delay_seconds=3.0)  # the rig's timeout is 2 s
    feed = FeedConfig.model_validate(
        {"id": "slow", "url": feed_server.url("/slow.xml"), "source": "W"})
    result = poller.poll(feed)
    assert result.outcome is PollOutcome.FETCH_ERROR and "timed out" in (result.error or "")
    db.close()


@pytest.mark.parametrize(("watch_level", "logged"), [
    pytest.param(None, True, id="embedded-no-watch"),
    pytest.param(logging.WARNING, True, id="broker-reachable"),
    pytest.param(logging.DEBUG, False, id="outage-already-reported"),
])
def test_a_publish_failure_is_one_warning_unless_the_broker_watch_reported_the_outage(
        tmp_path: Path, feed_server: FeedServer, caplog: pytest.LogCaptureFixture,
        watch_level: int | None, logged: bool) -> None:
    # A broker outage with many feeds was one WARNING per feed on top of the watch's line.
    db, bus = Database(tmp_path / "state.sqlite3"), FlakyPublisher()
    poller = make_poller(db, bus, CollectorRegistry(), ManualClock(now=1_700_000_000.0),
                         publish_failure_level=None if watch_level is None
                         else (lambda _exc: watch_level))
    feed_server.set("/wire.xml", rss(1))
    bus.failing = True
    with caplog.at_level(logging.DEBUG, logger="monitor.feeds.poller"):
        result = poller.poll(FeedConfig.model_validate(
            {"id": "wire", "url": feed_server.url("/wire.xml"), "source": "W"}))
    assert result.outcome is PollOutcome.PUBLISH_ERROR
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert bool(warnings) is logged
    assert any("publish wire" in r.getMessage() for r in caplog.records)
    db.close()


# -- a new feed's backlog (issue 9): kept and matched, not alerted ----------------------------


def test_a_feeds_first_poll_is_backlog_and_later_items_and_versions_are_news(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.server.set("/wire.xml", rss(1, 2))
    feed = rig.feed("wire", "/wire.xml")
    with caplog.at_level(logging.INFO, logger="monitor.feeds.poller"):
        assert rig.poller.poll(feed).new_items == 2
    assert [item.backlog for _, item in rig.log.read_after(0)] == [True, True]
    assert any("first poll" in r.getMessage() and "2 item(s)" in r.getMessage()
               for r in caplog.records)
    # Later: a new story, and story 2 re-issued with a new headline. Both are news.
    reissued = ITEM.format(n=2, title="UPDATE 2: Story 2").encode()
    rig.server.set("/wire.xml", rss(1, 3).replace(b"</channel>", reissued + b"</channel>"))
    assert rig.poller.poll(feed).new_items == 2
    later = [item for _, item in rig.log.read_after(2)]
    assert sorted((item.title, item.backlog) for item in later) == [
        ("Story 3", False), ("UPDATE 2: Story 2", False)]


def test_backlog_items_are_logged_at_debug_and_news_at_info(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    # A cold start of 10,000 feeds logged a line for every item every feed listed
    # (bench/README.md, "The cold round"); the first poll's INFO line gives the count.
    rig.server.set("/wire.xml", rss(1, 2))
    feed = rig.feed("wire", "/wire.xml")
    with caplog.at_level(logging.DEBUG, logger="monitor.bus.embedded"):
        rig.poller.poll(feed)
        rig.server.set("/wire.xml", rss(1, 3))
        rig.poller.poll(feed)
    logged = sorted((r.levelname, r.getMessage().rpartition(": ")[2]) for r in caplog.records
                    if r.getMessage().startswith("item wire "))
    assert logged == [("DEBUG", "Story 1"), ("DEBUG", "Story 2"), ("INFO", "Story 3")]


def test_a_feed_added_later_has_its_own_backlog(rig: Rig) -> None:
    rig.server.set("/old.xml", rss(1))
    rig.poller.poll(rig.feed("old", "/old.xml"))  # the feed already polled: its backlog is past
    rig.server.set("/old.xml", rss(1, 2))
    rig.server.set("/new.xml", rss(10, 11))  # a feed just added to feeds.yaml
    rig.poller.poll(rig.feed("old", "/old.xml"))
    rig.poller.poll(rig.feed("new", "/new.xml"))
    backlog = {item.url: item.backlog for _, item in rig.log.read_after(1)}
    assert backlog == {"https://wire.example/2": False, "https://wire.example/10": True,
                       "https://wire.example/11": True}


def test_the_backlog_stays_backlog_until_a_poll_of_the_feed_succeeded(
        tmp_path: Path, feed_server: FeedServer) -> None:
    db = Database(tmp_path / "state.sqlite3")
    bus, clock = FlakyPublisher(), ManualClock(now=1_700_000_000.0)
    poller = make_poller(db, bus, CollectorRegistry(), clock)
    feed = FeedConfig.model_validate(
        {"id": "wire", "url": feed_server.url("/wire.xml"), "source": "W"})
    feed_server.set("/wire.xml", b"", status=503)  # the first try fails: no backlog read yet
    assert poller.poll(feed).outcome is PollOutcome.FETCH_ERROR
    feed_server.set("/wire.xml", rss(1, 2, 3))
    bus.failing, bus.accept = True, 1  # then the bus takes one item of three
    assert poller.poll(feed).outcome is PollOutcome.PUBLISH_ERROR
    bus.failing = False
    assert poller.poll(feed).new_items == 2  # the rest of the backlog, still backlog
    assert [item.backlog for item in bus.published] == [True, True, True]
    feed_server.set("/wire.xml", rss(1, 2, 3, 4))
    assert poller.poll(feed).new_items == 1
    assert bus.published[-1].backlog is False
    db.close()


def test_a_restart_does_not_make_a_known_feed_new_again(tmp_path: Path,
                                                         feed_server: FeedServer) -> None:
    clock = ManualClock(now=1_700_000_000.0)
    feed = FeedConfig.model_validate(
        {"id": "wire", "url": feed_server.url("/wire.xml"), "source": "W"})
    for numbers, expected in (((1,), [True]), ((1, 2), [True, False])):
        db = Database(tmp_path / "state.sqlite3")  # a fresh process on the same state file
        item_log = EmbeddedItemLog(db)
        feed_server.set("/wire.xml", rss(*numbers))
        make_poller(db, item_log, CollectorRegistry(), clock).poll(feed)
        assert [item.backlog for _, item in item_log.read_after(0)] == expected
        db.close()

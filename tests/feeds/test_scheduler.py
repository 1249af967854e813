"""PollScheduler with real APScheduler threads against a real HTTP server."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.bus.embedded import EmbeddedItemLog
from monitor.config.feeds import FeedConfig
from monitor.feeds.fetch import Fetcher, FetchLimits
from monitor.feeds.parse import TextLimits
from monitor.feeds.poller import FeedPoller
from monitor.feeds.schedule import SchedulePolicy
from monitor.feeds.scheduler import PollScheduler
from monitor.feeds.state import SQLitePollState
from monitor.metrics import Metrics
from monitor.store import Database
from tests.support.feed_server import LOOPBACK, FeedServer
from tests.support.waiting import eventually

RSS = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><item>'
       b"<title>One</title><link>https://wire.example/1</link></item></channel></rss>")


def feed(server: FeedServer, feed_id: str, interval: float = 1.0) -> FeedConfig:
    return FeedConfig.model_validate({"id": feed_id, "url": server.url(f"/{feed_id}.xml"),
                                      "source": "Wire", "interval": interval})


@pytest.fixture
def make_scheduler(tmp_path: Path) -> Iterator[object]:
    made: list[tuple[PollScheduler, Database]] = []

    def make(per_host: int = 1, workers: int = 4) -> PollScheduler:
        db = Database(tmp_path / f"state{len(made)}.sqlite3")
        fetcher = Fetcher(FetchLimits(user_agent="t", timeout_seconds=5,
                                      per_host_concurrency=per_host, allowed_networks=LOOPBACK))
        poller = FeedPoller(fetcher, SQLitePollState(db), EmbeddedItemLog(db),
                            Metrics(CollectorRegistry()),
                            policy=SchedulePolicy(backoff_cap_seconds=3600),
                            text_limits=TextLimits(), bus_name="embedded",
                            rng=random.Random(3))
        scheduler = PollScheduler(poller, workers=workers, jitter_ratio=0.1,
                                  rng=random.Random(3))
        made.append((scheduler, db))
        return scheduler

    yield make
    for scheduler, db in made:
        scheduler.shutdown()
        db.close()


def test_one_request_at_a_time_per_host(feed_server: FeedServer, make_scheduler) -> None:
    feeds = [feed(feed_server, f"f{n}") for n in range(4)]
    for f in feeds:
        feed_server.set(f"/{f.id}.xml", RSS, delay_seconds=0.2)
    scheduler = make_scheduler(per_host=1, workers=4)
    scheduler.start(feeds, {})
    # Every feed polled, then at least two rounds' worth of polls. Not "any 8 polls": on a
    # loaded machine three feeds took all 8 while the fourth waited for the host's slot.
    wanted = {f"/f{n}.xml" for n in range(4)}
    eventually(lambda: {r.path for r in feed_server.requests} >= wanted, 60,
               "every feed polled")
    assert scheduler.wait_for_polls(8, timeout_seconds=30)
    assert feed_server.max_in_flight == 1
    assert {r.path for r in feed_server.requests} == wanted


def test_a_slow_feed_never_runs_twice_at_once(feed_server: FeedServer, make_scheduler) -> None:
    slow = feed(feed_server, "slow", interval=1.0)
    feed_server.set("/slow.xml", RSS, delay_seconds=1.5)  # slower than its own interval
    scheduler = make_scheduler(per_host=4, workers=4)
    scheduler.start([slow], {})
    assert scheduler.wait_for_polls(2, timeout_seconds=30)
    assert feed_server.max_in_flight == 1


def test_retry_after_moves_the_next_run(feed_server: FeedServer, make_scheduler) -> None:
    busy, steady = feed(feed_server, "busy"), feed(feed_server, "steady")
    feed_server.set("/busy.xml", b"", status=429, headers={"Retry-After": "3600"})
    feed_server.set("/steady.xml", RSS)
    scheduler = make_scheduler(per_host=2)
    started = datetime.now(UTC)
    scheduler.start([busy, steady], {})
    assert scheduler.wait_for_polls(4, timeout_seconds=30)  # steady goes on polling
    assert len(feed_server.hits("/busy.xml")) == 1
    next_run = scheduler.next_run_at("busy")
    assert next_run is not None and (next_run - started).total_seconds() >= 3500


def test_backoff_survives_a_restart(feed_server: FeedServer, make_scheduler, tmp_path: Path
                                    ) -> None:
    broken = feed(feed_server, "broken", interval=600)
    feed_server.set("/broken.xml", b"", status=503, headers={"Retry-After": "1200"})
    first = make_scheduler()
    first.start([broken], {})
    assert first.wait_for_polls(1, timeout_seconds=30)
    first.shutdown()
    # The next process reads the state the first one left and keeps the feed backed off.
    state = SQLitePollState(Database(tmp_path / "state0.sqlite3"))
    second = make_scheduler()
    second.start([broken], {"broken": state.load("broken")})
    next_run = second.next_run_at("broken")
    assert next_run is not None and next_run.timestamp() > time.time() + 1100


def test_shutdown_during_a_poll_finishes_it_and_returns(feed_server: FeedServer,
                                                         make_scheduler) -> None:
    # Regression: APScheduler's shutdown(wait=True) used to deadlock with a job rescheduling
    # itself (both need the job-store lock).
    slow = feed(feed_server, "slow")
    feed_server.set("/slow.xml", RSS, delay_seconds=0.5)
    scheduler = make_scheduler()
    scheduler.start([slow], {})
    eventually(lambda: feed_server.in_flight, 10, "the poll on the wire")
    assert feed_server.in_flight == 1
    # A hang guard, not a speed limit: the deadlock never returned, so shutdown runs on a
    # thread that must end; 60 s, since a 5 s wall-clock limit failed on a loaded machine.
    stopping = threading.Thread(target=scheduler.shutdown, daemon=True)
    stopping.start()
    stopping.join(timeout=60)
    assert not stopping.is_alive(), "shutdown deadlocked with the poll in progress"
    assert scheduler.completed_polls == 1

"""The jobs PollScheduler makes: each feed's own interval and jitter, its own feed polled.

Start-up at 50,000 feeds shares one trigger per interval and hands APScheduler a job function
whose signature is worked out once (bench/metrics_scale.py); these check that nothing a job
does changed with that.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from monitor.config.feeds import FeedConfig
from monitor.feeds.poller import PollResult
from monitor.feeds.scheduler import PollScheduler
from monitor.metrics import PollOutcome
from monitor.model import FeedState

JITTER_RATIO = 0.1


class RecordingPoller:
    """Answers at once; the next check an hour away, so each feed is polled once."""

    def __init__(self) -> None:
        self.polled: list[str] = []
        self._lock = threading.Lock()

    def poll(self, feed: FeedConfig) -> PollResult:
        with self._lock:
            self.polled.append(feed.id)
        return PollResult(feed.id, PollOutcome.NO_NEW_ITEMS, 0, time.time() + 3600)


def feed(feed_id: str, interval: float) -> FeedConfig:
    return FeedConfig.model_validate({"id": feed_id, "url": f"https://{feed_id}.example/",
                                      "source": "Wire", "interval": interval})


@pytest.fixture
def scheduler() -> Iterator[PollScheduler]:
    made = PollScheduler(RecordingPoller(), workers=2,  # type: ignore[arg-type]
                         jitter_ratio=JITTER_RATIO, rng=random.Random(5))
    yield made
    made.shutdown()


def triggers(scheduler: PollScheduler) -> dict[str, tuple[float, float]]:
    """Each job's (interval, jitter) in seconds, read from APScheduler's own jobs."""
    return {job.id: (job.trigger.interval.total_seconds(), job.trigger.jitter)
            for job in scheduler._scheduler.get_jobs()}


def later(*feeds: FeedConfig) -> dict[str, FeedState]:
    # Backing off for an hour: the first run is exactly the state's next check.
    return {f.id: FeedState(f.id, consecutive_failures=1, next_check_at=time.time() + 3600)
            for f in feeds}


def test_every_job_keeps_its_feed_s_interval_and_jitter(scheduler: PollScheduler) -> None:
    feeds = [feed("a", 60), feed("b", 600), feed("c", 60), feed("d", 90)]
    states = later(*feeds)
    scheduler.start(feeds, states)
    assert triggers(scheduler) == {"a": (60, 6), "b": (600, 60), "c": (60, 6), "d": (90, 9)}
    for f in feeds:
        next_run = scheduler.next_run_at(f.id)
        assert next_run == datetime.fromtimestamp(states[f.id].next_check_at or 0, UTC)


def test_a_changed_interval_gets_its_own_trigger_and_keeps_a_closer_run(
        scheduler: PollScheduler) -> None:
    a, b = feed("a", 60), feed("b", 60)
    scheduler.start([a, b], later(a, b))
    before = scheduler.next_run_at("b")
    faster = feed("a", 30)
    assert scheduler.update([faster, b], {}) == ([], [], ["a"])
    assert triggers(scheduler) == {"a": (30, 3), "b": (60, 6)}
    next_a = scheduler.next_run_at("a")
    assert next_a is not None and next_a <= datetime.now(UTC) + timedelta(seconds=30)
    assert scheduler.next_run_at("b") == before


def test_each_job_polls_its_own_feed(scheduler: PollScheduler) -> None:
    feeds = [feed(name, 1) for name in ("x", "y", "z")]  # first runs within 0.1 s
    scheduler.start(feeds, {})
    assert scheduler.wait_for_polls(3, timeout_seconds=10)
    assert sorted(scheduler._poller.polled) == ["x", "y", "z"]  # type: ignore[attr-defined]

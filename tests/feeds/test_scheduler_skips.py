"""A poll still running when its feed's next run comes: the run is skipped and counted.

APScheduler logs a WARNING for each such skip (101 in one broker outage in issue 13; logsetup
holds them back); ``monitor_polls_skipped_total`` counts them instead.
"""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry

from monitor.config.feeds import FeedConfig
from monitor.feeds.poller import PollResult
from monitor.feeds.scheduler import PollScheduler
from monitor.metrics import Metrics, PollOutcome
from tests.support.waiting import eventually


class StuckPoller:
    """Polls that last until ``release`` is set (a publish waiting for an absent broker)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def poll(self, feed: FeedConfig) -> PollResult:
        self.release.wait(30)
        return PollResult(feed.id, PollOutcome.NO_NEW_ITEMS, 0, time.time() + 1)


def test_runs_skipped_while_the_previous_poll_runs_are_counted() -> None:
    metrics = Metrics(CollectorRegistry())
    poller = StuckPoller()
    scheduler = PollScheduler(poller, workers=2, jitter_ratio=0.0,  # type: ignore[arg-type]
                              on_skipped=metrics.polls_skipped.inc)
    wire = FeedConfig.model_validate({"id": "wire", "url": "http://wire.example/rss",
                                      "source": "Wire", "interval": 1})
    scheduler.start([wire], {})
    try:
        eventually(lambda: (metrics.registry.get_sample_value("monitor_polls_skipped_total")
                            or 0.0) >= 2.0, 15, "skipped runs counted")
    finally:
        poller.release.set()
        scheduler.shutdown()
    assert scheduler.completed_polls <= 1  # never two polls of one feed at once

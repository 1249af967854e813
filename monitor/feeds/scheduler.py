"""APScheduler wiring: one job per feed, never two runs of one feed at once.

Each job runs on an interval trigger with jitter; after every poll the job's next run is moved
to the time the poller computed (interval, max-age, backoff, Retry-After). A poll that fails
for a reason known to be passing (the state file busy) keeps the feed on its interval; any
other error is a bug: it goes to ``on_bug``, which stops the process (the service's choice),
rather than being logged once per interval forever.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import random
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_MAX_INSTANCES
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.config.feeds import FeedConfig
from monitor.errors import RecoverableError
from monitor.feeds.poller import FeedPoller, PollResult
from monitor.model import FeedState

log = logging.getLogger(__name__)

# The first round after start is spread over this many seconds at most, so that a restart
# does not fire every feed in the same second.
_START_SPREAD_SECONDS = 10.0


class PollScheduler:
    """Runs ``poller.poll(feed)`` for every feed, for as long as it is started."""

    def __init__(self, poller: FeedPoller, *, workers: int, jitter_ratio: float,
                 rng: random.Random | None = None,
                 on_skipped: Callable[[], None] | None = None,
                 on_bug: Callable[[BaseException], None] | None = None) -> None:
        self._poller = poller
        self._on_bug = on_bug
        self._jitter_ratio = jitter_ratio
        self._rng = rng or random.Random()
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        if on_skipped is not None:  # a run due while the feed's last poll still runs
            self._scheduler.add_listener(lambda _event: on_skipped(), EVENT_JOB_MAX_INSTANCES)
        self._polls_done = threading.Condition()
        self.completed_polls = 0
        # APScheduler's shutdown(wait=True) holds the job-store lock while it waits for running
        # jobs; a job that then calls modify_job would deadlock it. Jobs reschedule only under
        # this lock and only while not stopping, and shutdown flips the flag under it first.
        self._reschedule_lock = threading.Lock()
        self._stopping = False
        self._job = self._job_function()
        # One trigger per (interval, jitter): a trigger holds no per-job state once a job's
        # first run is given (later runs count from the previous one), and building one costs
        # about as much as the rest of add_job.
        self._triggers: dict[float, IntervalTrigger] = {}

    def _job_function(self) -> Callable[[FeedConfig], None]:
        # APScheduler checks every job's args against inspect.signature(func): ~50 us a job
        # for a bound method, a tenth of the time of a start with 50,000 feeds. A plain
        # function with its signature worked out once is checked in ~4 us.
        def poll(feed: FeedConfig) -> None:
            self._run(feed)

        setattr(poll, "__signature__", inspect.signature(poll))  # noqa: B010 - mypy
        return poll

    def start(self, feeds: Iterable[FeedConfig], states: dict[str, FeedState]) -> None:
        now = datetime.now(UTC)
        for feed in feeds:
            self._add(feed, self._first_run(feed, states.get(feed.id), now))
        self._scheduler.start()

    def update(self, feeds: Iterable[FeedConfig], states: dict[str, FeedState]
               ) -> tuple[list[str], list[str], list[str]]:
        """Make the jobs match ``feeds`` (a reloaded feeds.yaml): new feeds start soon,
        removed ones stop (a poll in progress finishes), changed ones keep their next run
        unless the new interval brings it closer. Returns (added, removed, changed) ids."""
        wanted = {feed.id: feed for feed in feeds}
        now = datetime.now(UTC)
        added, removed, changed = [], [], []
        with self._reschedule_lock:
            for job in self._scheduler.get_jobs():
                if job.id not in wanted:
                    job.remove()
                    removed.append(job.id)
                elif job.args[0] != wanted[job.id]:
                    feed = wanted[job.id]
                    soonest = now + timedelta(seconds=feed.interval_seconds)
                    self._add(feed, min(job.next_run_time or now, soonest))
                    changed.append(job.id)
            present = {job.id for job in self._scheduler.get_jobs()}
            for feed_id, feed in wanted.items():
                if feed_id not in present:
                    self._add(feed, self._first_run(feed, states.get(feed_id), now))
                    added.append(feed_id)
        return added, removed, changed

    def _first_run(self, feed: FeedConfig, state: FeedState | None, now: datetime) -> datetime:
        """Continue a backoff or Retry-After from before a restart; otherwise start soon."""
        if state and state.next_check_at and state.consecutive_failures:
            return max(now, datetime.fromtimestamp(state.next_check_at, UTC))
        spread = min(_START_SPREAD_SECONDS, feed.interval_seconds * self._jitter_ratio)
        return now + timedelta(seconds=self._rng.uniform(0, spread))

    def _add(self, feed: FeedConfig, first_run: datetime) -> None:
        self._scheduler.add_job(
            self._job, self._trigger(feed.interval_seconds), args=[feed], id=feed.id,
            name=f"poll {feed.id}", next_run_time=first_run, replace_existing=True,
        )

    def _trigger(self, interval_seconds: float) -> IntervalTrigger:
        trigger = self._triggers.get(interval_seconds)
        if trigger is None:
            trigger = self._triggers[interval_seconds] = IntervalTrigger(
                seconds=interval_seconds, jitter=interval_seconds * self._jitter_ratio,
                timezone=UTC,
            )
        return trigger

    def _run(self, feed: FeedConfig) -> None:
        result: PollResult | None = None
        try:
            result = self._poller.poll(feed)
        except RecoverableError as exc:  # the state file busy: the next interval tries again
            log.warning("poll %s: %s; the feed stays on its interval", feed.id, exc,
                        extra={"feed_id": feed.id})
        except Exception as exc:
            log.exception("poll %s: stopped by an error that retrying cannot mend", feed.id,
                          extra={"feed_id": feed.id})
            if self._on_bug is None:
                raise
            self._on_bug(exc)
        if result is not None:
            self._reschedule(feed.id, result.next_check_at)
        with self._polls_done:
            self.completed_polls += 1
            self._polls_done.notify_all()

    def _reschedule(self, feed_id: str, next_check_at: float) -> None:
        with self._reschedule_lock:
            if self._stopping:
                return
            with contextlib.suppress(JobLookupError):  # the feed was removed while being polled
                self._scheduler.modify_job(
                    feed_id, next_run_time=datetime.fromtimestamp(next_check_at, UTC)
                )

    def wait_for_polls(self, count: int, timeout_seconds: float) -> bool:
        """Block until ``count`` polls have completed in total; for tests and ``--once``."""
        with self._polls_done:
            return self._polls_done.wait_for(lambda: self.completed_polls >= count,
                                             timeout_seconds)

    def next_run_at(self, feed_id: str) -> datetime | None:
        job = self._scheduler.get_job(feed_id)
        return job.next_run_time if job else None

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def shutdown(self) -> None:
        """Stop scheduling; wait for the polls in progress to finish their unit of work."""
        with self._reschedule_lock:
            self._stopping = True
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

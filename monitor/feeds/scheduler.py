"""APScheduler wiring: one job per feed, never two runs of one feed at once.

Each job runs on an interval trigger with jitter; after every poll the job's next run is moved
to the time the poller computed (interval, max-age, backoff, Retry-After). A poll that fails
for a reason known to be passing (the state file busy) keeps the feed on its interval; any
other error is a bug: it goes to ``on_bug``, which stops the process (the service's choice),
rather than being logged once per interval forever.

The first round after a start is spread over up to half the feeds' intervals, so that it asks
no more of the process than the rounds after it when few feeds start (at 5,000 feeds a 10 s
spread made the first round 108 s long and thousands of polls late), and can end inside one
interval when many do and the cores allow. Runs wait for a worker in the order they fell due,
but the first poll of a feed never polled with success as if due two intervals later: at a
cold start (every first poll parses a whole document) the feeds already polled keep their
interval and the first round takes what CPU is left. Such a poll publishes backlog, which is
not alerted; a later poll, or a restart's first run of a feed polled before, may bring news.
No first poll waits more than two intervals behind the others, so a poller that cannot keep
up still polls feeds just added; and first polls leave one poll thread in eight to the
others, which otherwise found none while every first poll waited for a parse.
Every run but a first poll reports how late it started after APScheduler made it due
(``on_started``; the service counts the late ones, ``monitor_polls_late_total``): a first
poll's due time is a place in the start spread, and its lateness would make every cold start
of a large poller look like one that cannot keep its intervals.
"""

from __future__ import annotations

import contextlib
import heapq
import inspect
import itertools
import logging
import random
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES
from apscheduler.executors.base import BaseExecutor, run_job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.config.feeds import FeedConfig
from monitor.errors import RecoverableError
from monitor.feeds.poller import FeedPoller, PollResult
from monitor.model import FeedState

log = logging.getLogger(__name__)

# The first round after a start (or of feeds just added) is spread over each feed's interval,
# but no wider than starting the feeds at this many a second needs: a few feeds start at once,
# many at the pace of the rounds after. A first poll parses the whole body (50-70 ms of CPU
# for a document of bench/poll.py's corpus in 2026-11, ~15 ms since), so 10 a second is a
# fraction of a core.
_FIRST_POLLS_PER_SECOND = 10.0
# At most this share of the interval: a first round that the cores can do faster than one
# interval then ends before the next round begins (spread over the whole interval, the last
# first polls fell due just before it, so a cold round of 10,000 feeds never ended inside
# 60 s), and the rounds after it stay spread by the jitter and the pace of the first.
_FIRST_ROUND_SHARE = 0.5
# Below this the spread stays what it was (at most 10 s, within the jitter).
_MIN_START_SPREAD_SECONDS = 10.0
# A first poll waiting for a worker ranks as if due this many intervals later. One was not
# enough: a cold round of 10,000 feeds on 2 shared cores took ~110 s, and the polls of the
# second round that fell due after its first polls' rank waited behind them (2,749 late).
_FIRST_POLL_YIELD_INTERVALS = 2.0
# First polls may hold all the poll threads but one in this many (at 32 workers, 28): with
# all of them waiting for a parse process, polls of feeds already polled found no thread
# (105 of 5,763 late after a cold start's first minute, load 7; bench/README.md).
_RESERVED_SHARE = 8


class _OrderedThreadPool(BaseExecutor):  # type: ignore[misc]  # APScheduler is untyped
    """APScheduler's executor on ``workers`` threads that take the submitted runs in the
    order of ``rank(job, due)`` (then of submission), noting when each run was due so that
    it can tell how late it started (this queue is where a busy poller makes polls wait).
    ``rank`` also says whether a run is a first poll: those hold at most all the threads but
    ``workers // _RESERVED_SHARE`` (at least one thread for them), so that a poll of a feed
    already polled finds a thread even while every first poll waits for a parse process."""

    def __init__(self, workers: int, due: dict[str, datetime],
                 rank: Callable[[Any, datetime], tuple[float, bool]]) -> None:
        super().__init__()
        self._workers, self._due, self._rank = workers, due, rank
        self._first_limit = max(1, workers - workers // _RESERVED_SHARE)
        self._ready = threading.Condition()
        # (rank, submission, run): first polls and the others apart, each a heap.
        self._firsts: list[tuple[float, int, Callable[[], None]]] = []
        self._others: list[tuple[float, int, Callable[[], None]]] = []
        self._first_running = 0
        self._order = itertools.count()
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        # One run of a job at a time (max_instances=1): the entry cannot be overwritten
        # before the run reads it. Coalesced runs count from the earliest.
        self._due[job.id] = run_times[0]

        def run() -> None:  # as APScheduler's pool executors report a run
            try:
                events = run_job(job, job._jobstore_alias, run_times, self._logger.name)
            except BaseException as exc:
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, events)

        rank, first = self._rank(job, run_times[0])
        with self._ready:
            heapq.heappush(self._firsts if first else self._others,
                           (rank, next(self._order), run))
            self._ready.notify()
            if len(self._threads) < self._workers:  # started as needed, as concurrent.futures'
                thread = threading.Thread(target=self._work, daemon=True,
                                          name=f"poll-{len(self._threads)}")
                self._threads.append(thread)
                thread.start()

    def _take(self) -> tuple[Callable[[], None], bool] | None:
        """The next run a thread may start (and whether it is a first poll), or None."""
        first_allowed = bool(self._firsts) and self._first_running < self._first_limit
        if self._others and not (first_allowed and self._firsts[0] < self._others[0]):
            return heapq.heappop(self._others)[2], False
        if first_allowed:
            self._first_running += 1
            return heapq.heappop(self._firsts)[2], True
        return None

    def _work(self) -> None:
        while True:
            with self._ready:
                while (taken := self._take()) is None:
                    if self._stopping and not self._firsts and not self._others:
                        return
                    self._ready.wait()
            run, first = taken
            try:
                run()
            except Exception:  # reporting the run failed (a listener): keep the thread
                self._logger.exception("reporting a run failed")
            finally:
                if first:
                    with self._ready:
                        self._first_running -= 1
                        self._ready.notify()

    def shutdown(self, wait: bool = True) -> None:
        """The runs already queued still run (each ends at once when the fetcher is stopped);
        then the threads end."""
        with self._ready:
            self._stopping = True
            self._ready.notify_all()
        if wait:
            for thread in self._threads:
                thread.join()


class PollScheduler:
    """Runs ``poller.poll(feed)`` for every feed, for as long as it is started."""

    def __init__(self, poller: FeedPoller, *, workers: int, jitter_ratio: float,
                 rng: random.Random | None = None,
                 on_skipped: Callable[[], None] | None = None,
                 on_bug: Callable[[BaseException], None] | None = None,
                 on_started: Callable[[float], None] | None = None) -> None:
        self._poller = poller
        self._on_bug = on_bug
        self._on_started = on_started  # with each run's start delay in seconds
        self._jitter_ratio = jitter_ratio
        self._rng = rng or random.Random()
        self._due: dict[str, datetime] = {}
        # Feeds whose first run start() or update() spread and that have not run yet.
        self._spread: set[str] = set()
        # Feeds never polled with success (no stored state, or only failures) whose next run
        # has not started: that run brings backlog only, so it yields (``_rank``) and its start
        # delay is not counted (its due time was a place in the spread, not an interval kept).
        self._unpolled: set[str] = set()
        self._scheduler = BackgroundScheduler(
            executors={"default": _OrderedThreadPool(workers, self._due, self._rank)},
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
        feeds = list(feeds)
        for feed in feeds:
            self._add(feed, self._first_run(feed, states.get(feed.id), now, len(feeds)))
        self._scheduler.start()

    def poll_spread_feeds_now(self) -> list[str]:
        """Bring every first run still waiting in the start spread to now (``--once``: one
        round as fast as the workers go). A first run held by a backoff or Retry-After from
        before the start stays where it is. Returns the feeds moved."""
        now = datetime.now(UTC)
        with self._reschedule_lock:
            if self._stopping:
                return []
            moved = sorted(self._spread)
            for feed_id in moved:
                with contextlib.suppress(JobLookupError):  # removed meanwhile
                    self._scheduler.modify_job(feed_id, next_run_time=now)
        return moved

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
            new = [feed for feed_id, feed in wanted.items() if feed_id not in present]
            for feed in new:
                self._add(feed, self._first_run(feed, states.get(feed.id), now, len(new)))
                added.append(feed.id)
            self._spread.difference_update(removed)
            self._unpolled.difference_update(removed)
        return added, removed, changed

    def _first_run(self, feed: FeedConfig, state: FeedState | None, now: datetime,
                   starting: int) -> datetime:
        """Continue a backoff or Retry-After from before a restart; otherwise a moment in the
        start spread of ``starting`` feeds."""
        if state is None or state.last_success_at is None:
            self._unpolled.add(feed.id)
        if state and state.next_check_at and state.consecutive_failures:
            return max(now, datetime.fromtimestamp(state.next_check_at, UTC))
        self._spread.add(feed.id)
        return now + timedelta(seconds=self._rng.uniform(
            0, start_spread_seconds(feed.interval_seconds, self._jitter_ratio, starting)))

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

    def _rank(self, job: Any, due: datetime) -> tuple[float, bool]:
        """When a run waiting for a worker counts as due, and whether it is a feed's first
        poll: those count later than they are (they yield to the feeds already polled, by
        _FIRST_POLL_YIELD_INTERVALS at most). A restart's first runs are not first polls:
        they may bring news."""
        feed: FeedConfig = job.args[0]
        first = job.id in self._unpolled
        yielded = first * _FIRST_POLL_YIELD_INTERVALS * feed.interval_seconds
        return due.timestamp() + yielded, first

    def _run(self, feed: FeedConfig) -> None:
        due = self._due.pop(feed.id, None)
        with self._reschedule_lock:
            self._spread.discard(feed.id)
            first = feed.id in self._unpolled
            self._unpolled.discard(feed.id)
        if due is not None and self._on_started is not None and not first:
            self._on_started((datetime.now(UTC) - due).total_seconds())
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


def start_spread_seconds(interval_seconds: float, jitter_ratio: float, starting: int) -> float:
    """The window over which the first polls of ``starting`` feeds of this interval fall."""
    least = min(_MIN_START_SPREAD_SECONDS, interval_seconds * jitter_ratio)
    return min(interval_seconds * _FIRST_ROUND_SHARE,
               max(least, starting / _FIRST_POLLS_PER_SECOND))

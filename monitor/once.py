"""One-shot runs (``monitor run --once``, ``monitor poll --once``): poll every feed that is due
once, let the match and alert stages catch up, stop, and say in one line what happened::

    monitor: once: 9 feeds (7 ok, 2 failed), 41 new items, 3 matches, 3 alerts sent,
    0 pending, 0 dead-lettered                                       (one line on stderr)

Exit status (also in README.md, below the command table, and ``monitor run --help``):

- 0: every due feed polled, at least one successfully; every new item matched; every alert
  delivered (or nothing to alert).
- 1: work left at a deadline (a feed not polled in time, items not matched, alerts pending:
  they stay queued for the next run), no feed polled successfully, or an alert given up
  (dead-lettered) in this run. The line ends with the reasons.

A feed still backing off from failures before this run, or told by Retry-After to wait, is not
polled early (that would hammer a failing server from cron): it counts as "backing off".
Every count comes from this process's own metrics, so it is what this run did.
"""

from __future__ import annotations

import math
import time
from collections import Counter as Tally
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from prometheus_client import Counter

from monitor.metrics import AlertOutcome
from monitor.service import Service

# The first round is not spread here (poll_spread_feeds_now); a first run later than this was
# carried over from a backoff or a Retry-After before this run.
_DUE_NOW_SECONDS = 30.0
_DRAIN_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class OnceReport:
    """What a one-shot run did; ``None`` counts belong to stages that did not run here."""

    feeds: int
    ok: int
    failed: int
    backing_off: int
    new_items: int
    matches: int | None = None
    unmatched: bool = False  # items still waiting for the match stage at its deadline
    alerts_sent: int | None = None
    alerts_pending: int | None = None
    dead_lettered: int = 0

    @property
    def not_polled(self) -> int:
        return self.feeds - self.ok - self.failed - self.backing_off

    def problems(self) -> list[str]:
        found = []
        if self.not_polled:
            found.append(f"{self.not_polled} feed(s) not polled in time")
        if self.feeds and not self.ok:
            found.append("no feed polled successfully")
        if self.unmatched:
            found.append("items left unmatched")
        if self.alerts_pending:
            found.append(f"{self.alerts_pending} alert(s) pending")
        if self.dead_lettered:
            found.append(f"{self.dead_lettered} alert(s) dead-lettered")
        return found

    @property
    def exit_code(self) -> int:
        return 1 if self.problems() else 0

    def line(self) -> str:
        feeds = [f"{self.ok} ok", f"{self.failed} failed"]
        if self.backing_off:
            feeds.append(f"{self.backing_off} backing off")
        if self.not_polled:
            feeds.append(f"{self.not_polled} not polled")
        parts = [f"{self.feeds} feeds ({', '.join(feeds)})", f"{self.new_items} new items"]
        if self.matches is not None:
            parts.append(f"{self.matches} matches")
        if self.alerts_sent is not None:
            parts.append(f"{self.alerts_sent} alerts sent")
            if self.alerts_pending is not None:
                parts.append(f"{self.alerts_pending} pending")
            parts.append(f"{self.dead_lettered} dead-lettered")
        problems = self.problems()
        verdict = f"; exit 1: {', '.join(problems)}" if problems else ""
        return f"monitor: once: {', '.join(parts)}{verdict}"


def run_once(service: Service) -> OnceReport:
    """Start ``service``, poll its due feeds once, drain the match and alert stages, and
    report. The caller closes the service."""
    service.start()
    service.scheduler.poll_spread_feeds_now()  # one round as fast as it goes, not spread
    wanted = {feed.id for feed in service.feeds if feed.enabled}
    deferred = _backing_off(service, wanted)
    _wait_for_polls(service, wanted - deferred, _poll_deadline_seconds(service, wanted))
    service.scheduler.shutdown()  # a short-interval feed must not be polled again meanwhile
    matched = service.drain_matches(timeout_seconds=_DRAIN_SECONDS)
    service.drain_alerts(timeout_seconds=_DRAIN_SECONDS)
    return _report(service, wanted, deferred, matched)


def _poll_deadline_seconds(service: Service, wanted: set[str]) -> float:
    """Long enough for every feed to use its whole fetch deadline (which covers every redirect
    hop) while waiting its turn for a worker and for its host."""
    poll = service.settings.poll
    hosts = Tally(urlsplit(feed.url).hostname for feed in service.feeds if feed.id in wanted)
    rounds = max(math.ceil(len(wanted) / poll.workers),
                 math.ceil(max(hosts.values(), default=0) / poll.per_host_concurrency))
    return poll.timeout_seconds * rounds + 60


def _backing_off(service: Service, wanted: set[str]) -> set[str]:
    """Feeds whose first poll is not due now; read before ``_polled`` so that a feed polled
    (and so rescheduled) in between counts as polled, not as backing off."""
    later = datetime.now(UTC) + timedelta(seconds=_DUE_NOW_SECONDS)
    first_runs = {feed_id: service.scheduler.next_run_at(feed_id) for feed_id in wanted}
    deferred = {feed_id for feed_id, at in first_runs.items() if at is not None and at > later}
    return deferred - _polled(service)


def _wait_for_polls(service: Service, wanted: set[str], timeout_seconds: float) -> None:
    """Until every feed in ``wanted`` has been polled, the deadline, or SIGTERM."""
    scheduler = service.scheduler
    deadline = time.monotonic() + timeout_seconds
    while not service.stopping.is_set():
        done = scheduler.completed_polls  # read first: a poll ending after it wakes the wait
        if done >= len(wanted) and wanted <= _polled(service):
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        scheduler.wait_for_polls(done + 1, timeout_seconds=min(remaining, 1.0))


def _polled(service: Service) -> set[str]:
    return {feed for feed, _ in service.metrics.feeds.polls_by_feed()}


def _report(service: Service, wanted: set[str], deferred: set[str],
            matched: bool) -> OnceReport:
    metrics = service.metrics
    polls = metrics.feeds.polls_by_feed()
    ok = {feed for feed, outcome in polls if not outcome.failed}
    polled = {feed for feed, _ in polls} & wanted
    alerts = {outcome: count for (_, outcome), count in _totals(metrics.alerts).items()}
    has_alerts = service.alert_stage is not None
    return OnceReport(
        feeds=len(wanted), ok=len(ok & wanted), failed=len(polled - ok),
        backing_off=len(deferred - polled),
        new_items=metrics.feeds.total("items_published"),
        matches=(int(sum(_totals(metrics.matches).values()))
                 if service.match_stage is not None else None),
        unmatched=not matched,
        alerts_sent=int(alerts.get(AlertOutcome.SENT, 0)) if has_alerts else None,
        alerts_pending=service.alert_stage.pending() if service.alert_stage else None,
        dead_lettered=int(alerts.get(AlertOutcome.DEAD_LETTERED, 0)),
    )


def _totals(counter: Counter) -> dict[tuple[str, ...], float]:
    """A counter's values by label values, read from the metric alone, not the registry."""
    totals: dict[tuple[str, ...], float] = {}
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                key = tuple(sample.labels.values())
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals

"""``monitor status``: what running daemons report about themselves, read from their /metrics.

Each process's own endpoint is the one source of truth for its stages (embedded or Kafka), so
the command needs no access to the broker: it scrapes and summarises. Above a few thousand
feeds the daemon lists only its unhealthy feeds (MONITOR_METRICS__PER_FEED); the counts by
health cover all of them.

A Kafka deployment is several processes (poll, match, alert, desk, each possibly in several
copies): given their endpoints (``--url`` repeated, or MONITOR_STATUS__ENDPOINTS),
:func:`read_endpoints` scrapes each and :func:`render_pipeline` shows one line per process (its
roles, from ``monitor_process_info``; up, or down and why) and the pipeline as a whole: feeds
by health summed over the pollers, consumer lag per stage summed over the replicas, the alert
outbox summed, claims tracked. URLs are shown without their credentials.

The text of a feed's last error is no label value (it is free text from the network), so it is
not on /metrics: ``read_last_errors`` takes it from the local state file, read-only, when
status runs beside a daemon that keeps its poll state there (not with MONITOR_POLL__SHARED).
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from monitor.errors import MonitorError
from monitor.feed_table import FeedHealth
from monitor.redact import redact_url, redact_urls_in


@dataclass
class FeedStatus:
    last_success: float | None = None
    failures: float = 0.0
    next_poll: float | None = None
    poll_started: float | None = None
    last_error: str | None = None


@dataclass
class Status:
    feeds: dict[str, FeedStatus] = field(default_factory=lambda: defaultdict(FeedStatus))
    by_health: dict[str, float] = field(default_factory=dict)
    claims_tracked: float | None = None
    consumer_lag: dict[str, float] = field(default_factory=dict)
    outbox_size: float | None = None
    oldest_pending_seconds: float | None = None
    roles: list[str] = field(default_factory=list)  # monitor_process_info: poll, match, ...


_FEED_FIELDS = {
    "monitor_feed_last_success_timestamp_seconds": "last_success",
    "monitor_feed_consecutive_failures": "failures",
    "monitor_feed_next_poll_timestamp_seconds": "next_poll",
    "monitor_feed_poll_started_timestamp_seconds": "poll_started",
}


def parse_status(metrics_text: str) -> Status:
    status = Status()
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name in _FEED_FIELDS:
                setattr(status.feeds[labels["feed"]], _FEED_FIELDS[name], value)
            elif name == "monitor_feeds_by_health":
                status.by_health[labels["health"]] = value
            elif name == "monitor_claims_tracked":
                status.claims_tracked = value
            elif name == "monitor_consumer_lag":
                status.consumer_lag[labels["stage"]] = value
            elif name == "monitor_alert_outbox_size":
                status.outbox_size = value
            elif name == "monitor_alert_oldest_pending_age_seconds":
                status.oldest_pending_seconds = value
            elif name == "monitor_process_info" and value:
                status.roles.append(labels["role"])
    return status


class Unreadable(MonitorError):
    """An endpoint that did not answer with metrics; the message says why, redacted."""


def scrape(url: str, timeout_seconds: float = 5.0) -> Status:
    """The status one endpoint reports; Unreadable when it cannot be read or parsed."""
    import httpx

    try:
        response = httpx.get(url, timeout=timeout_seconds)
        response.raise_for_status()
        return parse_status(response.text)
    except httpx.HTTPError as exc:
        raise Unreadable(f"{type(exc).__name__}: {redact_urls_in(str(exc))}") from exc
    except ValueError as exc:  # the parser's word for text that is not the exposition format
        raise Unreadable(f"not a Prometheus metrics page ({exc})") from exc


def fetch_status(url: str, timeout_seconds: float = 5.0) -> Status:
    try:
        return scrape(url, timeout_seconds)
    except Unreadable as exc:
        raise MonitorError(f"status: cannot read {redact_url(url)}: {exc}; is the daemon "
                           "running with this MONITOR_HTTP__ADDRESS?") from exc


def read_last_errors(state_path: Path) -> dict[str, str]:
    """Feed id -> last error from the daemon's state file, opened read-only; empty when there
    is no such file (status on another host, or pollers keeping their state in Kafka)."""
    if not state_path.is_file():
        return {}
    try:
        with sqlite3.connect(f"{state_path.resolve().as_uri()}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT feed_id, last_error FROM feed_state "
                                "WHERE last_error IS NOT NULL").fetchall()
    except sqlite3.Error:  # an older or foreign file: status still shows what /metrics says
        return {}
    return dict(rows)


def _ago(moment: float | None, now: float) -> str:
    return "never" if moment is None else f"{now - moment:.0f} s ago"


def _in(moment: float | None, now: float) -> str:
    return "-" if moment is None else f"in {max(0.0, moment - now):.0f} s"


def _note(feed: FeedStatus, error: str | None, now: float) -> str:
    if feed.poll_started is not None:
        return f"polling for {now - feed.poll_started:.0f} s"
    if error and feed.failures:
        return error if len(error) <= _ERROR_CHARS else error[:_ERROR_CHARS - 3] + "..."
    return ""


_ERROR_CHARS = 120


def render_status(status: Status, now: float | None = None,
                  errors: Mapping[str, str] | None = None) -> str:
    """Failing feeds first, then the stalest: what ops look at first. ``errors`` (feed id ->
    last error, see ``read_last_errors``) fills the last column of failing feeds."""
    now = time.time() if now is None else now
    errors = errors or {}
    rows = sorted(status.feeds.items(),
                  key=lambda item: (-item[1].failures, item[1].last_success or 0.0, item[0]))
    width = max([len("feed"), *(len(feed_id) for feed_id, _ in rows)])
    lines = [f"{'feed':<{width}}  {'last success':>14}  {'failures':>8}  {'next poll':>10}  "
             "last error / poll in flight"]
    lines += [(f"{feed_id:<{width}}  {_ago(feed.last_success, now):>14}  {feed.failures:>8.0f}"
               f"  {_in(feed.next_poll, now):>10}  {_note(feed, errors.get(feed_id), now)}"
               ).rstrip() for feed_id, feed in rows]
    lines += _health_summary(status)
    if status.claims_tracked is not None:
        lines.append(f"claims tracked: {status.claims_tracked:.0f}")
    if status.consumer_lag:
        lines.append("consumer lag: " + ", ".join(
            f"{stage} {lag:.0f}" for stage, lag in sorted(status.consumer_lag.items())))
    if status.outbox_size is not None:
        oldest = status.oldest_pending_seconds or 0.0
        lines.append(f"alert outbox: {status.outbox_size:.0f} pending, oldest {oldest:.0f} s")
    return "\n".join(lines)


def _urgency(item: tuple[str, float]) -> int:
    order = [health.value for health in FeedHealth]
    return order.index(item[0]) if item[0] in order else len(order)


def _health_summary(status: Status) -> list[str]:
    counts = {health: count for health, count in status.by_health.items() if count}
    if not counts:
        return []
    line = "feeds: " + ", ".join(f"{count:.0f} {health.replace('_', ' ')}"
                                 for health, count in sorted(counts.items(), key=_urgency))
    if len(status.feeds) < sum(counts.values()):
        line += " (only unhealthy feeds listed; MONITOR_METRICS__PER_FEED=all lists every one)"
    return [line]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One process of the pipeline as read: its status, or why it could not be read."""

    url: str
    status: Status | None
    error: str | None = None

    @property
    def up(self) -> bool:
        return self.status is not None


def read_endpoints(urls: Sequence[str], timeout_seconds: float = 5.0) -> list[Endpoint]:
    """Scrape every endpoint; one that does not answer is an Endpoint with its error."""
    found = []
    for url in urls:
        try:
            found.append(Endpoint(url, scrape(url, timeout_seconds)))
        except Unreadable as exc:
            found.append(Endpoint(url, None, str(exc)))
    return found


def roles_of(status: Status) -> list[str]:
    """The roles a process reports; for one that predates ``monitor_process_info``, what its
    metrics show: a stage's consumer lag, feeds of a poller."""
    if status.roles:
        return sorted(set(status.roles), key=_ROLE_ORDER.index)
    found = ["poll"] if status.feeds or any(status.by_health.values()) else []
    return found + sorted(stage for stage in status.consumer_lag if stage in _ROLE_ORDER)


_ROLE_ORDER = ["poll", "match", "alert", "desk"]


def combine(statuses: Iterable[Status]) -> Status:
    """The pipeline as one status: feeds and counts by health summed over the pollers (each
    reports its share), lag per stage and the outbox summed over the replicas (the desks: the
    furthest behind), the oldest pending alert of any, claims tracked as the processes that
    load claims agree on (max)."""
    total = Status()
    for status in statuses:
        total.feeds.update(status.feeds)  # a feed is polled by one poller of a group
        for health, count in status.by_health.items():
            total.by_health[health] = total.by_health.get(health, 0.0) + count
        for stage, lag in status.consumer_lag.items():
            total.consumer_lag[stage] = _add_lag(stage, total.consumer_lag.get(stage), lag)
        total.claims_tracked = _most(total.claims_tracked, status.claims_tracked)
        if status.outbox_size is not None and "alert" in roles_of(status):
            total.outbox_size = (total.outbox_size or 0.0) + status.outbox_size
            total.oldest_pending_seconds = _most(total.oldest_pending_seconds,
                                                 status.oldest_pending_seconds)
    return total


def _add_lag(stage: str, so_far: float | None, lag: float) -> float:
    """Replicas of a stage share its partitions: their lags add up. Every desk reads the whole
    match log, so the desks' lag is the one furthest behind."""
    if so_far is None:
        return lag
    return max(so_far, lag) if stage == "desk" else so_far + lag


def _most(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def render_pipeline(endpoints: Sequence[Endpoint], now: float | None = None) -> str:
    """One line per process (URL redacted, roles, up or down and why), then the pipeline's
    feeds and summary as :func:`render_status` shows one process's."""
    shown = [redact_url(endpoint.url) for endpoint in endpoints]
    width = max([len("process"), *(len(url) for url in shown)])
    lines = [f"{'process':<{width}}  {'roles':<16}  state"]
    for url, endpoint in zip(shown, endpoints, strict=True):
        roles = "+".join(roles_of(endpoint.status)) if endpoint.status else ""
        state = "up" if endpoint.up else f"DOWN: {endpoint.error}"
        lines.append(f"{url:<{width}}  {roles or '-':<16}  {state}")
    up = [endpoint.status for endpoint in endpoints if endpoint.status is not None]
    lines.append(f"pipeline: {len(up)} of {len(endpoints)} processes up")
    lines.append("")
    lines.append(render_status(combine(up), now))
    return "\n".join(lines)

"""``monitor status``: what a running daemon reports about itself, read from its /metrics.

The daemon's own endpoint is the one source of truth for every stage (embedded or Kafka), so
the command needs no access to the broker: it scrapes and summarises. Above a few thousand
feeds the daemon lists only its unhealthy feeds (MONITOR_METRICS__PER_FEED); the counts by
health cover all of them.

The text of a feed's last error is no label value (it is free text from the network), so it is
not on /metrics: ``read_last_errors`` takes it from the local state file, read-only, when
status runs beside a daemon that keeps its poll state there (not with MONITOR_POLL__SHARED).
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from monitor.errors import MonitorError
from monitor.feed_table import FeedHealth


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
    return status


def fetch_status(url: str, timeout_seconds: float = 5.0) -> Status:
    import httpx

    try:
        response = httpx.get(url, timeout=timeout_seconds)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise MonitorError(f"status: cannot read {url}: {exc}; is the daemon running with "
                           "this MONITOR_HTTP__ADDRESS?") from exc
    return parse_status(response.text)


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

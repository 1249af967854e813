"""``monitor status``: what a running daemon reports about itself, read from its /metrics.

The daemon's own endpoint is the one source of truth for every stage (embedded or Kafka), so
the command needs no access to its state file or the broker: it scrapes and summarises.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from monitor.errors import MonitorError


@dataclass
class FeedStatus:
    last_success: float | None = None
    failures: float = 0.0
    next_poll: float | None = None


@dataclass
class Status:
    feeds: dict[str, FeedStatus] = field(default_factory=lambda: defaultdict(FeedStatus))
    claims_tracked: float | None = None
    consumer_lag: dict[str, float] = field(default_factory=dict)
    outbox_size: float | None = None
    oldest_pending_seconds: float | None = None


def parse_status(metrics_text: str) -> Status:
    status = Status()
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "monitor_feed_last_success_timestamp_seconds":
                status.feeds[labels["feed"]].last_success = value or None
            elif name == "monitor_feed_consecutive_failures":
                status.feeds[labels["feed"]].failures = value
            elif name == "monitor_feed_next_poll_timestamp_seconds":
                status.feeds[labels["feed"]].next_poll = value or None
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


def _ago(moment: float | None, now: float) -> str:
    return "never" if moment is None else f"{now - moment:.0f} s ago"


def _in(moment: float | None, now: float) -> str:
    return "-" if moment is None else f"in {max(0.0, moment - now):.0f} s"


def render_status(status: Status, now: float | None = None) -> str:
    """Failing feeds first, then the stalest: what ops look at first."""
    now = time.time() if now is None else now
    rows = sorted(status.feeds.items(),
                  key=lambda item: (-item[1].failures, item[1].last_success or 0.0, item[0]))
    width = max([len("feed"), *(len(feed_id) for feed_id, _ in rows)])
    lines = [f"{'feed':<{width}}  {'last success':>14}  {'failures':>8}  {'next poll':>10}"]
    lines += [f"{feed_id:<{width}}  {_ago(feed.last_success, now):>14}  {feed.failures:>8.0f}  "
              f"{_in(feed.next_poll, now):>10}" for feed_id, feed in rows]
    if status.claims_tracked is not None:
        lines.append(f"claims tracked: {status.claims_tracked:.0f}")
    if status.consumer_lag:
        lines.append("consumer lag: " + ", ".join(
            f"{stage} {lag:.0f}" for stage, lag in sorted(status.consumer_lag.items())))
    if status.outbox_size is not None:
        oldest = status.oldest_pending_seconds or 0.0
        lines.append(f"alert outbox: {status.outbox_size:.0f} pending, oldest {oldest:.0f} s")
    return "\n".join(lines)

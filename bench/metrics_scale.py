"""Metrics and start-up at scale: what 1,000 / 10,000 / 50,000 feeds cost the poll stage.

    .venv/bin/python bench/metrics_scale.py [--feeds 1000,10000,50000] [--failing-ratio 0.02]

Each feed count runs in a child process of its own (peak RSS is per process), which builds the
poll stage's in-memory side as ``monitor.service`` builds it, without network or Kafka:

- ``feeds.yaml``: a feeds.yaml of N feeds written and ``load_feeds`` timed (start-up reads it);
- ``state``: N feed states written to a real SQLite state file, then ``load_all()`` timed
  (what start-up reads); ``--failing-ratio`` of them are failing (5 failures, a last error);
- ``metrics``: ``Metrics`` on a fresh registry and every feed initialised, timed;
- ``polls``: every feed polled once through the real ``FeedPoller`` whose fetcher answers at
  once (304, or an error for the failing ones): the per-poll cost of the metrics;
- ``scrape``: a real ``HealthServer`` on 127.0.0.1 and ``GET /metrics`` over HTTP, best of 3,
  with its size in bytes and its number of samples;
- ``scheduler``: ``PollScheduler.start(feeds, states)``, timed (APScheduler job creation),
  then shut down.

Prints a table and, as the last line, one line of JSON with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # for bench when run as bench/metrics_scale.py
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from bench.children import run_json_child  # noqa: E402
from bench.parse import load_average, max_rss_mb  # noqa: E402
from monitor.bus.embedded import EmbeddedItemLog  # noqa: E402
from monitor.config.feeds import FeedConfig, load_feeds  # noqa: E402
from monitor.config.settings import DEFAULT_USER_AGENT  # noqa: E402
from monitor.errors import FetchError  # noqa: E402
from monitor.feeds.fetch import Fetcher, FetchLimits, FetchResult, Validators  # noqa: E402
from monitor.feeds.parse import TextLimits  # noqa: E402
from monitor.feeds.poller import FeedPoller  # noqa: E402
from monitor.feeds.schedule import SchedulePolicy  # noqa: E402
from monitor.feeds.scheduler import PollScheduler  # noqa: E402
from monitor.feeds.state import SQLitePollState  # noqa: E402
from monitor.health import HealthServer  # noqa: E402
from monitor.metrics import Metrics  # noqa: E402
from monitor.model import FeedState  # noqa: E402
from monitor.store import Database  # noqa: E402

SIZES = (1_000, 10_000, 50_000)
INTERVAL_SECONDS = 300
T = TypeVar("T")


class InstantFetcher(Fetcher):
    """Answers every request at once: 304, or a FetchError for the feeds meant to fail."""

    def __init__(self, failing: set[str]) -> None:
        super().__init__(FetchLimits(user_agent=DEFAULT_USER_AGENT))
        self._failing = failing

    def fetch(self, url: str, validators: Validators, now: datetime) -> FetchResult:
        if url in self._failing:
            raise FetchError(f"HTTP 503 from {url}")
        return FetchResult(True, b"", None, validators, url, None, None, None)


def timed(action: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def build_feeds(count: int) -> list[FeedConfig]:
    return [FeedConfig(id=f"feed-{n:05d}", source=f"Source {n}",
                       url=f"https://wire{n % 500}.example/feed-{n}.xml",
                       interval=INTERVAL_SECONDS) for n in range(count)]


def time_feeds_yaml(feeds: Sequence[FeedConfig], folder: Path) -> float:
    path = folder / "feeds.yaml"
    path.write_text("feeds:\n" + "".join(
        f"  - id: {feed.id}\n    source: {feed.source}\n    url: {feed.url}\n"
        f"    interval: {INTERVAL_SECONDS}\n" for feed in feeds), encoding="utf-8")
    seconds, loaded = timed(lambda: load_feeds(path))
    assert len(loaded) == len(feeds)
    return seconds


def seed_states(state: SQLitePollState, feeds: Sequence[FeedConfig], failing: set[str]) -> None:
    now = time.time()
    for feed in feeds:
        broken = feed.url in failing
        state.save(FeedState(feed.id, etag='"v1"', body_hash="0" * 64,
                             consecutive_failures=5 if broken else 0,
                             last_success_at=now - (86400 if broken else 60),
                             last_error=f"HTTP 503 from {feed.url}" if broken else None,
                             next_check_at=now + INTERVAL_SECONDS))


def scrape(port: int) -> tuple[float, bytes]:
    best, body = float("inf"), b""
    for _ in range(3):
        seconds, response = timed(
            lambda: httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=120))
        best, body = min(best, seconds), response.content
    return best, body


def measure(count: int, failing_ratio: float) -> dict[str, Any]:
    feeds = build_feeds(count)
    failing = {feed.url for feed in random.Random(1).sample(feeds, int(count * failing_ratio))}
    figures: dict[str, Any] = {"feeds": count, "failing": len(failing)}
    with tempfile.TemporaryDirectory() as tmp:
        figures["feeds_yaml_s"] = time_feeds_yaml(feeds, Path(tmp))
        database = Database(Path(tmp) / "state.sqlite3")
        state = SQLitePollState(database)
        seed_states(state, feeds, failing)
        figures["state_s"], states = timed(state.load_all)
        by_id = {s.feed_id: s for s in states}
        registry = CollectorRegistry()
        figures["metrics_s"], metrics = timed(lambda: init_metrics(registry, feeds, by_id))
        poller = FeedPoller(InstantFetcher(failing), state, EmbeddedItemLog(database), metrics,
                            policy=SchedulePolicy(3600, 21600, 0.1), text_limits=TextLimits(),
                            bus_name="embedded")
        seconds, _ = timed(lambda: [poller.poll(feed) for feed in feeds])
        figures["poll_us"] = round(seconds / count * 1e6, 1)
        server = HealthServer("127.0.0.1", 0, registry)
        server.add_check("scheduler", lambda: True)
        server.start()
        figures["scrape_s"], body = scrape(server.port)
        server.stop()
        figures["scrape_bytes"] = len(body)
        figures["samples"] = sum(1 for line in body.splitlines()
                                 if line and not line.startswith(b"#"))
        figures["scheduler_s"] = start_scheduler(poller, feeds, by_id)
        database.close()
    figures["rss_mib"] = round(max_rss_mb(), 1)
    return figures


def init_metrics(registry: CollectorRegistry, feeds: Sequence[FeedConfig],
                 states: dict[str, FeedState]) -> Metrics:
    metrics = Metrics(registry)
    for feed in feeds:
        metrics.init_feed(feed.id, feed.interval_seconds, states.get(feed.id))
    return metrics


def start_scheduler(poller: FeedPoller, feeds: Sequence[FeedConfig],
                    states: dict[str, FeedState]) -> float:
    # Due in an hour: the measured figure is job creation, not polls competing with it.
    later = {feed.id: replace(states[feed.id], consecutive_failures=1,
                              next_check_at=time.time() + 3600) for feed in feeds}
    scheduler = PollScheduler(poller, workers=8, jitter_ratio=0.1)
    seconds, _ = timed(lambda: scheduler.start(feeds, later))
    scheduler.shutdown()
    return seconds


def run_child(count: int, failing_ratio: float) -> dict[str, Any]:
    return run_json_child(__file__, ["--one", str(count), "--failing-ratio", str(failing_ratio)],
                          f"metrics_scale: the run with {count} feeds")


def table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| feeds | failing | feeds.yaml s | state load s | metrics init s | poll µs "
             "| scrape s | scrape MB | samples | scheduler start s | peak RSS MiB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['feeds']:,} | {r['failing']:,} | {r['feeds_yaml_s']:.2f} "
              f"| {r['state_s']:.2f} | {r['metrics_s']:.2f} "
              f"| {r['poll_us']:.0f} | {r['scrape_s']:.3f} | {r['scrape_bytes'] / 1e6:.2f} "
              f"| {r['samples']:,} | {r['scheduler_s']:.2f} | {r['rss_mib']:.0f} |"
              for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--feeds", default=",".join(str(n) for n in SIZES))
    parser.add_argument("--failing-ratio", type=float, default=0.02)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child's feed count
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.failing_ratio)))
        return
    load = load_average()
    rows = [run_child(int(n), args.failing_ratio) for n in args.feeds.split(",")]
    print(table(rows))
    print(json.dumps({"python": platform.python_version(), "cpus": os.cpu_count(),
                      "load_average": load, "rows": rows}))


if __name__ == "__main__":
    main()

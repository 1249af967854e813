"""Start-up and reload at 1,000 / 10,000 / 50,000 feeds: feeds.yaml and the scheduler's jobs.

    .venv/bin/python bench/startup.py [--feeds 1000,10000,50000] [--variants before,after]

Each (feed count, variant) runs in a child process of its own, so that peak RSS is its own:

- ``feeds.yaml``: a feeds.yaml of N feeds (id, source, url, language, interval, tags; 160 bytes
  a feed) read with ``load_feeds``, as start-up and every reload (SIGHUP, edit) read it.
  ``before`` is the round-trip path alone (ruamel.yaml, line numbers kept), what every file
  took before the fast reader; ``after`` is ``load_feeds`` as it is (libyaml first). ``parse``
  is the parser alone, the rest is validation. Memory is the growth of peak RSS over the
  process's size before reading.
- ``scheduler``: ``PollScheduler.start`` with every feed backing off for an hour (so no poll
  competes), i.e. APScheduler job creation. ``before`` builds each job as before (a trigger per
  job, the bound method checked by APScheduler per job), ``after`` as it is.

Prints a table and, as the last line, one line of JSON with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # for bench when run as bench/startup.py
    sys.path.insert(0, str(REPO))

from apscheduler.triggers.interval import IntervalTrigger  # noqa: E402

from bench.children import run_json_child  # noqa: E402
from bench.parse import load_average, max_rss_mb  # noqa: E402
from monitor.config import yamlfile  # noqa: E402
from monitor.config.feeds import FeedConfig, load_feeds  # noqa: E402
from monitor.config.yamlfast import NotPlain, load_plain  # noqa: E402
from monitor.feeds.scheduler import PollScheduler  # noqa: E402
from monitor.model import FeedState  # noqa: E402

SIZES = (1_000, 10_000, 50_000)
T = TypeVar("T")


def timed(action: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def feeds_yaml(count: int) -> str:
    return "defaults:\n  interval: 5m\nfeeds:\n" + "".join(
        f"  - id: feed-{n:05d}\n    source: Source {n}\n"
        f"    url: https://wire{n % 500}.example/feed-{n}.xml\n"
        f"    language: ru\n    interval: {300 + n % 7 * 60}\n    tags: [ru, wire]\n"
        for n in range(count))


def round_trip_only(text: str) -> Any:
    raise NotPlain("bench: the round-trip path alone")


class BeforeScheduler(PollScheduler):
    """Jobs made as before: a trigger per job, APScheduler inspecting the bound method."""

    def _add(self, feed: FeedConfig, first_run: datetime) -> None:
        trigger = IntervalTrigger(seconds=feed.interval_seconds,
                                  jitter=feed.interval_seconds * 0.1, timezone=UTC)
        self._scheduler.add_job(self._run, trigger, args=[feed], id=feed.id,
                                name=f"poll {feed.id}", next_run_time=first_run,
                                replace_existing=True)


class IdlePoller:
    def poll(self, feed: FeedConfig) -> None:
        raise AssertionError("bench: no feed is due during the measurement")


def measure(count: int, variant: str) -> dict[str, Any]:
    figures: dict[str, Any] = {"feeds": count, "variant": variant}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "feeds.yaml"
        text = feeds_yaml(count)
        path.write_text(text, encoding="utf-8")
        figures["file_mb"] = round(len(text) / 1e6, 2)
        if variant == "before":
            setattr(yamlfile, "load_plain", round_trip_only)  # noqa: B010 - a module, not mypy's
            parse: Callable[[], Any] = lambda: yamlfile.parse_yaml_text(path, text)  # noqa: E731
        else:
            parse = lambda: load_plain(text)  # noqa: E731
        rss_before = max_rss_mb()
        figures["feeds_yaml_s"], feeds = timed(lambda: load_feeds(path))
        figures["feeds_yaml_rss_mib"] = round(max_rss_mb() - rss_before, 1)
        figures["parse_s"], _ = timed(parse)
    assert len(feeds) == count
    later = time.time() + 3600
    states = {f.id: FeedState(f.id, consecutive_failures=1, next_check_at=later) for f in feeds}
    kind = BeforeScheduler if variant == "before" else PollScheduler
    scheduler = kind(IdlePoller(), workers=8, jitter_ratio=0.1)  # type: ignore[arg-type]
    figures["scheduler_s"], _ = timed(lambda: scheduler.start(feeds, states))
    scheduler.shutdown()
    figures["peak_rss_mib"] = round(max_rss_mb(), 1)
    return figures


def run_child(count: int, variant: str) -> dict[str, Any]:
    return run_json_child(__file__, ["--one", str(count), "--variants", variant],
                          f"startup: {variant} with {count} feeds")


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| feeds | variant | file MB | parse s | feeds.yaml s | feeds.yaml RSS MiB "
             "| scheduler start s | peak RSS MiB |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['feeds']:,} | {r['variant']} | {r['file_mb']:.1f} | {r['parse_s']:.2f} "
              f"| {r['feeds_yaml_s']:.2f} | {r['feeds_yaml_rss_mib']:.0f} "
              f"| {r['scheduler_s']:.2f} | {r['peak_rss_mib']:.0f} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--feeds", default=",".join(str(n) for n in SIZES))
    parser.add_argument("--variants", default="before,after")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child's feed count
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.variants)))
        return
    load = load_average()
    rows = [run_child(int(n), variant) for n in args.feeds.split(",")
            for variant in args.variants.split(",")]
    print(table(rows))
    print(json.dumps({"python": platform.python_version(), "cpus": os.cpu_count(),
                      "load_average": load, "rows": rows}))


if __name__ == "__main__":
    main()

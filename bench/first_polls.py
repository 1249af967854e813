"""CPU a first poll: N feeds with no stored state polled once each, every process counted apart.

    .venv/bin/python bench/first_polls.py [--feeds 2000] [--hosts 16] [--workers N]
        [--start empty|restart] [--shared-items]

A cold round of ``bench/poll.py --feeds N --start empty`` is CPU-bound on a shared machine, so
its seconds mostly say how much of the machine the run got. This counts what does not depend on
that: CPU seconds a first poll, of the poller process (its poll threads, the scheduler's thread,
the state writer, the rest), of the parse processes and of the bench's feed server, which
shares the cores and so counts against a cold round too. The server and the poller are composed
as ``bench/poll_live.py`` composes them (feed i serves document ``i mod 200`` of the corpus from
server ``i mod --hosts``; ``Fetcher``, ``SQLitePollState`` writing behind, ``EmbeddedItemLog``,
the parse pool as the service picks it for 10,000 feeds, the service's logging to a temp file),
driven by the real ``PollScheduler``; the start spread is skipped (``poll_spread_feeds_now``, as
``monitor --once`` does), so the polls run back to back. "other" is mostly this script's main
thread, woken by every poll that ends (``wait_for_polls``): a cost of the bench, not the daemon's.

Feed i lists the items of document ``i mod 200`` with links of its own (``distinct_body``), so
every first poll publishes its items, as in a real cold start. ``--shared-items`` serves the
documents as they are: past the 200th feed a first poll then finds its items already seen (~98 %
of them; the figures before 2026-12-01 09:30).
``--start restart`` stores every feed's validators first, as
``bench/poll.py --start restart`` does: the round is then of conditional GETs answered 304 (a
restart's first round, and nine polls in ten of every round after). Exits 0 with "skipped: ..."
when the documents are absent.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # for tests.support and bench when run as a script
    sys.path.insert(0, str(REPO))

from prometheus_client import CollectorRegistry  # noqa: E402

from bench.parse import data_dir_or_exit, load_average  # noqa: E402
from bench.poll import log_to_file  # noqa: E402
from bench.poll_live import (  # noqa: E402
    cpu_seconds_of,
    feed_urls,
    seed_state,
    start_server,
    stop_server,
)
from monitor.bus.embedded import EmbeddedItemLog  # noqa: E402
from monitor.config.feeds import FeedConfig  # noqa: E402
from monitor.config.settings import DEFAULT_USER_AGENT, PollSettings  # noqa: E402
from monitor.feeds.fetch import Fetcher, FetchLimits  # noqa: E402
from monitor.feeds.parse import TextLimits  # noqa: E402
from monitor.feeds.parse_pool import ParsePool, parse_processes_for  # noqa: E402
from monitor.feeds.poller import FeedPoller  # noqa: E402
from monitor.feeds.schedule import SchedulePolicy  # noqa: E402
from monitor.feeds.scheduler import PollScheduler  # noqa: E402
from monitor.feeds.state import SQLitePollState  # noqa: E402
from monitor.metrics import Metrics  # noqa: E402
from monitor.store import Database  # noqa: E402
from tests.support.feed_server import LOOPBACK  # noqa: E402

# What each of the poller process's threads is, by the start of its name.
_THREADS = {"poll": "poll threads", "APScheduler": "scheduler", "feed-state-writer": "state writer"}


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds of this process's threads so far, by kind (``_THREADS``, else "other")."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds = dict.fromkeys((*_THREADS.values(), "other"), 0.0)
    for thread in threading.enumerate():
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:  # ended meanwhile
            continue
        kind = next((kind for prefix, kind in _THREADS.items()
                     if thread.name.startswith(prefix)), "other")
        seconds[kind] += (int(fields[11]) + int(fields[12])) / tick
    return seconds


def run(args: argparse.Namespace, data_dir: Path, state_dir: Path) -> dict[str, object]:
    settings = PollSettings()
    limits = FetchLimits(
        user_agent=f"{DEFAULT_USER_AGENT} bench", timeout_seconds=settings.timeout_seconds,
        max_body_bytes=settings.max_body_bytes, max_redirects=settings.max_redirects,
        per_host_concurrency=settings.workers, allowed_networks=LOOPBACK)
    database = Database(state_dir / "state.sqlite3")
    fetcher = Fetcher(limits)
    pool = ParsePool(parse_processes_for(None, 10_000))  # as the service has it at wire scale
    poll_state = SQLitePollState(database, write_behind=True)
    poller = FeedPoller(
        fetcher, poll_state, EmbeddedItemLog(database), Metrics(CollectorRegistry()),
        policy=SchedulePolicy(settings.backoff_cap_seconds, settings.max_age_cap_seconds,
                              settings.jitter_ratio),
        text_limits=TextLimits(settings.max_title_chars, settings.max_summary_chars),
        bus_name="embedded", rng=random.Random(1), parser=pool)
    server = start_server(data_dir, args.feeds, 0.0, args.seed, args.hosts, args.shared_items)
    urls = feed_urls(server, args.feeds)
    feeds = [FeedConfig.model_validate({"id": f"f{i}", "url": urls[i],
                                        "source": f"bench {i}", "interval": 60.0})
             for i in range(args.feeds)]
    scheduler = PollScheduler(poller, workers=args.workers or settings.workers,
                              jitter_ratio=settings.jitter_ratio, rng=random.Random(7))
    if args.start == "restart":
        seed_state(SQLitePollState(database), server.ask(("validators",), 120)[1], 60.0)
    states = {state.feed_id: state for state in poll_state.load_all()}
    server_cpu, threads = server.ask(("stats",), 60)[2], thread_cpu_seconds()
    cpu, wall = time.process_time(), time.perf_counter()
    scheduler.start(feeds, states)
    scheduler.poll_spread_feeds_now()
    finished = scheduler.wait_for_polls(args.feeds, args.deadline)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    threads = {kind: spent - threads[kind] for kind, spent in thread_cpu_seconds().items()}
    parse_cpu = cpu_seconds_of(pool.process_ids())
    server_cpu = server.ask(("stats",), 60)[2] - server_cpu
    scheduler.shutdown()
    stop_server(server)
    fetcher.close()
    pool.close()
    poll_state.close()
    database.close()
    per_poll = 1000 / args.feeds
    return {
        "finished": finished, "seconds": round(wall, 1),
        "ms_a_first_poll": {
            "poller": round(cpu * per_poll, 3),
            **{kind: round(spent * per_poll, 3) for kind, spent in threads.items()},
            "parse processes": round(parse_cpu * per_poll, 3),
            "server": round(server_cpu * per_poll, 3),
            "all": round((cpu + parse_cpu + server_cpu) * per_poll, 3),
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--workers", type=int, default=None,
                        help="poll workers (default: the settings' default)")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--shared-items", action="store_true",
                        help="serve the documents as they are: feeds of one document share items")
    parser.add_argument("--start", choices=("empty", "restart"), default="empty",
                        help="empty: no stored state (first polls parse); restart: every "
                             "feed's validators stored (conditional GETs, 304s)")
    parser.add_argument("--deadline", type=float, default=600.0,
                        help="seconds to wait for the polls")
    parser.add_argument("--data", type=Path, default=None, help="folder of feed documents")
    args = parser.parse_args(argv)
    data_dir = data_dir_or_exit(args.data)
    load = load_average()
    with tempfile.TemporaryDirectory(prefix="monitor-bench-first-") as tmp:
        log_file = log_to_file(Path(tmp) / "monitor.log", "INFO")
        try:
            figures = run(args, data_dir, Path(tmp))
        finally:
            handler = logging.getLogger().handlers[0]
            assert isinstance(handler, logging.StreamHandler)
            handler.setStream(sys.stderr)
            log_file.close()
    figures = {"benchmark": "first-polls", "feeds": args.feeds, "hosts": args.hosts,
               "start": args.start,
               **figures, "loadavg_1m_at_start": load, "loadavg_1m_at_end": load_average(),
               "code": str(REPO), "cpus": os.cpu_count()}
    shares = figures["ms_a_first_poll"]
    assert isinstance(shares, dict)
    print(f"{args.feeds} polls (start {args.start}) in {figures['seconds']} s (load {load} at "
          "the start); "
          "CPU ms a poll: " + ", ".join(f"{kind} {ms:.2f}" for kind, ms in shares.items()))
    print(json.dumps(figures, separators=(",", ":")))
    return 0 if figures["finished"] else 1


if __name__ == "__main__":
    sys.exit(main())

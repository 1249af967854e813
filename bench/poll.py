"""Poll throughput: feeds/s through the whole poller against a local FeedServer, embedded mode.

    .venv/bin/python bench/poll.py [--data DIR] [--workers N] [--driver scheduler|pool]
    .venv/bin/python bench/poll.py --feeds 10000 [--duration 240]   (bench/poll_live.py)

Each document of the benchmark corpus (default ``<repo>/../shared/feeds/bench``) is served at its
own path by ``tests.support.feed_server.FeedServer`` (ETag, Last-Modified, 304), run in a child
process so that serving does not compete with the poller for this process's GIL. The poller is
composed as ``monitor.service`` composes it in embedded mode: ``Fetcher`` over httpx,
``SQLitePollState`` and ``EmbeddedItemLog`` on one SQLite file in a temporary directory,
metrics on a fresh registry, logging as the service sets it up (level ``--log-level``, INFO by
default) but written to a file in that directory instead of stderr.

Rounds, each polling every feed exactly once:

- ``cold``:  first poll of every feed: fetch, parse, publish every item;
- ``304``:   nothing changed: every conditional GET is answered 304 (documents the poller could
  not parse keep no validators, so they are fetched and rejected again);
- ``bytes``: every body changed by a trailing XML comment: fetched, hashed, parsed, its items
  found already seen, nothing published;
- ``items``: every ``<title>`` changed: parsed, and every item published again as a new version
  (item ids come from the URL, so they stay; the content hash changes).

Driver ``scheduler`` (default) runs each round through a fresh ``PollScheduler`` (the real
APScheduler wiring) with jitter 0 and a one-hour interval, so every feed is due at once and
polled once; driver ``pool`` calls ``FeedPoller.poll`` from a thread pool of the same size.
``per_host_concurrency`` is raised to the worker count, since every feed is on 127.0.0.1.
Everything runs under ``--deadline`` seconds: a round still running then is reported as timed
out (exit code 1) once the polls already handed to workers finish, each bounded by the fetch
timeout. Exits 0 with "skipped: ..." when the documents are absent.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import logging
import multiprocessing
import os
import platform
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # for tests.support and bench when run as bench/poll.py
    sys.path.insert(0, str(REPO))

from prometheus_client import CollectorRegistry  # noqa: E402

from bench.parse import data_dir_or_exit, load_average, load_documents, max_rss_mb  # noqa: E402
from monitor.bus.embedded import EmbeddedItemLog  # noqa: E402
from monitor.config.feeds import FeedConfig  # noqa: E402
from monitor.config.settings import DEFAULT_USER_AGENT, PollSettings  # noqa: E402
from monitor.feeds.fetch import Fetcher, FetchLimits  # noqa: E402
from monitor.feeds.parse import TextLimits  # noqa: E402
from monitor.feeds.poller import FeedPoller, PollResult  # noqa: E402
from monitor.feeds.schedule import SchedulePolicy  # noqa: E402
from monitor.feeds.scheduler import PollScheduler  # noqa: E402
from monitor.feeds.state import SQLitePollState  # noqa: E402
from monitor.logsetup import configure_logging  # noqa: E402
from monitor.metrics import Metrics  # noqa: E402
from monitor.store import Database  # noqa: E402
from tests.support.feed_server import LOOPBACK, FeedServer  # noqa: E402

CONTENT_TYPE = "application/xml"  # no charset: the document's own declaration decides
INTERVAL_SECONDS = 3600.0  # nothing is due twice within a round
ROUNDS = ("cold", "304", "bytes", "items")
# What each round does to the served bodies before it runs (None: leave them as they are).
BODY_CHANGE: dict[str, str | None] = {
    "cold": None, "304": None, "bytes": "comment", "items": "titles",
}
_TITLE_OPEN = re.compile(rb"<title(\s[^>]*)?(?<!/)>")


# --- the feed server, in a child process ----------------------------------------------------


def changed_body(body: bytes, change: str, generation: int) -> bytes:
    """``comment``: same items, different bytes; ``titles``: every title gets a prefix.

    The length keeps its parity: one document of the corpus declares utf-16 but is UTF-8, and
    feedparser reads it only while its length is odd (an even length decodes as UTF-16).
    """
    if change == "comment":
        changed = body + f"\n<!-- bench generation {generation} -->\n".encode()
    elif change == "titles":
        prefix = f"[g{generation}] ".encode()
        changed = _TITLE_OPEN.sub(lambda match: match.group(0) + prefix, body)
    else:
        raise ValueError(f"unknown body change {change!r}")
    return changed if len(changed) % 2 == len(body) % 2 else changed + b" "


def serve(conn: Connection, data_dir: str) -> None:
    """Child process: serve every document at ``/<name>``; obey ("change", kind, n) / ("stop",)."""
    docs = load_documents(Path(data_dir))
    with FeedServer() as server:
        for doc in docs:
            server.set(f"/{doc.name}", doc.body, content_type=CONTENT_TYPE)
        conn.send(("ready", server.port))

        def change(command: tuple[Any, ...]) -> int:
            _, kind, generation = command
            for doc in docs:
                server.set(f"/{doc.name}", changed_body(doc.body, kind, generation),
                           content_type=CONTENT_TYPE)
            return len(docs)

        obey(conn, server, change)


def obey(conn: Connection, server: FeedServer, change: Callable[[tuple[Any, ...]], Any]
         ) -> None:
    """The child's command loop: ("stop",), ("stats",) -> (requests served, CPU seconds of
    the child), anything else -> ``change(command)``, answered ("changed", its result)."""
    while True:
        command = conn.recv()
        if command[0] == "stop":
            conn.send(("stopped", len(server.requests)))
            return
        if command[0] == "stats":
            conn.send(("stats", len(server.requests), time.process_time()))
            continue
        conn.send(("changed", change(command)))


class ServerProcess:
    """The FeedServer child process and the pipe that commands it; every wait is bounded."""

    def __init__(self, data_dir: Path, timeout_seconds: float,
                 target: Callable[..., None] = serve, options: tuple[Any, ...] = ()) -> None:
        """``target(conn, data_dir, *options)`` runs in the child and answers on ``conn``."""
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._lock = threading.Lock()  # one question and its answer at a time
        self._process = context.Process(target=target,
                                        args=(child_conn, str(data_dir), *options),
                                        name="bench-feed-server", daemon=True)
        self._process.start()
        self.port = int(self.ask(None, timeout_seconds)[1])

    def ask(self, command: tuple[Any, ...] | None, timeout_seconds: float) -> tuple[Any, ...]:
        with self._lock:
            return self._ask(command, timeout_seconds)

    def _ask(self, command: tuple[Any, ...] | None, timeout_seconds: float) -> tuple[Any, ...]:
        if command is not None:
            self._conn.send(command)
        give_up = time.monotonic() + timeout_seconds
        while not self._conn.poll(0.2):
            if not self._process.is_alive():
                raise RuntimeError(f"feed server process exited ({self._process.exitcode})")
            if time.monotonic() > give_up:
                raise TimeoutError(f"feed server did not answer {command!r} in "
                                   f"{timeout_seconds:.0f} s")
        reply: tuple[Any, ...] = self._conn.recv()
        return reply

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def change(self, change: str, generation: int, timeout_seconds: float) -> None:
        self.ask(("change", change, generation), timeout_seconds)

    def stop(self, timeout_seconds: float = 10.0) -> int:
        """Stop the child; returns how many requests it served (-1 if it had to be killed)."""
        served = -1
        with contextlib.suppress(TimeoutError, RuntimeError, OSError, EOFError):
            served = int(self.ask(("stop",), timeout_seconds)[1])
        self._process.join(timeout_seconds)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout_seconds)
        return served


# --- the poller, composed as monitor.service composes it --------------------------------------


class RecordingPoller(FeedPoller):
    """FeedPoller that keeps every PollResult, for the per-round counts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self.results: list[PollResult] = []

    def poll(self, feed: FeedConfig) -> PollResult:
        result = super().poll(feed)
        with self._lock:
            self.results.append(result)
        return result

    def take(self) -> list[PollResult]:
        with self._lock:
            results, self.results = self.results, []
        return results


@dataclass
class Rig:
    database: Database
    item_log: EmbeddedItemLog
    fetcher: Fetcher
    poller: RecordingPoller
    limits: FetchLimits


def build_rig(state_dir: Path, workers: int, max_body_bytes: int) -> Rig:
    poll = PollSettings()
    limits = FetchLimits(
        user_agent=f"{DEFAULT_USER_AGENT} bench", timeout_seconds=poll.timeout_seconds,
        max_body_bytes=max_body_bytes, max_redirects=poll.max_redirects,
        per_host_concurrency=workers, allowed_networks=LOOPBACK,
    )
    database = Database(state_dir / "state.sqlite3")
    item_log = EmbeddedItemLog(database)
    fetcher = Fetcher(limits)
    poller = RecordingPoller(
        fetcher, SQLitePollState(database), item_log, Metrics(CollectorRegistry()),
        policy=SchedulePolicy(poll.backoff_cap_seconds, poll.max_age_cap_seconds,
                              poll.jitter_ratio),
        text_limits=TextLimits(poll.max_title_chars, poll.max_summary_chars),
        bus_name="embedded", rng=random.Random(1),
    )
    return Rig(database, item_log, fetcher, poller, limits)


# --- rounds ---------------------------------------------------------------------------------


@dataclass
class RoundResult:
    name: str
    feeds: int
    seconds: float
    cpu_seconds: float
    completed: int
    items_published: int
    items_logged: int
    outcomes: Counter[str] = field(default_factory=Counter)
    timed_out: bool = False

    @property
    def feeds_per_s(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0


def poll_with_scheduler(poller: FeedPoller, feeds: Sequence[FeedConfig], workers: int,
                        timeout_seconds: float) -> bool:
    """One round through a fresh PollScheduler: every feed due now, polled once."""
    scheduler = PollScheduler(poller, workers=workers, jitter_ratio=0.0, rng=random.Random(1))
    # No states: a feed that failed last round would otherwise resume its backoff, not poll.
    scheduler.start(feeds, {})
    try:
        return scheduler.wait_for_polls(len(feeds), timeout_seconds)
    finally:
        scheduler.shutdown()


def poll_with_pool(poller: FeedPoller, feeds: Sequence[FeedConfig], workers: int,
                   timeout_seconds: float) -> bool:
    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="bench-poll")
    try:
        futures = [pool.submit(poller.poll, feed) for feed in feeds]
        _, pending = concurrent.futures.wait(futures, timeout_seconds)
        return not pending
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


DRIVERS = {"scheduler": poll_with_scheduler, "pool": poll_with_pool}


def run_round(name: str, rig: Rig, feeds: Sequence[FeedConfig], driver: str, workers: int,
              timeout_seconds: float) -> RoundResult:
    logged_before = rig.item_log.count()
    cpu, start = time.process_time(), time.perf_counter()
    finished = DRIVERS[driver](rig.poller, feeds, workers, timeout_seconds)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    results = rig.poller.take()
    return RoundResult(
        name=name, feeds=len(feeds), seconds=seconds, cpu_seconds=cpu, completed=len(results),
        items_published=sum(result.new_items for result in results),
        items_logged=rig.item_log.count() - logged_before,
        outcomes=Counter(result.outcome.value for result in results), timed_out=not finished,
    )


def run_rounds(rig: Rig, server: ServerProcess, feeds: Sequence[FeedConfig], driver: str,
               workers: int, deadline: float) -> list[RoundResult]:
    rounds: list[RoundResult] = []
    for generation, name in enumerate(ROUNDS):
        change = BODY_CHANGE[name]
        if change is not None:
            server.change(change, generation, max(1.0, deadline - time.monotonic()))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            print(f"deadline reached before round {name}", file=sys.stderr)
            break
        result = run_round(name, rig, feeds, driver, workers, remaining)
        rounds.append(result)
        print(f"  round {name:<6} {result.seconds:7.2f} s, {result.completed} polls",
              file=sys.stderr)
        if result.timed_out:
            print(f"round {name} did not finish within the deadline", file=sys.stderr)
            break
    return rounds


# --- report ---------------------------------------------------------------------------------


def print_table(rounds: Sequence[RoundResult]) -> None:
    print(f"{'round':<7}{'feeds':>6}{'seconds':>9}{'feeds/s':>9}{'cpu s':>7}{'published':>10}"
          f"{'items/s':>9}  outcomes")
    for r in rounds:
        outcomes = ", ".join(f"{name} {count}" for name, count in sorted(r.outcomes.items()))
        print(f"{r.name:<7}{r.completed:>6}{r.seconds:>9.2f}{r.feeds_per_s:>9.1f}"
              f"{r.cpu_seconds:>7.1f}{r.items_published:>10}"
              f"{r.items_published / r.seconds if r.seconds else 0:>9.0f}  {outcomes}"
              f"{'  TIMED OUT' if r.timed_out else ''}")


def log_to_file(path: Path, level: str) -> TextIO:
    """The service's logging set-up (``configure_logging``), its stream swapped for a file."""
    configure_logging(level)
    log_file = path.open("w", encoding="utf-8")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(log_file)
    return log_file


def log_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as log_file:
        return sum(1 for _ in log_file)


@dataclass
class Setup:
    """What a run was given, for the report."""

    data_dir: Path
    sizes: dict[str, int]
    driver: str
    workers: int
    max_body_bytes: int
    log_level: str
    load: float


def report(setup: Setup, rounds: Sequence[RoundResult], served: int, lines: int
           ) -> dict[str, object]:
    total, largest = sum(setup.sizes.values()), max(setup.sizes.values())
    default_per_host = PollSettings().per_host_concurrency
    print(f"\n{len(setup.sizes)} feeds ({total / 1e6:.1f} MB, largest {largest} bytes; "
          f"max_body_bytes {setup.max_body_bytes}) from {setup.data_dir}")
    print(f"driver {setup.driver}, {setup.workers} workers, per_host_concurrency {setup.workers} "
          f"(raised from {default_per_host}: every feed is on 127.0.0.1); FeedServer in a child "
          f"process; embedded mode, SQLite in a temp dir; log level {setup.log_level.upper()} to "
          f"a temp file ({lines} lines); load average at start {setup.load}")
    print_table(rounds)
    peak = max_rss_mb()
    print(f"peak RSS of the poller process {peak:.0f} MiB; requests served {served}")
    return {
        "benchmark": "poll", "feeds": len(setup.sizes), "bytes": total,
        "driver": setup.driver, "workers": setup.workers,
        "per_host_concurrency": setup.workers,
        "rounds": {r.name: {
            "seconds": round(r.seconds, 3), "feeds_per_s": round(r.feeds_per_s, 2),
            "completed": r.completed, "cpu_seconds": round(r.cpu_seconds, 2),
            "items_published": r.items_published, "items_logged": r.items_logged,
            "outcomes": dict(r.outcomes), "timed_out": r.timed_out,
        } for r in rounds},
        "peak_rss_mib": round(peak, 1), "log_lines": lines,
        "timed_out": len(rounds) < len(ROUNDS) or any(r.timed_out for r in rounds),
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "loadavg_1m_at_start": setup.load,
    }


def benchmark(setup: Setup, deadline: float) -> dict[str, object]:
    """Start the server and the poller in a temp dir, run the rounds, tear everything down."""
    with tempfile.TemporaryDirectory(prefix="monitor-bench-poll-") as tmp:
        state_dir = Path(tmp)
        log_file = log_to_file(state_dir / "monitor.log", setup.log_level)
        rig = build_rig(state_dir, setup.workers, setup.max_body_bytes)
        served, rounds = -1, []
        try:
            server = ServerProcess(setup.data_dir, max(1.0, deadline - time.monotonic()))
            try:
                feeds = [FeedConfig.model_validate({
                    "id": name, "url": server.url(name), "source": f"bench {name}",
                    "interval": INTERVAL_SECONDS,
                }) for name in setup.sizes]
                rounds = run_rounds(rig, server, feeds, setup.driver, setup.workers, deadline)
            finally:
                served = server.stop()
        finally:
            rig.fetcher.close()
            rig.database.close()
            log_file.close()
        return report(setup, rounds, served, log_lines(state_dir / "monitor.log"))


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if any(arg == "--feeds" or arg.startswith("--feeds=") for arg in arguments):
        from bench.poll_live import main as live  # the poller held at its interval

        return live(arguments)
    defaults = PollSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=None, help="folder of feed documents")
    parser.add_argument("--workers", type=int, default=defaults.workers,
                        help=f"poll workers (default {defaults.workers}, the settings' default)")
    parser.add_argument("--driver", choices=sorted(DRIVERS), default="scheduler")
    parser.add_argument("--deadline", type=float, default=900.0,
                        help="seconds for the whole benchmark, server start included")
    parser.add_argument("--log-level", default="INFO",
                        help="level of the service's logging, written to a temp file")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    data_dir = data_dir_or_exit(args.data)
    load = load_average()
    deadline = time.monotonic() + args.deadline
    sizes = {path.name: path.stat().st_size for path in sorted(data_dir.iterdir())
             if path.is_file() and not path.name.startswith(".")}
    # The default limit, or twice the largest document if that is bigger.
    max_body_bytes = max(defaults.max_body_bytes, 2 * max(sizes.values()))
    setup = Setup(data_dir, sizes, args.driver, args.workers, max_body_bytes, args.log_level,
                  load)
    figures = benchmark(setup, deadline)
    print(json.dumps(figures, separators=(",", ":")))
    return 1 if figures["timed_out"] else 0


if __name__ == "__main__":
    sys.exit(main())

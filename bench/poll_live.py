"""The poller held at its interval: N feeds every 60 s in one process, for minutes, as the daemon
runs them (``bench/poll.py --feeds N`` runs this).

    .venv/bin/python bench/poll.py --feeds 10000 [--duration 240] [--changed 0.1]

A local server in a child process serves N feeds at ``/f<i>``, feed i being document
``i mod 200`` of the benchmark corpus (``<repo>/../shared/feeds/bench``), with ETag and
Last-Modified. Each feed's links are its own (``distinct_body``: a path segment naming the feed
after every link's host), so that, as with N real feeds, a first poll finds its items new and
publishes them; ``--shared-items`` serves the documents as they are (feeds of one document then
share their items, and most first polls find them seen: the figures before 2026-12-01 09:30).
Every interval a seeded random ``--changed`` share of the feeds gets a new body
(every ``<title>`` prefixed with the round's number: parsed, its items new versions); the others
answer 304. The poller is composed as in embedded mode (``Fetcher``, ``SQLitePollState`` and
``EmbeddedItemLog`` on one SQLite file, the service's logging written to a temp file) and driven
by the real ``PollScheduler`` with the settings' defaults (workers, jitter), starting with no
stored state: every feed's first poll fetches and parses its whole body.

A poll is late when it starts more than ``LATE_SECONDS`` after APScheduler made it due (its
scheduled run time, read from ``EVENT_JOB_SUBMITTED``; 1 s is APScheduler's default misfire
grace). Printed: the cold round (until every feed has been polled once), late polls in the first
interval and after it, CPU share of a core and RSS for the cold round and the steady state after
it, and the server's own CPU share (it must keep up, or the figure measures the server).
Exits 0 with "skipped: ..." when the documents are absent.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import logging
import os
import platform
import pstats
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # for tests.support and bench when run as a script
    sys.path.insert(0, str(REPO))

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_SUBMITTED  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from bench.parse import data_dir_or_exit, load_average, load_documents, max_rss_mb  # noqa: E402
from bench.poll import (  # noqa: E402
    ServerProcess,
    changed_body,
    log_lines,
    log_to_file,
    obey,
)
from monitor.bus.embedded import EmbeddedItemLog  # noqa: E402
from monitor.config.feeds import FeedConfig  # noqa: E402
from monitor.config.settings import DEFAULT_USER_AGENT, PollSettings  # noqa: E402
from monitor.feeds.fetch import Fetcher, FetchLimits  # noqa: E402
from monitor.feeds.parse import TextLimits  # noqa: E402
from monitor.feeds.parse_pool import ParsePool, build_parser, parse_processes_for  # noqa: E402
from monitor.feeds.poller import FeedPoller, PollResult  # noqa: E402
from monitor.feeds.schedule import SchedulePolicy  # noqa: E402
from monitor.feeds.scheduler import PollScheduler  # noqa: E402
from monitor.feeds.state import SQLitePollState  # noqa: E402
from monitor.metrics import Metrics  # noqa: E402
from monitor.model import FeedState  # noqa: E402
from monitor.store import Database  # noqa: E402
from tests.support.feed_server import LOOPBACK, FeedServer  # noqa: E402

CONTENT_TYPE = "application/xml"
LATE_SECONDS = 1.0  # APScheduler's default misfire_grace_time


# --- the server, in a child process -----------------------------------------------------------


class Servers:
    """``hosts`` FeedServers on ports of their own (origins, as many wires' hosts are); feed
    ``i`` is on server ``i mod hosts``."""

    def __init__(self, hosts: int) -> None:
        self.servers = [FeedServer() for _ in range(hosts)]

    def of(self, feed: int) -> FeedServer:
        return self.servers[feed % len(self.servers)]

    @property
    def requests(self) -> list[Any]:
        return [request for server in self.servers for request in server.requests]


# An item's link (RSS <link> or <guid> text, CDATA or not) or an href up to the end of its host.
_LINK_HOST = re.compile(
    rb"""(?:<(?:link|guid)\b[^>]*>\s*(?:<!\[CDATA\[\s*)?|\bhref\s*=\s*["'])https?://[^/\s<>"'\]]+""")


def distinct_body(body: bytes, feed: int) -> bytes:
    """``body`` with a path segment naming ``feed`` after every link's host: the items of two
    feeds serving one document have different links, hence different item ids. The length
    keeps its parity (see ``changed_body``)."""
    segment = b"/bench-f%d" % feed
    changed = _LINK_HOST.sub(lambda match: match.group(0) + segment, body)
    return changed if len(changed) % 2 == len(body) % 2 else changed + b" "


def serve(conn: Connection, data_dir: str, feeds: int, changed: float, seed: int,
          hosts: int = 1, shared_items: bool = False) -> None:
    """Child: serve ``feeds`` paths; ("change", generation) gives a random share new bodies;
    ("ports",) answers every server's port; ("stats",) answers (requests served, CPU seconds
    of this process); ("stop",)."""
    docs = load_documents(Path(data_dir))
    rng = random.Random(seed)
    servers = Servers(hosts)

    def body_of(feed: int, body: bytes) -> bytes:
        return body if shared_items else distinct_body(body, feed)

    with contextlib.ExitStack() as stack:
        for server in servers.servers:
            stack.enter_context(server)
        for i in range(feeds):
            servers.of(i).set(f"/f{i}", body_of(i, docs[i % len(docs)].body),
                              content_type=CONTENT_TYPE)
        conn.send(("ready", servers.servers[0].port))

        def change(command: tuple[Any, ...]) -> Any:
            if command[0] == "ports":
                return [server.port for server in servers.servers]
            if command[0] == "validators":  # what a poller that polled them all would hold
                return [(route.etag, route.last_modified) for i in range(feeds)
                        if (route := servers.of(i).route(f"/f{i}")) is not None]
            bodies: dict[int, bytes] = {}  # one new body per document and round
            for i in rng.sample(range(feeds), round(feeds * changed)):
                doc = i % len(docs)
                if doc not in bodies:
                    bodies[doc] = changed_body(docs[doc].body, "titles", command[1])
                servers.of(i).set(f"/f{i}", body_of(i, bodies[doc]), content_type=CONTENT_TYPE)
            return len(bodies)

        obey(conn, servers, change)  # type: ignore[arg-type]  # FeedServer's requests alone


def start_server(data_dir: Path, feeds: int, changed: float, seed: int,
                 hosts: int = 1, shared_items: bool = False) -> ServerProcess:
    return ServerProcess(data_dir, 300, serve, (feeds, changed, seed, hosts, shared_items))


def feed_urls(server: ServerProcess, feeds: int) -> list[str]:
    ports = server.ask(("ports",), 60)[1]
    return [f"http://127.0.0.1:{ports[i % len(ports)]}/f{i}" for i in range(feeds)]


def stop_server(server: ServerProcess) -> float:
    """Stop the server; its CPU seconds (NaN if it had to be killed)."""
    cpu = float("nan")
    with contextlib.suppress(TimeoutError, RuntimeError, OSError, EOFError):
        cpu = server.ask(("stats",), 30)[2]
    server.stop()
    return cpu


# --- recording what the scheduler did ---------------------------------------------------------


class TimedPoller(FeedPoller):
    """Records when each poll of each feed started (and optionally profiles the polls)."""

    def __init__(self, *args: Any, profile: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()
        self.starts: dict[str, list[float]] = {}
        self.ends: list[float] = []
        self.poll_cpu_seconds = 0.0  # CPU time of the polls' own threads, summed
        self._profile = profile
        self._profiles: dict[int, cProfile.Profile] = {}

    def poll(self, feed: FeedConfig) -> PollResult:
        started, cpu = time.time(), time.thread_time()
        with self.lock:
            self.starts.setdefault(feed.id, []).append(started)
        try:
            return self._poll(feed)
        finally:
            cpu = time.thread_time() - cpu
            with self.lock:
                self.poll_cpu_seconds += cpu

    def _poll(self, feed: FeedConfig) -> PollResult:
        if not self._profile:
            result = super().poll(feed)
        else:
            profiler = self._profiles.setdefault(threading.get_ident(),
                                                 cProfile.Profile(time.thread_time))
            profiler.enable()
            try:
                result = super().poll(feed)
            finally:
                profiler.disable()
        with self.lock:
            self.ends.append(time.time())
        return result

    def print_profile(self, limit: int) -> None:
        profiles = list(self._profiles.values())
        if profiles:
            stats = pstats.Stats(profiles[0], stream=sys.stderr)
            for other in profiles[1:]:
                stats.add(other)
            stats.sort_stats("cumulative").print_stats(limit)
            stats.sort_stats("tottime").print_stats(limit)


class StackSampler:
    """Where the threads inside a poll are, every 10 ms: the innermost frame of monitor/,
    httpx, httpcore, h11, apscheduler, sqlite or threading code in each one's stack (waiting
    included), counted. Shows what polls wait on when the CPU is not the limit."""

    _KEEP = ("/monitor/", "/httpx/", "/httpcore/", "/h11/", "/apscheduler/", "sqlite",
             "threading.py", "concurrent/futures")

    def __init__(self, interval_seconds: float = 0.01) -> None:
        self.counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._interval = interval_seconds
        self._thread = threading.Thread(target=self._run, name="stack-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self._interval):
            for ident, frame in sys._current_frames().items():
                if ident != me and self._in_poll(frame):
                    self.counts[self._place(frame)] += 1

    @staticmethod
    def _in_poll(frame: Any) -> bool:
        while frame is not None:
            if frame.f_code.co_name == "poll" and "poller" in frame.f_code.co_filename:
                return True
            frame = frame.f_back
        return False

    def _place(self, frame: Any) -> str:
        """The innermost frame of interest and the two frames of interest that called it."""
        chain: list[str] = []
        while frame is not None and len(chain) < 3:
            name = frame.f_code.co_filename
            if any(part in name for part in self._KEEP):
                chain.append(f"{name.rsplit('/', 1)[-1]}:{frame.f_code.co_name}:"
                             f"{frame.f_lineno}")
            frame = frame.f_back
        return " < ".join(chain)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def print(self, limit: int) -> None:
        total = sum(self.counts.values()) or 1
        for place, count in self.counts.most_common(limit):
            print(f"{count / total:6.1%}  {place}", file=sys.stderr)


class Submissions:
    """When APScheduler made each run due: EVENT_JOB_SUBMITTED's earliest scheduled time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.due: dict[str, list[float]] = {}
        self.skipped = 0

    def on_submitted(self, event: Any) -> None:
        with self.lock:
            self.due.setdefault(event.job_id, []).append(
                min(event.scheduled_run_times).timestamp())

    def on_skipped(self, _event: Any) -> None:
        with self.lock:
            self.skipped += 1


def start_delays(due: dict[str, list[float]], starts: dict[str, list[float]]
                 ) -> list[tuple[float, float]]:
    """(due time, start delay) of every run: a feed's k-th submission is its k-th poll
    (never two runs of one feed at once, so they cannot overtake one another)."""
    pairs = []
    for feed_id, feed_starts in starts.items():
        for when, started in zip(due.get(feed_id, []), feed_starts, strict=False):
            pairs.append((when, started - when))
    return pairs


# --- the run ------------------------------------------------------------------------------------


def rss_mib(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_seconds_of(pids: Sequence[int]) -> float:
    """User + system CPU seconds of these processes (the parse workers) so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


class Workers:
    """CPU and memory of the parse pool's processes (none when parsing in-process)."""

    def __init__(self, pool: ParsePool | None) -> None:
        self._pool = pool

    def pids(self) -> list[int]:
        return self._pool.process_ids() if self._pool is not None else []

    def cpu_seconds(self) -> float:
        return cpu_seconds_of(self.pids())

    def rss_mib(self) -> float:
        total = 0.0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                total += rss_mib(pid)
        return total


@dataclass
class Phase:
    name: str
    seconds: float
    cpu_seconds: float
    polls: int
    late: int
    delays: list[float] = field(default_factory=list)
    rss_mib: float = 0.0
    server_cpu_seconds: float = 0.0
    workers_cpu_seconds: float = 0.0  # the parse pool's processes
    workers_rss_mib: float = 0.0

    def figures(self) -> dict[str, object]:
        ordered = sorted(self.delays)
        def pick(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3) if ordered \
                else 0.0
        return {
            "seconds": round(self.seconds, 1), "polls": self.polls, "late": self.late,
            "cpu_share": round(self.cpu_seconds / self.seconds, 3) if self.seconds else 0.0,
            "server_cpu_share": round(self.server_cpu_seconds / self.seconds, 3)
            if self.seconds else 0.0,
            "delay_p50": pick(0.5), "delay_p99": pick(0.99), "delay_max": pick(1.0),
            "rss_mib": round(self.rss_mib, 1),
            "workers_cpu_share": round(self.workers_cpu_seconds / self.seconds, 3)
            if self.seconds else 0.0,
            "workers_rss_mib": round(self.workers_rss_mib, 1),
        }


@dataclass(frozen=True)
class Mark:
    """A moment of the run: wall time, CPU seconds of the poller, the server and the parse
    workers so far, and memory."""

    at: float
    cpu: float
    server_cpu: float
    workers_cpu: float
    rss: float
    workers_rss: float


def mark(server: ServerProcess, workers: Workers, at: float | None = None) -> Mark:
    _, _, server_cpu = server.ask(("stats",), 60)
    return Mark(time.time() if at is None else at, time.process_time(), server_cpu,
                workers.cpu_seconds(), rss_mib(), workers.rss_mib())


def scheduler_for(poller: FeedPoller, settings: PollSettings, workers: int | None
                  ) -> PollScheduler:
    """As monitor.service builds it (the options every version of PollScheduler has)."""
    return PollScheduler(poller, workers=workers or settings.workers,
                         jitter_ratio=settings.jitter_ratio, rng=random.Random(7))


def seed_state(store: SQLitePollState, validators: list[tuple[str, str]],
               interval: float) -> None:
    """A restart: every feed polled one interval ago, its validators kept (so it answers 304
    unless it changed since)."""
    now = time.time()
    for i, (etag, last_modified) in enumerate(validators):
        store.save(FeedState(f"f{i}", etag=etag, last_modified=last_modified,
                             last_success_at=now - interval, next_check_at=now))


@dataclass
class LiveResult:
    phases: list[Phase]
    served: int
    skipped: int
    cold_seconds: float | None
    workers: int
    peak_rss_mib: float
    poll_cpu_seconds: float  # inside FeedPoller.poll, the polls drained at shutdown included
    cpu_seconds: float  # the whole process
    parse_processes: int
    workers_cpu_seconds: float


def phases_of(pairs: list[tuple[float, float]], begin: Mark, marks: dict[str, Mark],
              finish: Mark, interval: float) -> list[Phase]:
    """The cold round, the first interval and the steady state after it, from the marks."""
    def phase(name: str, start: Mark, end: Mark) -> Phase:
        delays = [delay for when, delay in pairs if start.at <= when < end.at]
        return Phase(name, end.at - start.at, end.cpu - start.cpu,
                     len(delays), sum(delay > LATE_SECONDS for delay in delays), delays,
                     end.rss, end.server_cpu - start.server_cpu,
                     end.workers_cpu - start.workers_cpu, end.workers_rss)

    phases = [phase("cold", begin, marks["cold"]) if "cold" in marks
              else phase("cold (unfinished)", begin, finish)]
    if "first" in marks:
        first = marks["first"]
        phases.append(phase("first interval", begin, replace(first, at=begin.at + interval)))
        phases.append(phase("after it", first, finish))
    return phases


def run(args: argparse.Namespace, data_dir: Path, state_dir: Path) -> LiveResult:
    settings = PollSettings()
    limits = FetchLimits(
        user_agent=f"{DEFAULT_USER_AGENT} bench", timeout_seconds=settings.timeout_seconds,
        max_body_bytes=settings.max_body_bytes, max_redirects=settings.max_redirects,
        per_host_concurrency=settings.workers, allowed_networks=LOOPBACK)
    database = Database(state_dir / "state.sqlite3")
    fetcher = Fetcher(limits)
    processes = parse_processes_for(args.parse_processes, args.feeds)  # as the service does
    body_parser = build_parser(processes, args.parse_threads,
                               *([] if args.parse_overflow is None else [args.parse_overflow]))
    pool = body_parser if isinstance(body_parser, ParsePool) else None
    workers = Workers(pool)
    poll_state = SQLitePollState(database, write_behind=True)  # as the service has it
    poller = TimedPoller(
        fetcher, poll_state, EmbeddedItemLog(database),
        Metrics(CollectorRegistry()),
        policy=SchedulePolicy(settings.backoff_cap_seconds, settings.max_age_cap_seconds,
                              settings.jitter_ratio),
        text_limits=TextLimits(settings.max_title_chars, settings.max_summary_chars),
        bus_name="embedded", rng=random.Random(1), profile=args.profile > 0,
        parser=body_parser)
    server = start_server(data_dir, args.feeds, args.changed, args.seed, args.hosts,
                          args.shared_items)
    urls = feed_urls(server, args.feeds)
    feeds = [FeedConfig.model_validate({"id": f"f{i}", "url": urls[i],
                                        "source": f"bench {i}", "interval": args.interval})
             for i in range(args.feeds)]
    if args.start == "restart":
        seed_state(SQLitePollState(database), server.ask(("validators",), 120)[1],
                   args.interval)
    submissions = Submissions()
    scheduler = scheduler_for(poller, settings, args.workers)
    scheduler._scheduler.add_listener(submissions.on_submitted, EVENT_JOB_SUBMITTED)
    scheduler._scheduler.add_listener(submissions.on_skipped, EVENT_JOB_MAX_INSTANCES)
    stop = threading.Event()

    def change_every_interval() -> None:
        generation = 1
        while not stop.wait(args.interval):
            server.ask(("change", generation), 60)
            generation += 1

    changer = threading.Thread(target=change_every_interval, daemon=True)
    states = {state.feed_id: state for state in poll_state.load_all()}  # as the service does
    begin = mark(server, workers)
    scheduler.start(feeds, states)
    changer.start()
    sampler = StackSampler() if args.sample else None
    cold_done: float | None = None
    marks: dict[str, Mark] = {}
    while (elapsed := time.time() - begin.at) < args.duration:
        time.sleep(0.5)
        if cold_done is None and len(poller.starts) == args.feeds:
            with poller.lock:
                done = len(poller.ends)
            if done >= args.feeds:
                marks["cold"] = mark(server, workers)
                cold_done = marks["cold"].at
        if "first" not in marks and elapsed >= args.interval:
            marks["first"] = mark(server, workers)
    finish = mark(server, workers)
    if sampler is not None:
        sampler.stop()
    stop.set()
    fetcher.stop(grace_seconds=2.0)  # as the service stops: polls queued behind end at once
    scheduler.shutdown()
    served = server.ask(("stats",), 60)[1]
    finish = replace(finish, server_cpu=stop_server(server))
    fetcher.close()
    body_parser.close()
    poll_state.close()
    database.close()
    if args.profile:
        poller.print_profile(args.profile)
    if sampler is not None:
        sampler.print(args.sample)
    phases = phases_of(start_delays(submissions.due, poller.starts), begin, marks, finish,
                       args.interval)
    return LiveResult(phases, served, submissions.skipped,
                      (cold_done - begin.at) if cold_done else None,
                      args.workers or settings.workers, max_rss_mb(),
                      poller.poll_cpu_seconds, finish.cpu - begin.cpu, processes,
                      finish.workers_cpu - begin.workers_cpu)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--feeds", type=int, required=True)
    parser.add_argument("--data", type=Path, default=None, help="folder of feed documents")
    parser.add_argument("--duration", type=float, default=240.0,
                        help="seconds to run (the first interval and the steady state after)")
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--changed", type=float, default=0.1,
                        help="share of the feeds given a new body every interval")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--shared-items", action="store_true",
                        help="serve the documents as they are: feeds of one document share items")
    parser.add_argument("--hosts", type=int, default=1,
                        help="serve the feeds from this many servers (origins), feed i from "
                             "server i mod N")
    parser.add_argument("--start", choices=("empty", "restart"), default="empty",
                        help="empty: no stored state, every first poll parses its feed; "
                             "restart: every feed's validators stored, as after a restart")
    parser.add_argument("--workers", type=int, default=None,
                        help="poll workers (default: the settings' default)")
    parser.add_argument("--parse-threads", type=int, default=None,
                        help="polls parsing at once (default: FeedPoller's, the cores)")
    parser.add_argument("--parse-processes", type=int, default=None,
                        help="parse worker processes (default: as the service picks them, "
                             "MONITOR_POLL__PARSE_PROCESSES unset; 0: parse in-process)")
    parser.add_argument("--parse-overflow", type=int, default=None,
                        help="with parse processes: bodies parsed in-process at once while "
                             "every parse process is busy (default: the service's; 0: wait)")
    parser.add_argument("--sample", type=int, default=0, metavar="LINES",
                        help="sample the poll threads' stacks every 10 ms, print the top LINES "
                             "places they were in (waiting included) to stderr")
    parser.add_argument("--profile", type=int, default=0, metavar="LINES",
                        help="cProfile every poll, print the top LINES to stderr")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    data_dir = data_dir_or_exit(args.data)
    load = load_average()
    with tempfile.TemporaryDirectory(prefix="monitor-bench-live-") as tmp:
        log_file = log_to_file(Path(tmp) / "monitor.log", args.log_level)
        try:
            result = run(args, data_dir, Path(tmp))
        finally:
            handler = logging.getLogger().handlers[0]
            assert isinstance(handler, logging.StreamHandler)
            handler.setStream(sys.stderr)
            log_file.close()
        lines = log_lines(Path(tmp) / "monitor.log")
    phases = result.phases
    print(f"{args.feeds} feeds on {args.hosts} host(s) every {args.interval:g} s, "
          f"{args.changed:.0%} changed a round, "
          f"start {args.start}, {result.workers} workers, {result.parse_processes} parse "
          f"processes, {args.duration:g} s; load average "
          f"at start {load}; "
          f"log {lines} lines; code {REPO}")
    print(f"{'phase':<18}{'seconds':>8}{'polls':>7}{'late':>6}{'p50 s':>7}{'p99 s':>7}"
          f"{'max s':>7}{'CPU':>6}{'parse':>6}{'server':>7}{'RSS MiB':>8}{'parse RSS':>10}")
    for p in phases:
        f = p.figures()
        print(f"{p.name:<18}{f['seconds']:>8}{p.polls:>7}{p.late:>6}{f['delay_p50']:>7}"
              f"{f['delay_p99']:>7}{f['delay_max']:>7}{f['cpu_share']:>6.0%}"
              f"{f['workers_cpu_share']:>6.0%}{f['server_cpu_share']:>7.0%}{f['rss_mib']:>8}"
              f"{f['workers_rss_mib']:>10}")
    cold = result.cold_seconds
    print(f"cold round {'unfinished' if cold is None else f'{cold:.1f} s'}; skipped runs "
          f"{result.skipped}; requests served {result.served}; peak RSS "
          f"{result.peak_rss_mib:.0f} MiB; CPU {result.cpu_seconds:.0f} s, parse processes "
          f"{result.workers_cpu_seconds:.0f} s")
    figures = {
        "benchmark": "poll-live", "feeds": args.feeds, "hosts": args.hosts,
        "interval": args.interval,
        "changed": args.changed, "duration": args.duration, "workers": result.workers,
        "start": args.start,
        "cold_seconds": None if cold is None else round(cold, 1),
        "phases": {p.name: p.figures() for p in phases}, "skipped": result.skipped,
        "served": result.served, "peak_rss_mib": round(result.peak_rss_mib, 1),
        "cpu_seconds": round(result.cpu_seconds, 1),
        "poll_cpu_seconds": round(result.poll_cpu_seconds, 1),
        "parse_processes": result.parse_processes,
        "parse_processes_cpu_seconds": round(result.workers_cpu_seconds, 1),
        "loadavg_1m_at_start": load, "python": platform.python_version(),
        "cpus": os.cpu_count(), "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(figures, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())

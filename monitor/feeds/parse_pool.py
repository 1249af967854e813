"""Where fetched bodies are parsed: in the polling process, or in a pool of worker processes.

Parsing is CPU work under the GIL (a changed 220 KB document costs ~40 ms, a tenth of the
process's time at 10,000 feeds even when 90 % of them answer 304). In the polling process
(:class:`InlineParser`) at most ``slots`` polls parse at once, the cores by default: more only
take turns on the GIL and slow down the polls waiting on the network. :class:`ParsePool` runs
``parse_feed`` in worker processes instead (``parse_worker.py``), so parsing uses the other
cores and leaves the polling process's GIL to the fetches; each worker is given one body at a
time, a body is already size-bounded by the fetcher, and the items coming back by the text
limits. While every worker is busy, a poll waits for one (with ``overflow``, up to that many
polls parse in-process instead; none by default).

A worker that dies mid-parse (killed, out of memory, a crash in a C extension) or does not
answer within ``PARSE_TIMEOUT_SECONDS`` (killed then) fails that one parse with a ParseError
naming the feed: nothing of the body is published or marked seen, the feed's next poll fetches
and parses it again, and a new worker takes the dead one's place on the next parse. Any other
exception raised by ``parse_feed`` in a worker (a ParseError, or a bug, with the worker's
traceback as its cause) reaches the poll as it would in-process.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from monitor.errors import ParseError
from monitor.feeds.parse import FeedSource, ParsedFeed, TextLimits, parse_feed
from monitor.feeds.parse_worker import ParseWorker, WorkerDied, unpack

log = logging.getLogger(__name__)

# With fewer enabled feeds than this the pool is not started unless asked for
# (MONITOR_POLL__PARSE_PROCESSES): below, parsing in-process leaves the GIL room enough
# (5,000 feeds at 60 s: ~half a core), the pool's pickling and pipes cost more CPU in all,
# and each worker ~100 MiB of memory (bench/README.md, "Parse processes").
POOL_FROM_FEEDS = 6000
# A parse that has not answered by then is a worker stuck (a bug, or a document that makes
# the parser loop): it is killed and the poll fails. The largest bench document (2.5 MB)
# parses in ~0.5 s; a 10 MiB body (the fetch limit) in seconds on a loaded machine.
PARSE_TIMEOUT_SECONDS = 120.0
# While every worker is busy, this many polls parse in the polling process instead of waiting
# (build_parser's default). None: a parse here takes the GIL every poll thread needs; in a
# cold round (every first poll parses a whole body) the overflow parses took two thirds of
# this process's GIL time, and the workers sat half idle waiting for bodies
# (bench/README.md, "The cold round").
OVERFLOW_SLOTS = 0


class BodyParser(Protocol):
    """Turns a fetched body into items (marked ``backlog`` when asked: a feed's first poll).
    ``parse`` blocks while the parse waits for its turn and runs; it raises ParseError for a
    body that is not a feed (or whose parse could not finish), and lets any other exception
    (a bug) through. Safe to call from many threads. With ``encode``, a parser that can do it
    elsewhere than in the calling process returns an ``EncodedFeed`` (the items' encode_item
    bytes too); others return the ParsedFeed alone."""

    def parse(self, body: bytes, content_type: str | None, source: FeedSource,
              fetched_at: datetime, limits: TextLimits, *, backlog: bool = False,
              encode: bool = False) -> ParsedFeed: ...

    def close(self) -> None: ...


class InlineParser:
    """Parses in the calling thread, at most ``slots`` at once (default: the cores)."""

    def __init__(self, slots: int | None = None) -> None:
        self._slots = threading.BoundedSemaphore(slots or os.cpu_count() or 1)

    def parse(self, body: bytes, content_type: str | None, source: FeedSource,
              fetched_at: datetime, limits: TextLimits, *, backlog: bool = False,
              encode: bool = False) -> ParsedFeed:
        # ``encode`` ignored: here it would cost this process what the publisher's own
        # encoding does.
        with self._slots:
            parsed = parse_feed(body, content_type, source, fetched_at, limits)
        if backlog:
            return replace(parsed, items=tuple(replace(item, backlog=True)
                                               for item in parsed.items))
        return parsed

    def close(self) -> None:
        pass


class ParsePool:
    """Parses in ``processes`` worker processes, each started by the first parse that needs
    it. ``parse`` is what the workers run (a module-level function: sent to them by name).
    With ``overflow``, a parse that finds every worker busy runs there (in this process)
    instead of waiting for one."""

    def __init__(self, processes: int, parse: Callable[..., ParsedFeed] = parse_feed, *,
                 timeout_seconds: float = PARSE_TIMEOUT_SECONDS,
                 overflow: BodyParser | None = None) -> None:
        if processes < 1:
            raise ValueError(f"a parse pool needs at least one process, not {processes}")
        self._processes, self._parse = processes, parse
        self._timeout_seconds, self._overflow = timeout_seconds, overflow
        # A slot holds an idle worker, or None for one not started (yet, or again).
        self._idle: queue.LifoQueue[ParseWorker | None] = queue.LifoQueue()
        for _ in range(processes):
            self._idle.put(None)
        self._lock = threading.Lock()
        self._started: set[ParseWorker] = set()
        self._closed = False
        self.restarts = 0  # workers replaced after one died or hung

    @property
    def processes(self) -> int:
        return self._processes

    def parse(self, body: bytes, content_type: str | None, source: FeedSource,
              fetched_at: datetime, limits: TextLimits, *, backlog: bool = False,
              encode: bool = False) -> ParsedFeed:
        try:
            worker = self._idle.get_nowait()
        except queue.Empty:
            if self._overflow is not None:
                return self._overflow.parse(body, content_type, source, fetched_at, limits,
                                            backlog=backlog, encode=encode)
            worker = self._idle.get()  # the cap: one body per worker at a time
        try:
            worker = worker or self._start()
            packed = worker.ask(body, (content_type, source, fetched_at, limits),
                                self._timeout_seconds, backlog if encode else None)
        except WorkerDied as exc:
            self._discard(worker)
            worker = None
            raise ParseError(
                f"the parse worker process ended while parsing the body of {source.feed_id} "
                f"({exc}); nothing of it was published, the next poll parses it again"
            ) from exc
        finally:
            self._idle.put(worker)
        return unpack(packed, backlog)

    def busy_workers(self) -> int:
        """How many workers are parsing (or being handed a body) now."""
        return self._processes - self._idle.qsize()

    def process_ids(self) -> list[int]:
        """The worker processes' ids (for benchmarks that count their CPU and memory)."""
        with self._lock:
            return sorted(pid for worker in self._started if (pid := worker.pid) is not None)

    def close(self) -> None:
        """Stop the workers (after the polls: a parse still running is cut off); later
        parses are refused."""
        with self._lock:
            self._closed = True
            workers, self._started = list(self._started), set()
        for worker in workers:
            worker.stop()

    def _start(self) -> ParseWorker:
        with self._lock:
            if self._closed:
                raise RuntimeError("parse pool: used after close()")
            worker = ParseWorker(self._parse)
            self._started.add(worker)
            return worker

    def _discard(self, worker: ParseWorker | None) -> None:
        if worker is None:
            return
        worker.kill()
        with self._lock:
            self._started.discard(worker)
            self.restarts += 1
        log.warning("parse: a parse worker process died or hung; a new one starts with the "
                    "next parse that needs it")


def parse_processes_for(setting: int | None, feeds: int) -> int:
    """Worker processes for ``feeds`` feeds: the setting when given (0: parse in-process),
    otherwise the cores once there are POOL_FROM_FEEDS feeds or more."""
    if setting is not None:
        return setting
    return (os.cpu_count() or 1) if feeds >= POOL_FROM_FEEDS else 0


def build_parser(processes: int, inline_slots: int | None = None,
                 overflow_slots: int = OVERFLOW_SLOTS) -> BodyParser:
    """A ParsePool of ``processes`` workers (parsing up to ``overflow_slots`` more bodies
    in-process while they are all busy), or an InlineParser when ``processes`` is 0."""
    if processes == 0:
        return InlineParser(inline_slots)
    return ParsePool(processes, overflow=InlineParser(overflow_slots) if overflow_slots else None)

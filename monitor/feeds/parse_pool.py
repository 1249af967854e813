"""Where fetched bodies are parsed: in the polling process, or in a pool of worker processes.

Parsing is CPU work under the GIL (a changed 220 KB document costs ~40 ms, a tenth of the
process's time at 10,000 feeds even when 90 % of them answer 304). In the polling process
(:class:`InlineParser`) at most ``slots`` polls parse at once, the cores by default: more only
take turns on the GIL and slow down the polls waiting on the network. :class:`ParsePool` runs
``parse_feed`` in worker processes instead, so parsing uses the other cores and leaves the
polling process's GIL to the fetches; at most one body per worker is handed over at a time (the
same cap), and a body is already size-bounded by the fetcher, as are the items coming back by
the text limits.

A worker that dies mid-parse (killed, out of memory, a crash in a C extension) breaks the whole
executor: every parse in progress fails with a ParseError naming its feed, nothing of those
bodies is published or marked seen, the next parse builds a new pool, and each feed's next poll
fetches and parses its body again. Any other exception raised by ``parse_feed`` in a worker
(a ParseError, or a bug) reaches the poll as it would in-process.

The pool's processes are started by ``forkserver`` (``spawn`` where it is missing), never by
fork: the polling process has threads, and a forked child would inherit their locks held.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Protocol

from monitor.errors import ParseError
from monitor.feeds.parse import FeedSource, ParsedFeed, TextLimits, parse_feed

log = logging.getLogger(__name__)

# With fewer enabled feeds than this the pool is not started unless asked for
# (MONITOR_POLL__PARSE_PROCESSES): at 1,000 feeds a minute parsing takes a few per cent of a
# core, and each worker costs ~60 MiB of memory and a second to start.
POOL_FROM_FEEDS = 2000


class BodyParser(Protocol):
    """Turns a fetched body into items. ``parse`` blocks while the parse waits for its turn
    and runs; it raises ParseError for a body that is not a feed (or whose parse could not
    finish), and lets any other exception (a bug) through. Safe to call from many threads."""

    def parse(self, body: bytes, content_type: str | None, source: FeedSource,
              fetched_at: datetime, limits: TextLimits) -> ParsedFeed: ...

    def close(self) -> None: ...


class InlineParser:
    """Parses in the calling thread, at most ``slots`` at once (default: the cores)."""

    def __init__(self, slots: int | None = None) -> None:
        self._slots = threading.BoundedSemaphore(slots or os.cpu_count() or 1)

    def parse(self, body: bytes, content_type: str | None, source: FeedSource,
              fetched_at: datetime, limits: TextLimits) -> ParsedFeed:
        with self._slots:
            return parse_feed(body, content_type, source, fetched_at, limits)

    def close(self) -> None:
        pass


class ParsePool:
    """Parses in ``processes`` worker processes, started on the first parse. ``parse`` is
    what the workers run (a module-level function: it is sent to them by name)."""

    def __init__(self, processes: int,
                 parse: Callable[..., ParsedFeed] = parse_feed) -> None:
        if processes < 1:
            raise ValueError(f"a parse pool needs at least one process, not {processes}")
        self._processes, self._parse = processes, parse
        self._slots = threading.BoundedSemaphore(processes)
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False
        self.restarts = 0  # pools rebuilt after a worker died

    @property
    def processes(self) -> int:
        return self._processes

    def parse(self, body: bytes, content_type: str | None, source: FeedSource,
              fetched_at: datetime, limits: TextLimits) -> ParsedFeed:
        with self._slots:
            executor = self._current()
            try:
                future = executor.submit(self._parse, body, content_type, source, fetched_at,
                                         limits)
                return future.result()
            except BrokenProcessPool as exc:
                self._discard(executor)
                raise ParseError(
                    f"parse {source.feed_id}: a parse worker process died while this body was "
                    f"being parsed; nothing of it was published, the next poll parses it again"
                ) from exc

    def process_ids(self) -> list[int]:
        """The worker processes' ids (for benchmarks that count their CPU and memory)."""
        with self._lock:
            processes = getattr(self._executor, "_processes", None) or {}
            return sorted(processes)

    def close(self) -> None:
        """Wait for parses in progress, then stop the workers; later parses are refused."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("parse pool: used after close()")
            if self._executor is None:
                self._executor = ProcessPoolExecutor(self._processes, _context())
            return self._executor

    def _discard(self, broken: ProcessPoolExecutor) -> None:
        """Drop a broken executor once (the other parses it failed find it gone)."""
        with self._lock:
            if self._executor is not broken:
                return
            self._executor = None
            self.restarts += 1
        log.warning("parse: a parse worker process died; the parses in progress failed and "
                    "a new pool of %d processes starts with the next parse", self._processes)
        broken.shutdown(wait=False, cancel_futures=True)


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # Workers forked from a server that imported the parser start in milliseconds.
        context.set_forkserver_preload(["monitor.feeds.parse"])
        return context
    return multiprocessing.get_context("spawn")


def parse_processes_for(setting: int | None, feeds: int) -> int:
    """Worker processes for ``feeds`` feeds: the setting when given (0: parse in-process),
    otherwise the cores once there are POOL_FROM_FEEDS feeds or more."""
    if setting is not None:
        return setting
    return (os.cpu_count() or 1) if feeds >= POOL_FROM_FEEDS else 0


def build_parser(processes: int, inline_slots: int | None = None) -> BodyParser:
    """A ParsePool of ``processes`` workers, or an InlineParser when that is 0."""
    return ParsePool(processes) if processes > 0 else InlineParser(inline_slots)

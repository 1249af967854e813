"""One parse worker process and the pipe to it: a body goes in, a ParsedFeed (or the
exception the parse raised) comes back. Used by ``parse_pool.ParsePool``, one caller at a time.

The calling thread pickles the request and unpickles the answer itself, and waits on the pipe
with the GIL released: no executor threads in between, which under a busy GIL each add a
switch interval or more to every parse. The body goes as raw bytes after the other arguments
(not pickled with them: one copy less each side), and the ParsedFeed comes back as plain
tuples (``pack``): a dataclass with slots pickles through Python-level ``__getstate__`` and
``__setstate__`` for every item, and the polling process rebuilds the items (``unpack``)
already marked backlog when they are, instead of copying each one afterwards. Asked to
(``encode``), the worker also encodes each item as the item log stores it (``encode_item``,
backlog mark included) and the answer is an :class:`EncodedFeed`: ~16 us an item that the
polling process, whose one GIL every poll thread shares, no longer spends.

A worker that dies mid-parse closes its end of the pipe, which the caller sees at once
(WorkerDied); one that does not answer within the caller's timeout is killed (WorkerDied too).

Workers are started by ``forkserver`` (``spawn`` where it is missing), never by fork: the
polling process has threads, and a forked child would inherit their locks held.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import traceback
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from multiprocessing.connection import Connection
from operator import attrgetter
from typing import Any

from monitor.feeds.parse import ParsedFeed
from monitor.model import Item, encode_item

_JOIN_SECONDS = 5.0


class WorkerDied(Exception):
    """The worker process exited (or was killed for not answering) before it answered."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in the worker, attached as its ``__cause__``."""


class ParseWorker:
    """A started worker process running ``parse`` on whatever ``ask`` sends it."""

    def __init__(self, parse: Callable[..., ParsedFeed]) -> None:
        context = _context()
        self._conn, child = context.Pipe()
        self._process = context.Process(  # type: ignore[attr-defined]  # typeshed: BaseContext
            target=_serve, args=(child, parse), name="monitor-parse", daemon=True)
        self._process.start()
        child.close()

    @property
    def pid(self) -> int | None:
        pid: int | None = self._process.pid
        return pid

    def ask(self, body: bytes, arguments: tuple[Any, ...], timeout_seconds: float,
            encode_as: bool | None = None) -> Packed:
        """``pack(parse(body, *arguments), encode_as)`` in the worker; re-raises what it
        raised; WorkerDied."""
        try:
            self._conn.send((arguments, encode_as))
            self._conn.send_bytes(body)
            if not self._conn.poll(timeout_seconds):
                self.kill()
                raise WorkerDied(f"no answer within {timeout_seconds:g} s; worker killed")
            outcome, value, remote = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise WorkerDied(f"worker process ended ({self._exit_status()})") from exc
        if outcome == "error":
            value.__cause__ = RemoteTraceback(remote)
            raise value
        packed: Packed = value
        return packed

    def stop(self) -> None:
        """Ask the worker to exit; kill it if it does not."""
        with contextlib.suppress(OSError):  # already gone
            self._conn.send(None)
        self._process.join(_JOIN_SECONDS)
        self.kill()

    def kill(self) -> None:
        if self._process.is_alive():
            self._process.kill()
        self._process.join(_JOIN_SECONDS)
        self._conn.close()

    def _exit_status(self) -> str:
        self._process.join(_JOIN_SECONDS)
        code = self._process.exitcode
        return "still running" if code is None else (
            f"killed by signal {-code}" if code < 0 else f"exit code {code}")


@dataclass(frozen=True, slots=True)
class EncodedFeed(ParsedFeed):
    """A ParsedFeed with its items as the item log stores them: ``payloads[i]`` is
    ``encode_item(items[i])``."""

    payloads: tuple[bytes, ...] = ()


# A ParsedFeed on the pipe: (item rows, entries_without_id, encoding, warning,
# bytes_replaced, parser, payloads), an item row being the Item's fields but ``backlog``, in
# order; payloads None unless asked for.
_Row = tuple[str, str, str, str | None, str | None, str, str, str | None, datetime | None,
             datetime, str]
Packed = tuple[tuple[_Row, ...], int, str | None, str | None, int, str, tuple[bytes, ...] | None]
_ROW_FIELDS = tuple(f.name for f in fields(Item) if f.name != "backlog")
_row = attrgetter(*_ROW_FIELDS)


def pack(parsed: ParsedFeed, encode_as: bool | None = None) -> Packed:
    """``encode_as`` None: items as rows only; True / False: also their encode_item bytes,
    marked backlog or not."""
    rows: tuple[_Row, ...] = tuple(_row(item) for item in parsed.items)
    payloads = None
    if encode_as is not None:  # items marked as unpack will mark them, without copies
        payloads = tuple(encode_item(item, encode_as) for item in parsed.items)
    return (rows, parsed.entries_without_id, parsed.encoding, parsed.warning,
            parsed.bytes_replaced, parsed.parser, payloads)


def unpack(packed: Packed, backlog: bool) -> ParsedFeed:
    """The ParsedFeed ``pack`` was given, its items marked ``backlog`` when asked (an
    EncodedFeed when ``pack`` encoded them)."""
    rows, without_id, encoding, warning, replaced, parser, payloads = packed
    items = tuple(Item(*row, backlog=backlog) for row in rows)
    if payloads is None:
        return ParsedFeed(items, without_id, encoding, warning, replaced, parser)
    return EncodedFeed(items, without_id, encoding, warning, replaced, parser, payloads)


def _serve(conn: Connection, parse: Callable[..., ParsedFeed]) -> None:
    """The worker's loop: parse what comes (the arguments and how to encode, then the
    body), answer ("ok", packed ParsedFeed) or ("error", exc)."""
    while (request := conn.recv()) is not None:
        arguments, encode_as = request
        body = conn.recv_bytes()
        try:
            conn.send(("ok", pack(parse(body, *arguments), encode_as), None))
        except Exception as exc:  # noqa: BLE001 - handed to the caller, which re-raises it
            conn.send(("error", _picklable(exc), traceback.format_exc()))


def _picklable(exc: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any failure to round-trip: send its text instead
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # Workers forked from a server that imported the parser start in milliseconds.
        context.set_forkserver_preload(["monitor.feeds.parse"])
        return context
    return multiprocessing.get_context("spawn")

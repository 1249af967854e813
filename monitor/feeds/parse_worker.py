"""One parse worker process and the pipe to it: a body goes in, a ParsedFeed (or the
exception the parse raised) comes back. Used by ``parse_pool.ParsePool``, one caller at a time.

The calling thread pickles the request and unpickles the answer itself, and waits on the pipe
with the GIL released: no executor threads in between, which under a busy GIL each add a
switch interval or more to every parse. A worker that dies mid-parse closes its end of the
pipe, which the caller sees at once (WorkerDied); one that does not answer within the
caller's timeout is killed (WorkerDied too).

Workers are started by ``forkserver`` (``spawn`` where it is missing), never by fork: the
polling process has threads, and a forked child would inherit their locks held.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from monitor.feeds.parse import ParsedFeed

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

    def ask(self, arguments: tuple[Any, ...], timeout_seconds: float) -> ParsedFeed:
        """``parse(*arguments)`` in the worker; re-raises what it raised; WorkerDied."""
        try:
            self._conn.send(arguments)
            if not self._conn.poll(timeout_seconds):
                self.kill()
                raise WorkerDied(f"no answer within {timeout_seconds:g} s; worker killed")
            outcome, value, remote = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise WorkerDied(f"worker process ended ({self._exit_status()})") from exc
        if outcome == "error":
            value.__cause__ = RemoteTraceback(remote)
            raise value
        parsed: ParsedFeed = value
        return parsed

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


def _serve(conn: Connection, parse: Callable[..., ParsedFeed]) -> None:
    """The worker's loop: parse what comes, answer ("ok", ParsedFeed) or ("error", exc)."""
    while (arguments := conn.recv()) is not None:
        try:
            conn.send(("ok", parse(*arguments), None))
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

"""Feed states written behind the polls, many to a transaction, by one thread (group commit).

Nine polls in ten end with nothing but a new feed state (a 304, or nothing new). Written by
each poll thread, every write was a hand-over of the state file's lock, and a hand-over waits
for the GIL and a core: at 10,000 feeds a minute on a busy 2-core machine the poll threads
spent three quarters of their time queued on that lock. Put here, such a state costs the poll
a dict write; this writer takes what has gathered and writes it in one transaction.

A state waits here for milliseconds. A crash loses at most those, and losing the state of a
poll that published nothing only means the next start polls that feed a little early. A poll
that publishes items writes its state with them, in its own transaction (``state.py``); so
that an older state waiting here never overwrites it, that transaction drops the feed's
waiting state (``discard``), and this writer takes its batch only while holding the file's
lock: of two writes of one feed, the later poll's always lands last.

A busy or full state file (StoreError) keeps the batch for the next try, said once; any other
error is a bug: it is raised to the next poll that puts a state here, which stops the process.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence

from monitor.errors import StoreError
from monitor.model import FeedState
from monitor.store import Database

log = logging.getLogger(__name__)

_RETRY_SECONDS = 1.0  # after a busy or full state file

WriteStates = Callable[[sqlite3.Connection, Sequence[FeedState]], None]


class StateWriter:
    """Writes ``put`` states on a thread of its own; ``flush`` writes what waits, now."""

    def __init__(self, database: Database, write: WriteStates) -> None:
        self._db, self._write = database, write
        self._waiting: dict[str, FeedState] = {}  # the latest state of each feed
        self._changed = threading.Condition()
        self._failure: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="feed-state-writer", daemon=True)
        self._thread.start()

    def put(self, state: FeedState) -> None:
        with self._changed:
            if self._failure is not None:
                raise RuntimeError("the feed-state writer stopped") from self._failure
            if self._closed:
                raise RuntimeError("the feed-state writer is closed")
            self._waiting[state.feed_id] = state
            self._changed.notify()

    def discard(self, feed_id: str) -> None:
        """Drop ``feed_id``'s waiting state; call it inside the transaction that writes a
        newer one (it holds the file's lock, so no batch with the older state is in flight)."""
        with self._changed:
            self._waiting.pop(feed_id, None)

    def flush(self) -> None:
        """Write every waiting state before returning (a reload reads the file after it)."""
        with self._db.transaction() as conn:
            self._write(conn, self._take())

    def close(self) -> None:
        """Write what waits and stop the thread (after the last poll)."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join()
        if self._failure is None:
            self.flush()

    def _take(self) -> list[FeedState]:
        with self._changed:
            batch, self._waiting = list(self._waiting.values()), {}
        return batch

    def _run(self) -> None:
        said_busy = False
        while True:
            with self._changed:
                while not self._waiting and not self._closed:
                    self._changed.wait()
                if self._closed:
                    return
            batch: list[FeedState] = []
            try:
                with self._db.transaction() as conn:  # taken under the lock: see the module doc
                    batch = self._take()
                    self._write(conn, batch)
                said_busy = False
            except StoreError as exc:
                self._keep(batch)
                if not said_busy:
                    log.warning("feed states not written yet (%d waiting): %s; trying again",
                                len(batch), exc)
                    said_busy = True
                with self._changed:
                    self._changed.wait_for(lambda: self._closed, _RETRY_SECONDS)
            except BaseException as exc:
                log.exception("the feed-state writer stopped")
                with self._changed:
                    self._failure = exc
                return

    def _keep(self, batch: Sequence[FeedState]) -> None:
        """Put back a batch that was not written, unless a newer state came meanwhile."""
        with self._changed:
            for state in batch:
                self._waiting.setdefault(state.feed_id, state)

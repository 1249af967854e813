"""Per-feed poll state and seen items, kept so that a restart repeats nothing.

A poll ends with :meth:`PollStateStore.commit_poll`: its new items are published, marked seen
and the feed's new state (validators, body hash) stored. Where items and state live in one
place this is one transaction: the state file with the embedded item log (one SQLite
transaction, shared by the polls that commit at the same moment), the feed-state topic of
shared pollers (one Kafka transaction, :mod:`monitor.feeds.kafka_state`). Otherwise (Kafka
mode, state file) the items are published first and only the acknowledged ones marked seen, the
state stored only when all were: a failed publish leaves the next poll to fetch the body again
and find exactly the unsent items; a crash between the broker's acknowledgement and the state
file's commit publishes those items again after the restart (the match stage still writes their
matches once).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from monitor.bus import ItemPublisher, PublishReport
from monitor.bus.embedded import EmbeddedItemLog, ItemRow
from monitor.errors import StoreError
from monitor.feeds.state_writer import StateWriter
from monitor.model import FeedState, Item
from monitor.store import Database


class PollStateStore(Protocol):
    """Durable poll state. Calls block on local disk only; they raise sqlite3 errors."""

    def load(self, feed_id: str) -> FeedState: ...

    def save(self, state: FeedState) -> None: ...

    def seen_hashes(self, item_ids: Sequence[str]) -> Mapping[str, str]: ...

    def commit_poll(self, publisher: ItemPublisher, state: FeedState, items: Sequence[Item],
                    now: float, payloads: Sequence[bytes] = ()) -> PublishReport:
        """Publish ``items``, mark the acknowledged ones seen, and store ``state`` if every
        item was acknowledged (see the module doc for which stores do it atomically). Reports
        what was acknowledged; raises what the store raises, not the bus's failures.
        ``payloads``: the items' ``encode_item`` bytes when the parser made them, else
        empty (see :meth:`ItemPublisher.publish`)."""
        ...

    def touch_seen(self, item_ids: Sequence[str], now: float) -> None: ...

    def prune_seen(self, older_than: float) -> int: ...


@dataclass(slots=True)
class _Poll:
    """A poll's share of a group commit (``SQLitePollState._commit_together``)."""

    publisher: EmbeddedItemLog
    state: FeedState
    items: Sequence[Item]
    rows: list[ItemRow]
    now: float
    done: bool = False
    error: BaseException | None = None


_FIELDS = ("etag", "last_modified", "body_hash", "consecutive_failures", "last_success_at",
           "last_error", "next_check_at")


class SQLitePollState:
    """PollStateStore on the local state file.

    Feed states are also kept in memory, written through: a poll starts by loading its feed's
    state, and at 10,000 feeds a minute that read queued every poll thread on the file's one
    lock. The poller of this process is the only writer of ``feed_state`` (other processes
    only read the file), so what it last committed is what the file holds."""

    def __init__(self, database: Database, *, write_behind: bool = False) -> None:
        """``write_behind``: the state of a poll that published nothing is written by a
        thread of its own, with others (``state_writer``; the service's choice). Without it
        every state is on disk when ``commit_poll`` returns."""
        self._db = database
        self._states: dict[str, FeedState] = {}  # as committed; a dict read is atomic
        # Once load_all has read the table, a feed missing from _states has no row: its first
        # poll after a cold start needs no SELECT (one per feed, under the file's lock).
        self._all_loaded = False
        self._writer = StateWriter(database, _save_all) if write_behind else None
        self._waiting: list[_Poll] = []  # polls with items, for the next group commit
        self._waiting_lock = threading.Lock()
        self._committer = threading.Lock()  # held by the poll thread writing a group

    def load(self, feed_id: str) -> FeedState:
        state = self._states.get(feed_id)
        if state is not None:
            return state
        if self._all_loaded:
            return FeedState(feed_id)
        with self._db.statement() as conn:
            row = conn.execute(
                f"SELECT {', '.join(_FIELDS)} FROM feed_state WHERE feed_id = ?", (feed_id,)
            ).fetchone()
        state = FeedState(feed_id, *row) if row else FeedState(feed_id)
        self._states[feed_id] = state
        return state

    def load_all(self) -> list[FeedState]:
        if self._writer is not None:  # the file first holds what waits to be written
            self._writer.flush()
        with self._db.transaction() as conn:
            rows = conn.execute(f"SELECT feed_id, {', '.join(_FIELDS)} FROM feed_state").fetchall()
        states = [FeedState(*row) for row in rows]
        self._states.update((state.feed_id, state) for state in states)
        self._all_loaded = True
        return states

    def save(self, state: FeedState) -> None:
        with self._db.statement() as conn:
            self._save_now(conn, state)
        self._states[state.feed_id] = state

    def commit_poll(self, publisher: ItemPublisher, state: FeedState, items: Sequence[Item],
                    now: float, payloads: Sequence[bytes] = ()) -> PublishReport:
        if not items:  # most polls (a 304, nothing new): the state alone
            if self._writer is None:
                self.save(state)
            else:
                self._writer.put(state)
                self._states[state.feed_id] = state
            return PublishReport(())
        if isinstance(publisher, EmbeddedItemLog) and publisher.database is self._db:
            # Encoded before the lock is taken, by the parse processes when they did it.
            self._commit_together(_Poll(publisher, state, items,
                                        publisher.rows(items, now, payloads), now))
            self._states[state.feed_id] = state
            publisher.announce(items)
            return PublishReport(tuple(items))
        report = publisher.publish(items, payloads)
        with self._db.transaction() as conn:
            _mark_seen(conn, report.acknowledged, now)
            if report.failure is None:
                self._save_now(conn, state)
        if report.failure is None:
            self._states[state.feed_id] = state
        return report

    def _commit_together(self, poll: _Poll) -> None:
        """Write ``poll`` with the polls waiting meanwhile, in one transaction (group commit).

        Each poll's items, seen-marks and state are written together as before, and with
        those of the polls that came while the last group was written: a commit's fixed cost
        (its WAL frames, the pages every poll touches, the lock's hand-over) is paid once for
        them all, and while one group is written the next gathers. Every poll of a group
        returns once the group is committed, or raises what stopped it (all or none)."""
        with self._waiting_lock:
            self._waiting.append(poll)
        with self._committer:
            if not poll.done:  # not taken by the group written while this one waited
                with self._waiting_lock:
                    group, self._waiting = self._waiting, []
                try:
                    with self._db.transaction() as conn:  # items, seen-marks, states: all or none
                        for member in group:
                            member.publisher.append(conn, member.rows)
                            _mark_seen(conn, member.items, member.now)
                            self._save_now(conn, member.state)
                except BaseException as exc:
                    for member in group:
                        member.error = exc
                for member in group:
                    member.done = True
        if poll.error is None:
            return
        if isinstance(poll.error, StoreError):  # each poll its own, naming the cause
            raise StoreError(str(poll.error)) from poll.error
        raise poll.error

    def close(self) -> None:
        """Write the states still waiting (the state file itself is the service's)."""
        if self._writer is not None:
            self._writer.close()

    def _save_now(self, conn: sqlite3.Connection, state: FeedState) -> None:
        if self._writer is not None:  # an older state of the feed may wait: this one is newer
            self._writer.discard(state.feed_id)
        _save(conn, state)

    def seen_hashes(self, item_ids: Sequence[str]) -> Mapping[str, str]:
        found: dict[str, str] = {}
        with self._db.statement() as conn:  # reads: WAL gives each SELECT a consistent view
            for start in range(0, len(item_ids), 500):  # SQLite's bound-parameter limit
                chunk = item_ids[start:start + 500]
                found.update(conn.execute(
                    "SELECT item_id, content_hash FROM seen_items WHERE item_id IN "
                    f"({', '.join('?' for _ in chunk)})", chunk,
                ).fetchall())
        return found

    def touch_seen(self, item_ids: Sequence[str], now: float) -> None:
        if not item_ids:
            return
        with self._db.transaction() as conn:
            conn.executemany(
                "UPDATE seen_items SET last_seen_at = ? WHERE item_id = ?",
                [(now, item_id) for item_id in item_ids],
            )

    def prune_seen(self, older_than: float) -> int:
        """Forget items no feed has listed since ``older_than``; returns how many."""
        with self._db.transaction() as conn:
            return conn.execute(
                "DELETE FROM seen_items WHERE last_seen_at < ?", (older_than,)
            ).rowcount


_SAVE = (f"INSERT OR REPLACE INTO feed_state (feed_id, {', '.join(_FIELDS)}) "
         f"VALUES (?, {', '.join('?' for _ in _FIELDS)})")


def _save(conn: sqlite3.Connection, state: FeedState) -> None:
    conn.execute(_SAVE, _row(state))


def _save_all(conn: sqlite3.Connection, states: Sequence[FeedState]) -> None:
    conn.executemany(_SAVE, [_row(state) for state in states])


def _row(state: FeedState) -> tuple[object, ...]:
    return (state.feed_id, *(getattr(state, name) for name in _FIELDS))


def _mark_seen(conn: sqlite3.Connection, items: Iterable[Item], now: float) -> None:
    conn.executemany(
        "INSERT INTO seen_items (item_id, feed_id, content_hash, first_seen_at, "
        "last_seen_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (item_id) DO UPDATE SET "
        "content_hash = excluded.content_hash, last_seen_at = excluded.last_seen_at",
        [(item.item_id, item.feed_id, item.content_hash, now, now) for item in items],
    )

"""Embedded mode's logs: items, matches and alert records in the local SQLite file.

Not a Kafka imitation, but the same contract (:mod:`monitor.bus.log`) on one process: each log
is a table in append order with a sequence number (the offset; one partition, 0), each stage's
committed position is a row of ``stage_offsets``, dead letters are rows of ``dead_letters``.
A stage's outputs, dead letters and position are written in one SQLite transaction, so a crash
repeats or loses nothing, and a record id already in a log is not written twice.

A poll's items, their seen-marks and the feed's state are written in one transaction
(:meth:`monitor.feeds.state.SQLitePollState.commit_poll`); appending items is also idempotent
per (item_id, content_hash), so the same version is never in the log twice.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from monitor.bus import PublishReport
from monitor.bus.log import DeadLetter, LogName, Output, Polled, Record
from monitor.errors import BusError, MonitorError, StoreError
from monitor.model import Item, decode_item, encoded_items
from monitor.store import Database

log = logging.getLogger(__name__)

PARTITION = 0  # an embedded log has one partition

ItemRow = tuple[str, str, bytes, float]  # item_log's (item_id, content_hash, payload, logged_at)


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    insert: str  # INSERT OR IGNORE of (record id, partition, key, payload, logged_at)


_TABLES: dict[LogName, _Table] = {
    "items": _Table("item_log", ""),  # written by EmbeddedItemLog.publish only
    "matches": _Table("match_log", "INSERT OR IGNORE INTO match_log (match_id, claim_id, "
                                   "payload, logged_at) VALUES (?, ?, ?, ?)"),
    "alerts": _Table("alert_log", "INSERT OR IGNORE INTO alert_log (record_id, partition, key, "
                                  "payload, logged_at) VALUES (?, ?, ?, ?, ?)"),
    # Each matched item version's features (monitor/match/features.py), for backtests.
    "features": _Table("item_features", "INSERT OR IGNORE INTO item_features (feature_id, "
                                        "item_id, payload, logged_at) VALUES (?, ?, ?, ?)"),
}


class EmbeddedLog:
    """One log of the state file (items, matches or alert records), read by position.

    ``appended`` is set whenever records are added, so a reader in this process can wait for
    them instead of polling the file.
    """

    def __init__(self, database: Database, name: LogName) -> None:
        self._db, self.name, self._table = database, name, _TABLES[name]
        self.appended = threading.Event()

    @property
    def table(self) -> str:
        return self._table.name

    def append(self, conn: sqlite3.Connection, outputs: Sequence[Output], now: float) -> None:
        """Insert ``outputs`` inside the caller's transaction (an id already here is kept)."""
        if self.name in ("matches", "features"):
            rows: list[tuple[object, ...]] = [(o.id, o.key.decode("utf-8"), o.value, now)
                                              for o in outputs]
        elif self.name == "alerts":
            rows = [(o.id, o.partition or PARTITION, o.key, o.value, now) for o in outputs]
        else:
            raise MonitorError(f"embedded log {self.name}: written by its publisher only")
        conn.executemany(self._table.insert, rows)

    def read_after(self, seq: int, limit: int) -> list[Record]:
        with self._db.transaction() as conn:
            rows = conn.execute(self._select("WHERE seq > ? ORDER BY seq LIMIT ?"),
                                (seq, limit)).fetchall()
        return [Record(PARTITION, int(row_seq), _key(key), bytes(payload))
                for row_seq, key, payload in rows]

    def payloads_after(self, seq: int, limit: int) -> list[tuple[int, bytes]]:
        """(sequence number, payload) after ``seq``: a bulk read without a Record per row
        (a backtest reads a million item features)."""
        with self._db.transaction() as conn:
            return conn.execute(f"SELECT seq, payload FROM {self.table} WHERE seq > ? "
                                "ORDER BY seq LIMIT ?", (seq, limit)).fetchall()

    def read_all(self) -> list[Record]:
        return self.read_after(0, -1)

    def last_seq(self) -> int:
        with self._db.transaction() as conn:
            (last,) = conn.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {self.table}").fetchone()
        return int(last)

    def count(self) -> int:
        with self._db.transaction() as conn:
            (total,) = conn.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()
        return int(total)

    def _select(self, clause: str) -> str:
        key = {"items": "item_id", "matches": "claim_id", "alerts": "key",
               "features": "item_id"}[self.name]
        return f"SELECT seq, {key}, payload FROM {self.table} {clause}"


def _key(raw: str | bytes | None) -> bytes | None:
    """Keys are TEXT in the item and match logs (ids), BLOB in the alert log."""
    return raw.encode("utf-8") if isinstance(raw, str) else raw


class EmbeddedItemLog:
    """ItemPublisher on the local state file; the match stage reads ``log``. The poller's
    state store appends a poll's items with its state in one transaction (``append``)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.log = EmbeddedLog(database, "items")

    def publish(self, items: Sequence[Item], payloads: Sequence[bytes] = ()) -> PublishReport:
        rows = self.rows(items, time.time(), payloads)
        with self.database.transaction() as conn:
            self.append(conn, rows)
        self.announce(items)
        return PublishReport(tuple(items))

    def rows(self, items: Sequence[Item], now: float,
             payloads: Sequence[bytes] = ()) -> list[ItemRow]:
        """The log rows of ``items`` (``payloads``: their encodings, if made ahead), to be
        made before the transaction that appends them: encoding takes ~70 us an item, which
        under the state file's lock every other poll would wait for."""
        return [(item.item_id, item.content_hash, payload, now)
                for item, payload in zip(items, encoded_items(items, payloads), strict=True)]

    def append(self, conn: sqlite3.Connection, rows: Sequence[ItemRow]) -> None:
        """Insert ``rows`` inside the caller's transaction (a version already here is kept);
        :meth:`announce` their items once it is committed."""
        conn.executemany(
            "INSERT OR IGNORE INTO item_log (item_id, content_hash, payload, logged_at) "
            "VALUES (?, ?, ?, ?)", rows)

    def announce(self, items: Sequence[Item]) -> None:
        """Log committed items and wake the match stage. A backlog item (a feed's first poll)
        is logged at DEBUG only: the poller says at INFO how many a first poll published, and
        a cold start would otherwise write a line for every item every feed lists."""
        for item in items:
            level = logging.DEBUG if item.backlog else logging.INFO
            if log.isEnabledFor(level):
                log.log(level, "item %s %s: %s", item.feed_id, item.item_id, item.title,
                        extra={"feed_id": item.feed_id, "item_id": item.item_id})
        if items:
            self.log.appended.set()

    def read_after(self, seq: int, limit: int = 500) -> list[tuple[int, Item]]:
        """Items logged after sequence number ``seq``, oldest first."""
        return [(r.offset, decode_item(r.value)) for r in self.log.read_after(seq, limit)]

    def last_seq(self) -> int:
        return self.log.last_seq()

    def count(self) -> int:
        return self.log.count()

    def is_ready(self) -> bool:
        return True

    def close(self) -> None:
        """The database is owned by the service, which closes it."""


class EmbeddedStageLog:
    """:class:`monitor.bus.log.StageLog` on the state file, for the stage named ``stage``
    reading ``source`` and writing to ``sinks``."""

    def __init__(self, database: Database, stage: str, source: EmbeddedLog,
                 sinks: Mapping[LogName, EmbeddedLog], *, batch_max: int = 200,
                 clock: Callable[[], float] = time.time) -> None:
        self._db, self._stage, self._source, self._sinks = database, stage, source, sinks
        self._batch_max, self._clock = batch_max, clock
        self.source = source.table
        self._committed = self._load_position()
        self._position = self._committed
        self._announced = False

    def poll(self, timeout_seconds: float, max_records: int | None = None) -> Polled:
        assigned = frozenset() if self._announced else frozenset({PARTITION})
        self._announced = True
        limit = self._batch_max if max_records is None else min(max_records, self._batch_max)
        with self._translated("read"):
            records = self._source.read_after(self._position, limit)
            if not records and timeout_seconds > 0:
                self._source.appended.wait(timeout_seconds)
                self._source.appended.clear()
                records = self._source.read_after(self._position, limit)
        if records:
            self._position = records[-1].offset
        return Polled(records, assigned=assigned)

    def begin(self, consumed: Sequence[Record]) -> None:
        """Nothing to start ahead: :meth:`transact` is one SQLite transaction."""

    def transact(self, consumed: Sequence[Record], outputs: Sequence[Output],
                 dead: Sequence[DeadLetter]) -> None:
        position = max((r.offset for r in consumed), default=self._committed)
        with self._translated("commit"), self._db.transaction() as conn:
            self._write(conn, outputs, dead)
            self._store_position(conn, position)
        self._committed = max(self._committed, position)
        self._wake(outputs)

    def write(self, outputs: Sequence[Output], dead: Sequence[DeadLetter] = (),
              positions: Mapping[int, int] | None = None) -> None:
        position = _stored_position(positions)
        with self._translated("write"), self._db.transaction() as conn:
            self._write(conn, outputs, dead)
            if position is not None:
                self._store_position(conn, position)
        if position is not None:
            self._committed = position
        self._wake(outputs)

    def commit(self, positions: Mapping[int, int]) -> None:
        position = _stored_position(positions)
        if position is None:
            return
        with self._translated("commit"), self._db.transaction() as conn:
            self._store_position(conn, position)
        self._committed = position

    def read_back(self, log_name: LogName, partitions: Sequence[int] | None) -> list[Record]:
        if partitions is not None and PARTITION not in partitions:
            return []
        with self._translated("read"):
            return self._sinks[log_name].read_all()

    def lag(self) -> int:
        """Records of the source not committed yet (read or not)."""
        return max(0, self._source.last_seq() - self._committed)

    def failure_level(self, error: BaseException) -> int:
        return logging.WARNING

    def is_ready(self) -> bool:
        return True

    def close(self) -> None:
        """The database is owned by the service, which closes it."""

    def committed(self) -> int:
        """The last offset of the source this stage has committed (0: none)."""
        return self._committed

    def _write(self, conn: sqlite3.Connection, outputs: Sequence[Output],
               dead: Sequence[DeadLetter]) -> None:
        now = self._clock()
        for name, sink in self._sinks.items():
            sink.append(conn, [o for o in outputs if o.log == name], now)
        unknown = {o.log for o in outputs} - set(self._sinks)
        if unknown:
            raise MonitorError(f"{self._stage}: no embedded log {sorted(unknown)} to write to")
        conn.executemany(
            "INSERT INTO dead_letters (stage, payload, error, at, headers, key) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(d.stage, d.value, d.error, now, json.dumps(dict(d.headers)), d.key) for d in dead])

    def _wake(self, outputs: Sequence[Output]) -> None:
        for name in {o.log for o in outputs}:
            self._sinks[name].appended.set()

    def _load_position(self) -> int:
        with self._db.transaction() as conn:
            row = conn.execute("SELECT seq FROM stage_offsets WHERE stage = ?",
                               (self._stage,)).fetchone()
        return int(row[0]) if row else 0

    def _store_position(self, conn: sqlite3.Connection, position: int) -> None:
        conn.execute("INSERT INTO stage_offsets (stage, seq) VALUES (?, ?) "
                     "ON CONFLICT (stage) DO UPDATE SET seq = excluded.seq",
                     (self._stage, position))

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        """A locked or full state file is worth another try: rewind to the committed
        position so that the failed batch is read again."""
        try:
            yield
        except StoreError as exc:
            self._position = self._committed
            raise BusError(f"{self._stage}: cannot {action}: {exc}", exc) from exc


def read_dead_letters(database: Database) -> list[tuple[str, Mapping[str, str], bytes]]:
    """(place, headers, value) of every dead letter in the state file, oldest first."""
    with database.transaction() as conn:
        rows = conn.execute("SELECT id, stage, error, at, headers, payload FROM dead_letters "
                            "ORDER BY id").fetchall()
    found: list[tuple[str, Mapping[str, str], bytes]] = []
    for row_id, stage, error, at, headers, payload in rows:
        named = {"stage": stage, "error": error, **json.loads(headers or "{}")}
        named.setdefault("time", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)))
        found.append((f"dead_letters#{row_id}", named, bytes(payload)))
    return found


def _stored_position(positions: Mapping[int, int] | None) -> int | None:
    """The position to store for a commit of ``positions`` (None: nothing of ours): Kafka
    commits the next offset to read, the state file keeps the last one read."""
    if positions is None or PARTITION not in positions:
        return None
    return positions[PARTITION] - 1

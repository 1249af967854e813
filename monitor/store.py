"""The local SQLite file: poll state in both modes; in embedded mode also the pipeline's logs
(items, matches, alert records), the stages' positions and the dead letters.

One connection per process, shared by the poller threads behind a lock; WAL journal so readers
(``monitor status``, tests) never block the writer.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from monitor.errors import ConfigError, StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feed_state (
    feed_id TEXT PRIMARY KEY,
    etag TEXT,
    last_modified TEXT,
    body_hash TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_success_at REAL,
    last_error TEXT,
    next_check_at REAL
);
CREATE TABLE IF NOT EXISTS seen_items (
    item_id TEXT PRIMARY KEY,
    feed_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    first_seen_at REAL NOT NULL,
    last_seen_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_items_last_seen ON seen_items (last_seen_at);
CREATE TABLE IF NOT EXISTS item_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    payload BLOB NOT NULL,
    logged_at REAL NOT NULL,
    UNIQUE (item_id, content_hash)
);
CREATE TABLE IF NOT EXISTS stage_offsets (
    stage TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS match_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    match_id TEXT NOT NULL UNIQUE,
    claim_id TEXT NOT NULL,
    payload BLOB NOT NULL,
    logged_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stage TEXT NOT NULL,
    payload BLOB NOT NULL,
    error TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS item_features (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    feature_id TEXT NOT NULL UNIQUE,
    item_id TEXT NOT NULL,
    payload BLOB NOT NULL,
    logged_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL UNIQUE,
    partition INTEGER NOT NULL,
    key BLOB,
    payload BLOB NOT NULL,
    logged_at REAL NOT NULL
);
"""
# Columns added after a table first shipped: (table, column, definition), added when missing.
_ADDED_COLUMNS = (
    ("dead_letters", "headers", "TEXT NOT NULL DEFAULT '{}'"),  # receiver, id, source ...
    ("dead_letters", "key", "BLOB"),
)
# Pages the WAL gathers before a commit copies them into the file (a checkpoint; SQLite's
# default is 1,000, ~4 MB). A feed's first poll writes ~80 pages: its items, and a leaf of
# each of two indexes keyed by random ids (item_log's, seen_items'). At 1,000 a checkpoint
# came every ~12 first polls, inside the commit that crossed the mark, under the file's lock,
# with two fsyncs, and copied leaves that the next commits wrote again; at 10,000 (~40 MB)
# a page written several times between checkpoints is copied once and the fsyncs come a tenth
# as often: 12-15 % less CPU a first poll's SQL (bench/README.md, poller, 2026-12-01).
# Readers barely notice (a read looks a page up in the WAL's index first: 9 % slower reads
# with 450 MB of WAL, none measurable at 90 MB), and a crash replays at most ~40 MB.
_WAL_CHECKPOINT_PAGES = 10_000
# After a checkpoint the WAL is cut back to this size: a burst (a large backtest's writes)
# would otherwise leave the file at its peak. Above the ~40 MB a checkpoint empties at.
_WAL_KEPT_BYTES = 64 * 1024 * 1024


class Database:
    """A thread-safe handle on the state file; ``transaction()`` is the only way to use it.

    ``schema`` None: the state file's tables. Another file of the monitor's own (the desk's
    view) passes its schema instead and gets only its tables."""

    def __init__(self, path: Path, *, schema: str | None = None) -> None:
        self.path = path
        try:
            if str(path) != ":memory:":
                path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(
                str(path), check_same_thread=False, isolation_level=None, timeout=30
            )
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._connection.executescript(_SCHEMA if schema is None else schema)
            if schema is None:
                _add_missing_columns(self._connection)
                self._connection.execute(f"PRAGMA wal_autocheckpoint={_WAL_CHECKPOINT_PAGES}")
                self._connection.execute(f"PRAGMA journal_size_limit={_WAL_KEPT_BYTES}")
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"state file {path}: cannot open: {exc}") from exc
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block in one IMMEDIATE transaction: all of it is written, or none.

        A locked, full or failing file is a StoreError (worth another try later); SQL that is
        wrong stays sqlite3's own error: it is a bug."""
        with self._lock:
            try:
                self._connection.execute("BEGIN IMMEDIATE")
                try:
                    yield self._connection
                except BaseException:
                    if self._connection.in_transaction:
                        self._connection.execute("ROLLBACK")
                    raise
                self._connection.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if self._connection.in_transaction:
                    self._connection.execute("ROLLBACK")
                if not _transient(exc):
                    raise
                raise StoreError(f"state file {self.path}: {exc}") from exc

    @contextmanager
    def statement(self) -> Iterator[sqlite3.Connection]:
        """Run one SQL statement, which SQLite makes a transaction of its own: the lock is
        held for one call into SQLite instead of three (BEGIN, the statement, COMMIT). Every
        call gives up the GIL and waits to take it back, and with 32 poll threads that wait,
        paid under the lock, was what a busy poller queued on. Errors as ``transaction``."""
        with self._lock:
            try:
                yield self._connection
            except sqlite3.OperationalError as exc:
                if not _transient(exc):
                    raise
                raise StoreError(f"state file {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._connection.close()


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    """Bring a state file written by an older version up to the current schema."""
    for table, column, definition in _ADDED_COLUMNS:
        present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        if column in present:
            continue
        try:
            connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        except sqlite3.OperationalError as exc:  # another process added it a moment ago
            if "duplicate column" not in str(exc):
                raise


def _transient(exc: sqlite3.OperationalError) -> bool:
    """Busy, locked, full or failing storage, as opposed to SQL that cannot run."""
    text = str(exc).lower()
    return any(word in text for word in ("locked", "busy", "full", "disk i/o", "readonly",
                                         "unable to open"))

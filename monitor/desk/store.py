"""The desk's view of the match log, kept in a SQLite file of its own (``desk_view_path``).

:class:`StoredDeskView` is a :class:`monitor.desk.view.DeskView`. It holds every readable
match record in the order the desk read it (per claim, the log's order: the log is keyed by
claim id), and the positions in the log it has read up to. :meth:`StoredDeskView.apply`
writes a batch of records together with the positions after it in ONE transaction, so a
restart resumes exactly where the view ends, and a crash repeats nothing.

The view belongs to one log (``match_log``, or a topic): a view built from another is started
over (:meth:`start_over`), and so is one whose file is missing or empty. It has one writer;
a second process writing the same file is found out at its first batch and stopped.

Reads are cheap enough for a page per request: a claim's matches come by an index on claim id
(and the decoded matches of the claims read last are kept, so a page decodes only what is new);
the activity of each claim is counted by a query over the latest version of each linked item,
a table :meth:`apply` keeps up to date, and counted again only for claims with new records.
Decoding 100,000 matches to count them with :func:`monitor.desk.view.activity_of` takes ~7 s;
the queries take 0.13 s the first time and milliseconds after, and count the same
(``tests/desk/test_store.py`` holds the two side by side). Measured on 100,000 matches of 81
claims: applying them 4 s (plus 7 s decoding them in the follower), a claim's 1,000 matches
0.1 s the first time and 0.2 ms after.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.desk.view import ClaimActivity
from monitor.errors import MonitorError
from monitor.model import Match, decode_match
from monitor.store import Database

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS view_source (
    source TEXT PRIMARY KEY          -- the log the view is built from; one row at most
);
CREATE TABLE IF NOT EXISTS view_positions (
    partition INTEGER PRIMARY KEY,
    next_offset INTEGER NOT NULL     -- the next offset to read in the log
);
CREATE TABLE IF NOT EXISTS view_matches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order the desk read them in
    claim_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    match_id TEXT NOT NULL,
    payload BLOB NOT NULL            -- the record's value as the log holds it
);
CREATE INDEX IF NOT EXISTS view_matches_claim ON view_matches (claim_id, seq);
CREATE TABLE IF NOT EXISTS view_items (  -- the latest version of each linked item
    claim_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    relation TEXT NOT NULL,
    language TEXT,
    moment_us INTEGER NOT NULL,      -- published_at, else fetched_at: microseconds, UTC
    PRIMARY KEY (claim_id, item_id)
) WITHOUT ROWID;
"""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_CACHED_MATCHES = 20_000  # decoded matches kept, of the claims read last (1-3 KB each)


@dataclass(frozen=True, slots=True)
class Linked:
    """A readable match record: the match, and its value as the log holds it."""

    match: Match
    value: bytes


@dataclass
class _Decoded:
    last_seq: int
    matches: list[Match]


class StoredDeskView:
    """See the module doc. Thread-safe: the desk's follower writes while pages read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = Database(path, schema=_SCHEMA)
        self._lock = threading.Lock()
        self._decoded: OrderedDict[str, _Decoded] = OrderedDict()
        self._activity: dict[str, ClaimActivity] = {}
        self._activity_seq = 0  # the last record the activity counts
        self._written: dict[int, int] | None = None  # the positions last read or written

    # -- what the follower uses ------------------------------------------------------------

    def source(self) -> str | None:
        with self._db.transaction() as conn:
            row = conn.execute("SELECT source FROM view_source").fetchone()
        return None if row is None else str(row[0])

    def positions(self) -> dict[int, int]:
        """The next offset to read per partition of the log (empty: from the beginning).
        What :meth:`apply` expects to find stored, unless this object writes it first."""
        with self._db.transaction() as conn:
            self._written = _positions(conn)
        return dict(self._written)

    def start_over(self, source: str) -> None:
        """Forget every record and position: the view is rebuilt from ``source``."""
        with self._lock, self._db.transaction() as conn:
            for table in ("view_source", "view_positions", "view_matches", "view_items"):
                conn.execute(f"DELETE FROM {table}")
            conn.execute("INSERT INTO view_source (source) VALUES (?)", (source,))
            self._decoded.clear()
            self._activity, self._activity_seq, self._written = {}, 0, {}

    def apply(self, linked: Sequence[Linked], positions: Mapping[int, int]) -> None:
        """Append ``linked`` (in log order) and move the positions to ``positions``, in one
        transaction. MonitorError when another process moved the positions meanwhile."""
        with self._db.transaction() as conn:
            stored = _positions(conn)
            if self._written is not None and stored != self._written:
                raise MonitorError(
                    f"desk: the view {self.path} was written by another process; give each "
                    "desk a view of its own (MONITOR_DESK__VIEW_PATH)")
            conn.executemany(
                "INSERT INTO view_matches (claim_id, item_id, match_id, payload) "
                "VALUES (?, ?, ?, ?)",
                [(e.match.claim_id, e.match.item.item_id, e.match.match_id, e.value)
                 for e in linked])
            conn.executemany(
                "INSERT INTO view_items (claim_id, item_id, relation, language, moment_us) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (claim_id, item_id) DO UPDATE SET "
                "relation = excluded.relation, language = excluded.language, "
                "moment_us = excluded.moment_us",  # a later version replaces an earlier one
                [_item_row(e.match) for e in linked])
            conn.executemany(
                "INSERT INTO view_positions (partition, next_offset) VALUES (?, ?) "
                "ON CONFLICT (partition) DO UPDATE SET next_offset = excluded.next_offset",
                list(positions.items()))
            self._written = {**stored, **positions}

    def count(self) -> int:
        """Match records in the view."""
        with self._db.transaction() as conn:
            (total,) = conn.execute("SELECT COUNT(*) FROM view_matches").fetchone()
        return int(total)

    # -- what the pages read (DeskView) ------------------------------------------------------

    def matches_of(self, claim_id: str) -> list[Match]:
        with self._lock:
            cached = self._decoded.pop(claim_id, None) or _Decoded(0, [])
            with self._db.transaction() as conn:
                rows = conn.execute(
                    "SELECT seq, payload FROM view_matches WHERE claim_id = ? AND seq > ? "
                    "ORDER BY seq", (claim_id, cached.last_seq)).fetchall()
            if rows:  # only what is new since the last read is decoded
                cached.matches.extend(decode_match(bytes(payload)) for _, payload in rows)
                cached.last_seq = int(rows[-1][0])
            self._decoded[claim_id] = cached
            while sum(len(d.matches) for d in self._decoded.values()) > _CACHED_MATCHES:
                self._decoded.popitem(last=False)  # the claim read longest ago
            return list(cached.matches)

    def activity(self) -> dict[str, ClaimActivity]:
        """Counted again only for the claims with records since the last call."""
        with self._lock:
            with self._db.transaction() as conn:
                (last,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM view_matches"
                                       ).fetchone()
                if last != self._activity_seq:
                    changed = [row[0] for row in conn.execute(
                        "SELECT DISTINCT claim_id FROM view_matches NOT INDEXED WHERE seq > ?",
                        (self._activity_seq,))]
                    self._activity.update(_count_activity(conn, changed))
                    self._activity_seq = int(last)
            return dict(self._activity)

    def close(self) -> None:
        self._db.close()


def _positions(conn: sqlite3.Connection) -> dict[int, int]:
    return {int(p): int(o) for p, o in
            conn.execute("SELECT partition, next_offset FROM view_positions")}


def _item_row(match: Match) -> tuple[str, str, str, str | None, int]:
    moment = match.item.published_at or match.item.fetched_at
    return (match.claim_id, match.item.item_id, match.relation, match.item.language,
            (moment - _EPOCH) // _MICROSECOND)


def _count_activity(conn: sqlite3.Connection, claim_ids: Iterable[str]
                    ) -> dict[str, ClaimActivity]:
    """:func:`monitor.desk.view.activity_of` for ``claim_ids``, from the latest versions."""
    counted: dict[str, tuple[dict[str, int], set[str], int]] = {}
    for claim_id in claim_ids:
        rows = conn.execute(
            "SELECT relation, language, COUNT(*), MAX(moment_us) FROM view_items "
            "WHERE claim_id = ? GROUP BY relation, language", (claim_id,))
        by_relation: dict[str, int] = {}
        languages: set[str] = set()
        latest = None
        for relation, language, items, moment_us in rows:
            by_relation[relation] = by_relation.get(relation, 0) + int(items)
            if language:
                languages.add(str(language))
            latest = moment_us if latest is None else max(latest, moment_us)
        if latest is not None:
            counted[claim_id] = (by_relation, languages, int(latest))
    return {claim_id: ClaimActivity(
        claim_id=claim_id, items=sum(by_relation.values()), by_relation=by_relation,
        languages=frozenset(languages), last_activity=_EPOCH + moment_us * _MICROSECOND)
        for claim_id, (by_relation, languages, moment_us) in counted.items()}

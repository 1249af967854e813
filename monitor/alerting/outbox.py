"""The persistent alert outbox on the local state file: no alert lost, none repeated.

Tables (created here, ``IF NOT EXISTS``): ``alert_outbox`` (one row per notification: payload,
status pending/sent/dead, attempts), ``alert_handled`` (match_id x receiver, UNIQUE: the
handled-once record that survives restarts) and ``alert_grouper`` (the grouper's snapshot).

Guarantees and the one window that can repeat:

- ``enqueue`` writes the notification, marks its matches handled for the receiver, and
  (optionally) stores the grouper snapshot in ONE transaction: after a crash either all of it
  exists or none does, so a match is neither lost between grouper and outbox nor queued twice.
- Delivery is at-least-once. The window is from the moment a channel accepts a message to
  the commit of ``mark_sent``: a crash there leaves the row pending and ``due`` offers it
  again after the restart, so that ONE message may be sent once more (never more than once
  per crash). The notification id is stable; channels that take an idempotency key (webhook
  header, e-mail Message-ID) let the receiver drop the repeat, others (Slack, Telegram, Teams)
  show it twice.

Calls block on local disk only. Retry timing is the caller's retry policy: pass its
``next_attempt_at``, or ``dead_letter`` after the last attempt.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.errors import InvalidInputError
from monitor.store import Database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_outbox (
    id TEXT PRIMARY KEY,
    receiver TEXT NOT NULL,
    payload BLOB NOT NULL,
    match_ids TEXT NOT NULL,
    claim_ids TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'dead')),
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    replays INTEGER NOT NULL DEFAULT 0,
    sent_at REAL,
    dead_at REAL,
    last_error TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS alert_outbox_due ON alert_outbox (status, next_attempt_at);
CREATE TABLE IF NOT EXISTS alert_handled (
    match_id TEXT NOT NULL,
    receiver TEXT NOT NULL,
    claim_id TEXT NOT NULL,
    notification_id TEXT NOT NULL,
    handled_at REAL NOT NULL,
    UNIQUE (match_id, receiver)
);
CREATE INDEX IF NOT EXISTS alert_handled_claim ON alert_handled (claim_id);
CREATE TABLE IF NOT EXISTS alert_grouper (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state TEXT NOT NULL,
    saved_at REAL NOT NULL
);
"""
_COLUMNS = ("id, receiver, payload, match_ids, claim_ids, status, created_at, attempts, "
            "replays, sent_at, dead_at, last_error, detail")


class AlreadyHandled(InvalidInputError):
    """``enqueue`` was given a match already handled for that receiver; nothing was written."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One notification in the outbox, in any status."""

    id: str
    receiver: str
    payload: bytes
    match_ids: tuple[str, ...]
    claim_ids: tuple[str, ...]
    status: str  # pending | sent | dead
    created_at: float
    attempts: int
    replays: int
    sent_at: float | None
    dead_at: float | None
    last_error: str | None
    detail: str | None


class Outbox:
    """Notifications waiting for, done with, or given up on delivery; see the module doc."""

    def __init__(self, database: Database) -> None:
        self._db = database
        with self._db.transaction() as conn:
            for statement in _statements():  # executescript would commit mid-transaction
                conn.execute(statement)

    def handled(self, match_id: str, receiver: str) -> bool:
        with self._db.transaction() as conn:
            row = conn.execute("SELECT 1 FROM alert_handled WHERE match_id = ? AND receiver = ?",
                               (match_id, receiver)).fetchone()
        return row is not None

    def enqueue(self, notification_id: str, receiver: str, payload: bytes,
                match_ids: Mapping[str, str], now: float, *,
                grouper_state: Mapping[str, Any] | None = None) -> None:
        """Queue a notification and mark ``match_ids`` (match_id -> claim_id) handled for
        ``receiver``, with the grouper snapshot if given, all in one transaction.

        AlreadyHandled (nothing written) when any match is already handled for the receiver.
        """
        try:
            with self._db.transaction() as conn:
                conn.execute(
                    "INSERT INTO alert_outbox (id, receiver, payload, match_ids, claim_ids, "
                    "status, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                    (notification_id, receiver, payload, json.dumps(list(match_ids)),
                     json.dumps(sorted(set(match_ids.values()))), now, now))
                conn.executemany(
                    "INSERT INTO alert_handled VALUES (?, ?, ?, ?, ?)",
                    [(m, receiver, c, notification_id, now) for m, c in match_ids.items()])
                if grouper_state is not None:
                    write_grouper_state(conn, grouper_state, now)
        except sqlite3.IntegrityError as exc:
            raise AlreadyHandled(f"outbox: notification {notification_id} for {receiver!r}: "
                                 f"a match is already handled ({exc})") from exc

    def due(self, now: float, limit: int = 100) -> list[OutboxEntry]:
        """Pending notifications whose next attempt is due, oldest first."""
        return self._select("WHERE status = 'pending' AND next_attempt_at <= ? "
                            "ORDER BY next_attempt_at, created_at LIMIT ?", (now, limit))

    def mark_sent(self, notification_id: str, now: float, detail: str = "") -> bool:
        """Record a delivery (one attempt); False when the row was not pending."""
        return self._update("status = 'sent', sent_at = ?, attempts = attempts + 1, detail = ?",
                            (now, detail), notification_id, "pending")

    def mark_failed(self, notification_id: str, now: float, next_attempt_at: float,
                    error: str) -> bool:
        """Record a failed attempt and when to try again; False when the row was not pending."""
        del now  # the attempt time is not stored; kept for a uniform, clock-injected API
        return self._update("attempts = attempts + 1, next_attempt_at = ?, last_error = ?",
                            (next_attempt_at, error), notification_id, "pending")

    def dead_letter(self, notification_id: str, now: float, error: str) -> bool:
        """Give up after the last attempt (call it instead of ``mark_failed``, it counts the
        attempt); False when the row was not pending."""
        return self._update("status = 'dead', dead_at = ?, attempts = attempts + 1, "
                            "last_error = ?", (now, error), notification_id, "pending")

    def replay(self, notification_id: str, now: float) -> None:
        """Make a dead letter pending again with a fresh set of attempts (``monitor dlq
        replay``); InvalidInputError when there is no such dead letter."""
        if not self._update("status = 'pending', next_attempt_at = ?, attempts = 0, "
                            "replays = replays + 1, dead_at = NULL", (now,),
                            notification_id, "dead"):
            raise InvalidInputError(f"outbox: no dead letter with id {notification_id!r}")

    def dead_letters(self) -> list[OutboxEntry]:
        return self._select("WHERE status = 'dead' ORDER BY dead_at", ())

    def history(self, claim_id: str | None = None, limit: int = 50) -> list[OutboxEntry]:
        """Newest first: what went (or is going, or was given up) where, and when."""
        order = "ORDER BY COALESCE(sent_at, dead_at, created_at) DESC, id LIMIT ?"
        if claim_id is None:
            return self._select(order, (limit,))
        return self._select("WHERE id IN (SELECT notification_id FROM alert_handled "
                            f"WHERE claim_id = ?) {order}", (claim_id, limit))

    def size(self) -> int:
        """Pending notifications (the outbox-size gauge)."""
        with self._db.transaction() as conn:
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM alert_outbox WHERE status = 'pending'").fetchone()
        return int(count)

    def oldest_pending_age(self, now: float) -> float:
        """Seconds since the oldest pending notification was queued; 0.0 when none is."""
        with self._db.transaction() as conn:
            (oldest,) = conn.execute(
                "SELECT MIN(created_at) FROM alert_outbox WHERE status = 'pending'").fetchone()
        return 0.0 if oldest is None else max(0.0, now - float(oldest))

    def save_grouper_state(self, state: Mapping[str, Any], now: float) -> None:
        with self._db.transaction() as conn:
            write_grouper_state(conn, state, now)

    def load_grouper_state(self) -> dict[str, Any] | None:
        with self._db.transaction() as conn:
            row = conn.execute("SELECT state FROM alert_grouper WHERE id = 1").fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def _update(self, assignments: str, values: tuple[Any, ...], notification_id: str,
                status: str) -> bool:
        with self._db.transaction() as conn:
            changed = conn.execute(
                f"UPDATE alert_outbox SET {assignments} WHERE id = ? AND status = ?",
                (*values, notification_id, status)).rowcount
        return bool(changed)

    def _select(self, clause: str, values: tuple[Any, ...]) -> list[OutboxEntry]:
        with self._db.transaction() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM alert_outbox {clause}",
                                values).fetchall()
        return [_entry(row) for row in rows]


def write_grouper_state(conn: sqlite3.Connection, state: Mapping[str, Any], now: float) -> None:
    """Store the grouper snapshot inside the caller's transaction (e.g. with a read position)."""
    conn.execute("INSERT INTO alert_grouper (id, state, saved_at) VALUES (1, ?, ?) "
                 "ON CONFLICT (id) DO UPDATE SET state = excluded.state, "
                 "saved_at = excluded.saved_at", (json.dumps(state), now))


def _statements() -> list[str]:
    return [s.strip() for s in _SCHEMA.split(";") if s.strip()]


def _entry(row: tuple[Any, ...]) -> OutboxEntry:
    (notification_id, receiver, payload, match_ids, claim_ids, status, created_at, attempts,
     replays, sent_at, dead_at, last_error, detail) = row
    return OutboxEntry(notification_id, receiver, bytes(payload), tuple(json.loads(match_ids)),
                       tuple(json.loads(claim_ids)), status, created_at, attempts, replays,
                       sent_at, dead_at, last_error, detail)

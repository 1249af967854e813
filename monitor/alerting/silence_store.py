"""Silences kept in the local state file, for ``monitor silence`` and the embedded alerter.

Matchers are stored in their text form (``str(matcher)`` parses back exactly). Expiring a
silence moves its expiry to now, so the history of who silenced what stays readable.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from monitor.alerting.silences import Silence, parse_silence_matchers
from monitor.errors import InvalidInputError
from monitor.store import Database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    matchers TEXT NOT NULL,
    expires_at REAL NOT NULL,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


class SilenceStore:
    """Silences on the local state file. Calls block on local disk only."""

    def __init__(self, database: Database) -> None:
        self._db = database
        with self._db.transaction() as conn:
            conn.execute(_SCHEMA)

    def add(self, matchers: list[str], expires_at: datetime, reason: str, created_by: str,
            now: datetime) -> Silence:
        if not reason.strip():
            raise InvalidInputError("silence: give a reason, for the editors who come after you")
        if expires_at <= now:
            raise InvalidInputError(f"silence: expiry {expires_at.isoformat()} is not in the "
                                    "future")
        silence = Silence(uuid.uuid4().hex[:12], parse_silence_matchers(matchers), expires_at,
                          reason.strip(), created_by, now)
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO silences VALUES (?, ?, ?, ?, ?, ?)",
                (silence.id, json.dumps([str(m) for m in silence.matchers]),
                 expires_at.timestamp(), silence.reason, created_by, now.timestamp()))
        return silence

    def list(self, *, include_expired: bool, now: datetime) -> list[Silence]:
        with self._db.transaction() as conn:
            rows = conn.execute(
                "SELECT id, matchers, expires_at, reason, created_by, created_at FROM silences "
                "WHERE ? OR expires_at > ? ORDER BY created_at",
                (include_expired, now.timestamp())).fetchall()
        return [_silence(row) for row in rows]

    def expire(self, silence_id: str, now: datetime) -> Silence:
        with self._db.transaction() as conn:
            updated = conn.execute(
                "UPDATE silences SET expires_at = ? WHERE id = ? AND expires_at > ?",
                (now.timestamp(), silence_id, now.timestamp())).rowcount
        if not updated:
            raise InvalidInputError(f"silence: no active silence with id {silence_id!r}")
        return next(s for s in self.list(include_expired=True, now=now) if s.id == silence_id)


def _silence(row: tuple[str, str, float, str, str, float]) -> Silence:
    silence_id, matchers, expires_at, reason, created_by, created_at = row
    return Silence(silence_id, parse_silence_matchers(json.loads(matchers)),
                   datetime.fromtimestamp(expires_at, UTC), reason, created_by,
                   datetime.fromtimestamp(created_at, UTC))

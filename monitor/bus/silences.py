"""Where silences are kept: one contract, :class:`SilenceBook`, with two implementations chosen
by the transport (:meth:`monitor.bus.transport.Transport.silences`), like the stage logs.

- :class:`SilenceStore`: the ``silences`` table of the local state file (embedded mode).
- :class:`monitor.bus.kafka_silences.KafkaSilenceBook`: the compacted silences topic (Kafka
  mode), so that a silence added once holds on every alerter and across restarts.

Expiring a silence moves its expiry to now (Kafka: writes the silence again with the new
expiry), so the history of who silenced what stays readable with ``monitor silence list --all``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from monitor.config.silences import Silence, new_silence, parse_silence_matchers
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


class SilenceBook(Protocol):
    """The deployment's silences. Every call blocks on the state file or the broker; Kafka:
    BusError when the broker cannot be read or does not acknowledge (nothing was changed, or
    the write may be retried). ``add`` and ``expire`` raise InvalidInputError for a silence
    that is not valid or not active."""

    def add(self, matchers: list[str], expires_at: datetime, reason: str, created_by: str,
            now: datetime) -> Silence: ...

    def list(self, *, include_expired: bool, now: datetime) -> list[Silence]:
        """In the order they were created; the unexpired ones unless ``include_expired``."""
        ...

    def expire(self, silence_id: str, now: datetime) -> Silence: ...

    def active(self, now: float) -> Sequence[Silence]:
        """What the alerter applies at ``now`` (epoch seconds), with every silence added or
        expired before the call was made."""
        ...

    def close(self) -> None: ...


class SilenceStore:
    """Silences on the local state file. Calls block on local disk only."""

    def __init__(self, database: Database) -> None:
        self._db = database
        with self._db.transaction() as conn:
            conn.execute(_SCHEMA)

    def add(self, matchers: list[str], expires_at: datetime, reason: str, created_by: str,
            now: datetime) -> Silence:
        silence = new_silence(matchers, expires_at, reason, created_by, now)
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

    def active(self, now: float) -> Sequence[Silence]:
        return self.list(include_expired=False, now=datetime.fromtimestamp(now, UTC))

    def close(self) -> None:
        """The database is its opener's to close."""


def _silence(row: tuple[str, str, float, str, str, float]) -> Silence:
    silence_id, matchers, expires_at, reason, created_by, created_at = row
    return Silence(silence_id, parse_silence_matchers(json.loads(matchers)),
                   datetime.fromtimestamp(expires_at, UTC), reason, created_by,
                   datetime.fromtimestamp(created_at, UTC))

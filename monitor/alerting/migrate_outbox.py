"""Upgrade a state file written by the old embedded alert stage (before the alert log).

That stage kept its own tables: ``alert_outbox`` (one row per notification: payload, status
pending/sent/dead, attempts), ``alert_handled`` (match x receiver) and ``alert_grouper`` (a
snapshot of the matches waiting in groups). The stage now keeps the alert log in both modes,
so on the first start after the upgrade (``alert_log`` empty, ``alert_outbox`` not) each
outbox row becomes the records the stage would have written:

- ``pending``: a pending record with its payload, attempts and next attempt (delivered again
  with the same id when due, as any notification left without an outcome);
- ``sent``: pending, then sent (history shows it; its matches count as handled);
- ``dead``: pending, then dead, plus a dead letter with the alert stage's headers, so that
  ``monitor dlq list`` and ``monitor dlq replay`` see it.

Matches that waited in a group were kept only in the snapshot: the stage's position is moved
back to just before the earliest of them in the match log, so they are taken in again (the
matches between them that were handled are skipped by the records above). The old tables are
left as they are; the migration runs once, since the alert log is no longer empty after it.

Call :func:`migrate_outbox` before the alert stage's transport is built (it reads the stage's
position when made). A crash half-way leaves the alert log empty, so it simply runs again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from monitor.alerting.alert_log import AlertRecord, alert_output
from monitor.bus.embedded import PARTITION, EmbeddedLog, EmbeddedStageLog
from monitor.bus.log import DeadLetter, Output
from monitor.errors import InvalidInputError
from monitor.model import decode_match
from monitor.store import Database

log = logging.getLogger(__name__)

STAGE = "alert"
_OUTBOX_COLUMNS = ("id, receiver, payload, match_ids, claim_ids, status, created_at, "
                   "next_attempt_at, attempts, sent_at, dead_at, last_error, detail")
_SCAN_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Migrated:
    notifications: int
    dead_letters: int
    rewound_to: int | None  # the alert stage's new position in the match log, if moved back


def migrate_outbox(database: Database) -> Migrated | None:
    """Move the old outbox into the alert log; None when there is nothing to migrate."""
    alerts = EmbeddedLog(database, "alerts")
    if alerts.count() > 0 or not _has_table(database, "alert_outbox"):
        return None
    rows = _outbox_rows(database)
    if not rows:
        return None
    matches = EmbeddedLog(database, "matches")
    stage_log = EmbeddedStageLog(database, STAGE, matches, {"alerts": alerts})
    rewound_to = _rewind(stage_log, matches, _grouped_match_ids(database))
    outputs: list[Output] = []
    dead: list[DeadLetter] = []
    for row in rows:
        records, letter = _records_of(row)
        outputs.extend(alert_output(PARTITION, record) for record in records)
        dead.extend([letter] if letter else [])
    stage_log.write(outputs, dead)  # last: until it is written, the next start migrates again
    migrated = Migrated(len(rows), len(dead), rewound_to)
    log.warning("alert: state file upgraded: %d notification(s) of the old outbox moved to the "
                "alert log (%d dead letter(s))%s", migrated.notifications, migrated.dead_letters,
                "" if rewound_to is None else
                f"; grouped matches are taken in again from match log seq {rewound_to + 1}")
    return migrated


def _has_table(database: Database, name: str) -> bool:
    with database.transaction() as conn:
        row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                           (name,)).fetchone()
    return row is not None


def _outbox_rows(database: Database) -> list[dict[str, Any]]:
    with database.transaction() as conn:
        cursor = conn.execute(f"SELECT {_OUTBOX_COLUMNS} FROM alert_outbox ORDER BY created_at")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _records_of(row: dict[str, Any]) -> tuple[list[AlertRecord], DeadLetter | None]:
    pending = AlertRecord("pending", row["id"], row["receiver"],
                          tuple(json.loads(row["claim_ids"])), tuple(json.loads(row["match_ids"])),
                          float(row["created_at"]), 0, "", bytes(row["payload"]))
    if row["status"] == "sent":
        sent = pending.outcome("sent", float(row["sent_at"]), int(row["attempts"]),
                               row["detail"] or "")
        return [pending, sent], None
    if row["status"] == "dead":
        error = row["last_error"] or ""
        dead = pending.outcome("dead", float(row["dead_at"]), int(row["attempts"]), error)
        moment = datetime.fromtimestamp(dead.at, UTC).isoformat().replace("+00:00", "Z")
        headers = {"stage": STAGE, "error": error, "receiver": pending.receiver,
                   "id": pending.id, "partition": str(PARTITION),
                   "attempts": str(dead.attempts), "time": moment}
        return [pending, dead], DeadLetter(pending.id.encode("utf-8"), pending.payload or b"",
                                           headers)
    if int(row["attempts"]) > 0:  # waiting for a retry: the restart keeps its delay
        pending = pending.retried(int(row["attempts"]), row["last_error"] or "",
                                  float(row["next_attempt_at"]))
    return [pending], None


def _grouped_match_ids(database: Database) -> set[str]:
    if not _has_table(database, "alert_grouper"):
        return set()
    with database.transaction() as conn:
        row = conn.execute("SELECT state FROM alert_grouper WHERE id = 1").fetchone()
    if row is None:
        return set()
    state = json.loads(row[0])
    return {str(match["match_id"]) for group in state.get("groups", ())
            for match in group.get("pending", ())}


def _rewind(stage_log: EmbeddedStageLog, matches: EmbeddedLog, wanted: set[str]) -> int | None:
    """Move the stage's position to just before the earliest of ``wanted``; the new position."""
    earliest = next((seq for seq, match_id in _logged(matches) if match_id in wanted), None)
    if earliest is None or earliest > stage_log.committed():
        return None
    stage_log.commit({PARTITION: earliest})  # the next offset to read: this match
    return earliest - 1


def _logged(matches: EmbeddedLog) -> Iterator[tuple[int, str]]:
    """(seq, match_id) of every readable match in the log, oldest first."""
    after = 0
    while batch := matches.read_after(after, _SCAN_BATCH):
        for record in batch:
            try:
                yield record.offset, decode_match(record.value).match_id
            except InvalidInputError:
                continue
        after = batch[-1].offset

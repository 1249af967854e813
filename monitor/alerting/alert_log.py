"""The record of what the alerter did (``monitor.alerts`` in Kafka mode, the ``alert_log``
table of the state file in embedded mode), and what it learns from reading that record back
(pure: no transport here).

One record per notification part and event, key = claim_id, written to the partition number
its matches have on the match log (a notification whose matches come from several partitions
is split into one part per partition; the embedded logs have one), as JSON::

    {"schema": 1, "event": "pending" | "sent" | "dead", "id": "<notification id>",
     "receiver": "desk-hook", "claim_ids": [...], "match_ids": [...], "at": <unix seconds>,
     "attempts": 1, "detail": "...", "payload": {...},      # payload: on "pending" only
     "next_attempt_at": <unix seconds>}                     # on a pending retry only

``pending`` is written (acks=all) BEFORE the first attempt, with the whole notification; an
outcome (``sent`` or ``dead``) after. A failed attempt to be retried writes ``pending`` again
(same id and ``at``) with the attempts so far, the error and when the next attempt is due, so
that a restart keeps the receiver's Retry-After and the count of attempts. Reading partition
p back therefore tells the instance that owns p which (match_id, receiver) pairs are handled
(any event names them) and which notifications are in doubt (pending without outcome: the
writer died or lost the partition between writing "pending" and the outcome): those are sent
again, when their next attempt is due, with the same id and the same matches, so a receiver
that reads the idempotency key drops the repeat.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from monitor.bus.log import Output
from monitor.errors import InvalidInputError

ALERT_SCHEMA = 1
EVENTS = ("pending", "sent", "dead")
Pair = tuple[str, str]  # (match_id, receiver)


@dataclass(frozen=True, slots=True)
class AlertRecord:
    event: str
    id: str
    receiver: str
    claim_ids: tuple[str, ...]
    match_ids: tuple[str, ...]
    at: float
    attempts: int = 0
    detail: str = ""
    payload: bytes | None = None  # the notification payload; on "pending" only
    next_attempt_at: float | None = None  # on "pending" after a failed attempt

    @property
    def key(self) -> bytes:
        return (self.claim_ids[0] if self.claim_ids else "").encode("utf-8")

    def outcome(self, event: str, at: float, attempts: int, detail: str) -> AlertRecord:
        """The outcome record that closes this pending record."""
        return replace(self, event=event, at=at, attempts=attempts, detail=detail, payload=None,
                       next_attempt_at=None)

    def retried(self, attempts: int, error: str, next_attempt_at: float) -> AlertRecord:
        """This pending record after ``attempts`` failed attempts, due again then."""
        return replace(self, attempts=attempts, detail=error, next_attempt_at=next_attempt_at)


def alert_output(partition: int, record: AlertRecord) -> Output:
    """``record`` for the alert log's ``partition``. Its id names the event, attempts and time,
    so a write that is tried again is stored once (embedded) while a later outcome of the same
    notification (a replay after a dead letter, a redelivery) is a record of its own."""
    record_id = f"{record.id}:{record.event}:{record.attempts}:{record.at!r}"
    return Output("alerts", record.key, encode_alert_record(record), record_id,
                  partition=partition)


def encode_alert_record(record: AlertRecord) -> bytes:
    raw: dict[str, Any] = {
        "schema": ALERT_SCHEMA, "event": record.event, "id": record.id,
        "receiver": record.receiver, "claim_ids": list(record.claim_ids),
        "match_ids": list(record.match_ids), "at": record.at, "attempts": record.attempts,
        "detail": record.detail}
    if record.payload is not None:
        raw["payload"] = json.loads(record.payload)
    if record.next_attempt_at is not None:
        raw["next_attempt_at"] = record.next_attempt_at
    return json.dumps(raw, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_alert_record(data: bytes) -> AlertRecord:
    """Parse :func:`encode_alert_record`'s bytes; InvalidInputError naming what is wrong."""
    try:
        raw = json.loads(data)
        if raw.get("schema") != ALERT_SCHEMA or raw.get("event") not in EVENTS:
            raise InvalidInputError(f"alert record: unsupported schema {raw.get('schema')!r} "
                                    f"or event {raw.get('event')!r}")
        payload, next_at = raw.get("payload"), raw.get("next_attempt_at")
        return AlertRecord(
            event=str(raw["event"]), id=str(raw["id"]), receiver=str(raw["receiver"]),
            claim_ids=tuple(str(c) for c in raw["claim_ids"]),
            match_ids=tuple(str(m) for m in raw["match_ids"]), at=float(raw["at"]),
            attempts=int(raw.get("attempts", 0)), detail=str(raw.get("detail", "")),
            payload=None if payload is None else json.dumps(payload).encode("utf-8"),
            next_attempt_at=None if next_at is None else float(next_at))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidInputError(f"alert record: malformed: {exc}") from exc


class Ledger:
    """Per partition of the alert log: the handled pairs and the notifications in doubt.

    Memory grows with the alerts kept on the topic (retention) for the partitions owned.
    """

    def __init__(self) -> None:
        self._handled: dict[int, set[Pair]] = {}
        self._open: dict[int, dict[str, AlertRecord]] = {}

    def apply(self, partition: int, record: AlertRecord) -> None:
        """Take in one record read back (or just written) on ``partition``."""
        self.mark(partition, record.match_ids, record.receiver)
        opened = self._open.setdefault(partition, {})
        if record.event == "pending":
            opened[record.id] = record
        else:
            opened.pop(record.id, None)

    def mark(self, partition: int, match_ids: Iterable[str], receiver: str) -> None:
        self._handled.setdefault(partition, set()).update((m, receiver) for m in match_ids)

    def handled(self, partition: int, match_id: str, receiver: str) -> bool:
        return (match_id, receiver) in self._handled.get(partition, ())

    def in_doubt(self, partition: int) -> list[AlertRecord]:
        """Pending records of ``partition`` without an outcome, oldest first."""
        return sorted(self._open.get(partition, {}).values(), key=lambda r: r.at)

    def forget(self, partition: int) -> None:
        self._handled.pop(partition, None)
        self._open.pop(partition, None)


@dataclass(frozen=True, slots=True)
class AlertEntry:
    """One notification part as ``monitor alerts history`` shows it: its records folded."""

    id: str
    receiver: str
    match_ids: tuple[str, ...]
    claim_ids: tuple[str, ...]
    status: str  # pending | sent | dead
    created_at: float
    attempts: int = 0
    replays: int = 0  # sent again after it was dead
    sent_at: float | None = None
    dead_at: float | None = None
    last_error: str | None = None
    detail: str | None = None


def history(records: Iterable[AlertRecord], claim_id: str | None = None,
            limit: int = 50) -> list[AlertEntry]:
    """Fold records into one entry per notification part, newest first."""
    entries: dict[str, AlertEntry] = {}
    for record in records:
        if claim_id is not None and claim_id not in record.claim_ids:
            continue
        entry = entries.get(record.id) or AlertEntry(
            record.id, record.receiver, record.match_ids, record.claim_ids, "pending",
            record.at)
        entries[record.id] = _fold(entry, record)
    ordered = sorted(entries.values(), reverse=True,
                     key=lambda e: (e.sent_at or e.dead_at or e.created_at, e.id))
    return ordered[:limit]


def _fold(entry: AlertEntry, record: AlertRecord) -> AlertEntry:
    if record.event == "sent":
        return replace(entry, status="sent", sent_at=record.at, attempts=record.attempts,
                       detail=record.detail, replays=entry.replays + (entry.status == "dead"))
    if record.event == "dead":
        return replace(entry, status="dead", dead_at=record.at, attempts=record.attempts,
                       last_error=record.detail)
    if entry.status == "pending" and record.attempts > entry.attempts:  # a retry on its way
        return replace(entry, attempts=record.attempts, last_error=record.detail)
    return entry

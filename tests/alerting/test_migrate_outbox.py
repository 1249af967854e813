"""monitor/alerting/migrate_outbox.py: a state file written by the old embedded alert stage
(outbox, handled pairs, grouper snapshot), built by hand here, keeps its history, its dead
letters and its alerts in flight after the upgrade."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.alerting.alert_log import history
from monitor.alerting.archive import EmbeddedArchive, letter_states, replay_letter
from monitor.alerting.core import Sent
from monitor.alerting.grouping import GroupKey, Notification
from monitor.alerting.messages import encode_payload
from monitor.alerting.migrate_outbox import Migrated, migrate_outbox
from monitor.alerting.stage import AlertStage
from monitor.bus.embedded import EmbeddedLog, EmbeddedStageLog
from monitor.bus.log import Output
from monitor.metrics import Metrics
from monitor.model import Match, encode_match
from monitor.store import Database
from tests.support.alert_stage import (
    CLAIM,
    CLAIMS,
    T0,
    WAIT,
    alert_core,
    alert_stage,
    denial,
    write_routes,
)
from tests.support.clock import ManualClock
from tests.support.receivers import WebhookReceiver

# The tables as monitor/alerting/outbox.py created them before the alert log.
OLD_SCHEMA = """
CREATE TABLE alert_outbox (
    id TEXT PRIMARY KEY, receiver TEXT NOT NULL, payload BLOB NOT NULL,
    match_ids TEXT NOT NULL, claim_ids TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'dead')),
    created_at REAL NOT NULL, next_attempt_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, replays INTEGER NOT NULL DEFAULT 0,
    sent_at REAL, dead_at REAL, last_error TEXT, detail TEXT);
CREATE TABLE alert_handled (
    match_id TEXT NOT NULL, receiver TEXT NOT NULL, claim_id TEXT NOT NULL,
    notification_id TEXT NOT NULL, handled_at REAL NOT NULL, UNIQUE (match_id, receiver));
CREATE TABLE alert_grouper (
    id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL, saved_at REAL NOT NULL);
"""
SENT, DEAD, PENDING = "n-sent", "n-dead", "n-pending"


def notification(match: Match) -> Notification:
    # The key only names the group; the payload is what a delivery renders.
    return Notification(GroupKey("desk-hook", "0", (("claim", CLAIM),)), "desk-hook", (match,),
                        True)


def outbox_row(conn: sqlite3.Connection, row_id: str, match: Match, status: str,
               **fields: object) -> None:
    values = {"id": row_id, "receiver": "desk-hook",
              "payload": encode_payload(notification(match)),
              "match_ids": json.dumps([match.match_id]), "claim_ids": json.dumps([CLAIM]),
              "status": status, "created_at": T0, "next_attempt_at": T0, **fields}
    conn.execute(f"INSERT INTO alert_outbox ({', '.join(values)}) "
                 f"VALUES ({', '.join('?' for _ in values)})", tuple(values.values()))
    conn.execute("INSERT INTO alert_handled VALUES (?, 'desk-hook', ?, ?, ?)",
                 (match.match_id, CLAIM, row_id, T0))


@pytest.fixture
def old_state(tmp_path: Path, hook: WebhookReceiver) -> Iterator[Database]:
    """Five matches logged and taken in: m1 sent, m2 given up, m3 queued, m4 and m5 waiting in
    their group (only in the snapshot); the stage's position past all of them."""
    routes = write_routes(tmp_path, hook, None)
    db = Database(tmp_path / "state.sqlite3")
    matches = [denial(f"m{n}", f"Wire {n}") for n in range(1, 6)]
    core = alert_core(routes, Metrics(CollectorRegistry()))
    grouper = core.new_grouper()
    for waiting in matches[3:]:
        for routed in core.destinations(waiting, CLAIMS[CLAIM], [], T0):
            grouper.add(waiting, routed, T0)
    core.close()
    with db.transaction() as conn:
        for statement in OLD_SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        EmbeddedLog(db, "matches").append(
            conn, [Output("matches", CLAIM.encode(), encode_match(m), m.match_id)
                   for m in matches], T0)
        outbox_row(conn, SENT, matches[0], "sent", attempts=1, sent_at=T0 + 30, detail="200")
        outbox_row(conn, DEAD, matches[1], "dead", attempts=1, dead_at=T0 + 31,
                   last_error="HTTP 400 from json://127.0.0.1")
        outbox_row(conn, PENDING, matches[2], "pending", attempts=2, last_error="HTTP 503",
                   next_attempt_at=T0 + 120)  # waiting for its third attempt
        conn.execute("INSERT INTO alert_grouper VALUES (1, ?, ?)",
                     (json.dumps(grouper.to_dict()), T0))
        conn.execute("INSERT INTO stage_offsets VALUES ('alert', 5)")
    yield db
    db.close()


def alert_transport(db: Database) -> EmbeddedStageLog:
    return EmbeddedStageLog(db, "alert", EmbeddedLog(db, "matches"),
                            {"alerts": EmbeddedLog(db, "alerts")})


def test_the_old_outbox_becomes_alert_records_once(old_state: Database) -> None:
    assert migrate_outbox(old_state) == Migrated(notifications=3, dead_letters=1, rewound_to=3)
    archive = EmbeddedArchive(old_state)
    entries = {entry.id: entry for entry in history(archive.records())}
    assert {i: e.status for i, e in entries.items()} == {SENT: "sent", DEAD: "dead",
                                                           PENDING: "pending"}
    assert (entries[PENDING].attempts, entries[PENDING].last_error) == (2, "HTTP 503")
    ((letter, state),) = letter_states(archive)
    assert (letter.id, state, letter.stage, letter.receiver) == (DEAD, "dead", "alert",
                                                                  "desk-hook")
    assert letter.attempts == 1 and "HTTP 400" in letter.error
    assert letter.at == "2027-01-15T08:00:31Z"  # when it was given up, not when migrated
    assert alert_transport(old_state).committed() == 3  # m4 and m5 are read again
    records = len(archive.records())
    assert migrate_outbox(old_state) is None  # once: the alert log is no longer empty
    assert len(archive.records()) == records


def test_after_the_upgrade_in_flight_alerts_go_out_and_handled_ones_do_not(
        old_state: Database, tmp_path: Path, hook: WebhookReceiver) -> None:
    migrate_outbox(old_state)
    clock = ManualClock(now=T0 + 60)
    stage: AlertStage = alert_stage(alert_transport(old_state), tmp_path / "routes.yaml",
                                    clock.now, max_poll_seconds=0.0)
    stage.step()
    assert hook.requests == [] and stage.next_wakeup() == T0 + 60 + WAIT  # the group's
    clock.advance(WAIT)  # T0 + 90: the matches that waited in their group go out
    stage.step()
    assert len(hook.accepted) == 1 and "wire.example/m4" in json.dumps(hook.accepted[0].body)
    assert stage.next_wakeup() == T0 + 120  # the queued one keeps its retry time
    clock.advance(30)
    stage.step()  # sent again with the same id
    assert hook.accepted[1].headers["idempotency-key"] == f"{PENDING}-0"
    assert not stage.idle()  # (a wait begins)
    stage.step()
    assert stage.idle()
    bodies = [json.dumps(d.body) for d in hook.accepted]
    assert len(bodies) == 2 and "wire.example/m3" in bodies[1]
    assert "wire.example/m4" in bodies[0] and "wire.example/m5" in bodies[0]
    assert not any(f"wire.example/m{n}" in body for n in (1, 2) for body in bodies)

    archive = EmbeddedArchive(old_state)
    ((letter, _),) = letter_states(archive)
    core = alert_core(tmp_path / "routes.yaml", Metrics(CollectorRegistry()))
    try:
        assert isinstance(replay_letter(archive, core, letter, T0 + 100), Sent)
    finally:
        core.close()
    assert "wire.example/m2" in json.dumps(hook.accepted[-1].body)
    assert [state for _, state in letter_states(archive)] == ["replayed"]

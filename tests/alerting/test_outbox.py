"""monitor/alerting/outbox.py: the persistent outbox on a real state file."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.alerting import outbox as outbox_module
from monitor.alerting.grouping import Grouper
from monitor.alerting.outbox import AlreadyHandled, Outbox
from monitor.alerting.routes import RoutedTo
from monitor.errors import InvalidInputError
from monitor.store import Database
from tests.alerting import make_match

T0 = 1_800_000_000.0


def open_outbox(tmp_path: Path) -> Outbox:
    return Outbox(Database(tmp_path / "state.sqlite3"))


def test_a_match_is_handled_once_per_receiver_across_reopen(tmp_path: Path) -> None:
    outbox = open_outbox(tmp_path)
    outbox.enqueue("n1", "desk", b"body", {"m1": "claim-a", "m2": "claim-a"}, T0)
    reopened = open_outbox(tmp_path)
    assert reopened.handled("m1", "desk") and reopened.handled("m2", "desk")
    assert not reopened.handled("m1", "email")  # the same match may go to another receiver
    reopened.enqueue("n2", "email", b"body", {"m1": "claim-a"}, T0)
    with pytest.raises(AlreadyHandled, match="n3"):
        reopened.enqueue("n3", "desk", b"body", {"m2": "claim-a", "m9": "claim-a"}, T0)
    assert not reopened.handled("m9", "desk")  # refused as a whole
    assert [e.id for e in reopened.due(T0)] == ["n1", "n2"]


def test_enqueue_and_handled_are_one_transaction(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*_: object) -> None:  # the last write of the transaction fails
        raise OSError("disk full")

    outbox = open_outbox(tmp_path)
    monkeypatch.setattr(outbox_module, "write_grouper_state", crash)
    with pytest.raises(OSError, match="disk full"):
        outbox.enqueue("n1", "desk", b"body", {"m1": "claim-a"}, T0, grouper_state={"v": 1})
    monkeypatch.undo()
    reopened = open_outbox(tmp_path)
    assert not reopened.handled("m1", "desk")
    assert reopened.size() == 0 and reopened.history() == []
    assert reopened.load_grouper_state() is None
    reopened.enqueue("n1", "desk", b"body", {"m1": "claim-a"}, T0)  # nothing half-written
    assert reopened.size() == 1 and reopened.handled("m1", "desk")


def test_grouper_state_is_saved_with_the_enqueue(tmp_path: Path) -> None:
    routed = RoutedTo("desk", "root", ("claim",), 30.0, 300.0, 3600.0)
    grouper = Grouper()
    grouper.add(make_match(), routed, T0)
    (notification,) = grouper.due(T0 + 30)
    grouper.mark_sent(notification, T0 + 30)
    outbox = open_outbox(tmp_path)
    assert outbox.load_grouper_state() is None
    outbox.enqueue(notification.notification_id, "desk", b"body", {"m1": "claim-a"}, T0 + 30,
                   grouper_state=grouper.to_dict())
    state = open_outbox(tmp_path).load_grouper_state()
    assert state is not None
    assert Grouper.from_dict(state).to_dict() == grouper.to_dict()


def test_failed_attempts_are_counted_and_rescheduled(tmp_path: Path) -> None:
    outbox = open_outbox(tmp_path)
    outbox.enqueue("n1", "desk", b"body", {"m1": "claim-a"}, T0)
    (entry,) = outbox.due(T0, limit=10)
    assert outbox.mark_failed(entry.id, T0, T0 + 10, "HTTP 503")
    assert outbox.due(T0 + 9) == []
    assert outbox.mark_failed("n1", T0 + 10, T0 + 30, "HTTP 429")
    assert outbox.mark_sent("n1", T0 + 30, "HTTP 200")
    assert not outbox.mark_sent("n1", T0 + 31, "again")  # only a pending row changes
    (sent,) = open_outbox(tmp_path).history()
    assert (sent.status, sent.attempts, sent.sent_at, sent.last_error, sent.detail) == (
        "sent", 3, T0 + 30, "HTTP 429", "HTTP 200")
    assert outbox.due(T0 + 1000) == []


def test_dead_letter_and_replay(tmp_path: Path) -> None:
    outbox = open_outbox(tmp_path)
    outbox.enqueue("n1", "desk", b"body", {"m1": "claim-a"}, T0)
    outbox.mark_failed("n1", T0, T0 + 10, "refused")
    assert outbox.dead_letter("n1", T0 + 10, "refused; gave up after 2 attempts")
    assert outbox.due(T0 + 1000) == [] and outbox.size() == 0
    (dead,) = outbox.dead_letters()
    assert (dead.attempts, dead.dead_at, dead.payload) == (2, T0 + 10, b"body")
    outbox.replay("n1", T0 + 500)
    assert outbox.dead_letters() == []
    (again,) = outbox.due(T0 + 500)
    assert (again.attempts, again.replays) == (0, 1)
    assert outbox.handled("m1", "desk")  # replay re-sends the row; it does not re-open it
    with pytest.raises(InvalidInputError, match="no dead letter"):
        outbox.replay("n1", T0 + 501)


def test_history_is_filtered_by_claim(tmp_path: Path) -> None:
    outbox = open_outbox(tmp_path)
    outbox.enqueue("n1", "desk", b"a", {"m1": "claim-a"}, T0)
    outbox.enqueue("n2", "email", b"b", {"m2": "claim-b", "m3": "claim-a"}, T0 + 1)
    outbox.enqueue("n3", "desk", b"c", {"m4": "claim-b"}, T0 + 2)
    outbox.mark_sent("n1", T0 + 5, "ok")
    assert [e.id for e in outbox.history("claim-a")] == ["n1", "n2"]
    assert [e.id for e in outbox.history("claim-b")] == ["n3", "n2"]
    assert len(outbox.history(limit=2)) == 2
    (mixed,) = [e for e in outbox.history() if e.id == "n2"]
    assert (mixed.receiver, mixed.match_ids, mixed.claim_ids) == (
        "email", ("m2", "m3"), ("claim-a", "claim-b"))


def test_size_and_oldest_pending_age(tmp_path: Path) -> None:
    outbox = open_outbox(tmp_path)
    assert (outbox.size(), outbox.oldest_pending_age(T0)) == (0, 0.0)
    outbox.enqueue("n1", "desk", b"a", {"m1": "claim-a"}, T0)
    outbox.enqueue("n2", "desk", b"b", {"m2": "claim-a"}, T0 + 20)
    assert (outbox.size(), outbox.oldest_pending_age(T0 + 60)) == (2, 60.0)
    outbox.mark_sent("n1", T0 + 60, "ok")
    assert (outbox.size(), outbox.oldest_pending_age(T0 + 60)) == (1, 40.0)

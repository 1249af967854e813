"""Alerts stream: a slow receiver holds only its own deliveries, a group's notifications go out
in order, and what was sent is recorded in grouped writes (monitor/alerting/stage.py with
monitor/alerting/dispatch.py, on the embedded logs of a real state file, real webhooks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.alerting.alert_log import decode_alert_record
from monitor.alerting.channels import build_channels
from monitor.alerting.core import Attempt, Sent
from monitor.alerting.dispatch import DeliveryPool
from monitor.alerting.progress import PendingAlert
from monitor.alerting.stage import AlertStage
from monitor.bus.embedded import EmbeddedLog, EmbeddedStageLog
from monitor.bus.log import DeadLetter, Output, Polled, Record
from monitor.config.silences import Silence
from monitor.model import Match, encode_match
from monitor.runner import run_stage
from monitor.store import Database
from tests.conftest import REPO
from tests.support.alert_stage import T0, alert_stage, denial
from tests.support.receivers import WebhookReceiver


def log_matches(db: Database, *matches: Match) -> None:
    outputs = [Output("matches", m.claim_id.encode(), encode_match(m), m.match_id)
               for m in matches]
    with db.transaction() as conn:
        EmbeddedLog(db, "matches").append(conn, outputs, T0)


def two_receivers(tmp_path: Path, slow: WebhookReceiver, fast: WebhookReceiver) -> Path:
    """Items of "Slow Wire" go to the slow receiver, everything else to the fast one; every
    source is a group of its own, sent at once."""
    (tmp_path / "templates").symlink_to(REPO / "alerts" / "templates")
    path = tmp_path / "routes.yaml"
    path.write_text(
        "receivers:\n"
        f"  - name: slow-hook\n    urls: ['{slow.url('/slow')}']\n"
        f"  - name: fast-hook\n    urls: ['{fast.url('/fast')}']\n"
        "route:\n  receiver: fast-hook\n  group_by: [source]\n"
        "  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 4h\n"
        "  routes:\n    - matchers: ['source = Slow Wire']\n      receiver: slow-hook\n",
        encoding="utf-8")
    return path


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "state.sqlite3")
    yield database
    database.close()


def embedded(db: Database) -> EmbeddedStageLog:
    return EmbeddedStageLog(db, "alert", EmbeddedLog(db, "matches"),
                            {"alerts": EmbeddedLog(db, "alerts")})


@pytest.fixture
def slow() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def test_a_slow_receiver_does_not_hold_another_receivers_alert(
        tmp_path: Path, db: Database, slow: WebhookReceiver, hook: WebhookReceiver) -> None:
    # The channels wait 60 s for an answer, longer than the slow receiver holds its request
    # (30 s, or until released): an alert held behind the slow delivery could not go out
    # before the slow receiver answered, however long a loaded machine takes.
    stage = alert_stage(embedded(db), two_receivers(tmp_path, slow, hook), time.time,
                        channels=build_channels(timeout_seconds=60.0))
    stopping = threading.Event()
    runner = threading.Thread(target=run_stage, args=(stage, stopping), daemon=True)
    slow.slow(30.0)  # answers when released
    runner.start()
    try:
        log_matches(db, denial("held", "Slow Wire"))
        deadline = time.monotonic() + 10
        while _events(db) != ["pending"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _events(db) == ["pending"]  # handed to the slow receiver, which does not answer

        log_matches(db, denial("news", "TASS"))
        (delivered,) = hook.wait_for(1, timeout_seconds=20.0)
        assert "TASS" in str(delivered.body)
        assert slow.requests == []  # delivered while the slow one is still held, unanswered
    finally:
        slow.release()
        stopping.set()
        runner.join(timeout=30)
    assert not runner.is_alive()
    (held,) = slow.requests
    assert "Slow Wire" in str(held.body)
    # close() waited for the slow delivery and recorded it: both notifications are sent.
    assert sorted(_events(db)) == ["pending", "pending", "sent", "sent"]


def _events(db: Database) -> list[str]:
    return [decode_alert_record(r.value).event
            for r in EmbeddedLog(db, "alerts").read_all()]


@dataclass
class CountingLog:
    """The stage's transport, counting its writes (what each carried) and commits."""

    inner: EmbeddedStageLog
    writes: list[list[str]] = field(default_factory=list)  # alert events per write
    positions: list[Mapping[int, int] | None] = field(default_factory=list)  # per write
    commits: int = 0  # commits on their own

    @property
    def source(self) -> str:
        return self.inner.source

    def poll(self, timeout_seconds: float) -> Polled:
        return self.inner.poll(timeout_seconds)

    def write(self, outputs: Sequence[Output], dead: Sequence[DeadLetter] = (),
              positions: Mapping[int, int] | None = None) -> None:
        self.inner.write(outputs, dead, positions)
        self.writes.append([decode_alert_record(o.value).event for o in outputs])
        self.positions.append(positions)

    def commit(self, positions: Mapping[int, int]) -> None:
        self.inner.commit(positions)
        self.commits += 1

    def transact(self, consumed: Sequence[Record], outputs: Sequence[Output],
                 dead: Sequence[DeadLetter]) -> None:
        raise AssertionError("the alert stage writes, then commits")

    def read_back(self, log: str, partitions: Sequence[int]) -> list[Record]:
        return self.inner.read_back(log, partitions)  # type: ignore[arg-type]

    def lag(self) -> int:
        return self.inner.lag()

    def failure_level(self, error: BaseException) -> int:
        return self.inner.failure_level(error)

    def is_ready(self) -> bool:
        return self.inner.is_ready()

    def close(self) -> None:
        self.inner.close()


def test_a_rounds_alert_records_are_written_in_groups_not_one_commit_per_alert(
        tmp_path: Path, db: Database, slow: WebhookReceiver, hook: WebhookReceiver) -> None:
    counted = CountingLog(embedded(db))
    stage = alert_stage(counted, two_receivers(tmp_path, slow, hook), lambda: T0,
                        max_poll_seconds=0.0)
    sources = [f"Wire {n}" for n in range(10)]  # ten groups, one notification each
    log_matches(db, *(denial(f"m{n}", source) for n, source in enumerate(sources)))
    stage.step()
    assert len(hook.requests) == 10
    assert counted.writes[0] == ["pending"] * 10  # all of the round's, before any is sent
    outcome_writes = [events for events in counted.writes[1:] if events]
    assert sorted(e for events in outcome_writes for e in events) == ["sent"] * 10
    assert len(outcome_writes) == 1  # the round's outcomes together, not one per alert
    # ... and the commit with them: one write (one transaction in Kafka mode), no commit alone
    assert len(counted.positions) == 2 and counted.positions[1] == {0: 11}  # past the ten
    assert counted.commits == 0
    stage.close()



def test_matches_that_come_in_during_deliveries_are_taken_in_before_anything_is_recorded(
        tmp_path: Path, db: Database, slow: WebhookReceiver, hook: WebhookReceiver) -> None:
    """A step that sees new matches while it waits for its deliveries ends there: their
    ``pending`` records are the next write, with the outcomes and the commit the step had
    (one transaction in Kafka mode), not two writes first."""
    counted = CountingLog(embedded(db))
    stage = alert_stage(counted, two_receivers(tmp_path, slow, hook), lambda: T0,
                        max_poll_seconds=0.0)
    slow.slow(30.0)  # answers when released
    log_matches(db, denial("held", "Slow Wire"))
    later = threading.Timer(0.3, log_matches, (db, denial("news", "TASS")))
    later.start()
    try:
        stage.step()  # pending for "held", then waits for its delivery until "news" comes
        later.join()
        assert counted.writes == [["pending"]]
        assert counted.commits == 0  # nothing was committed alone either
        slow.release()
        (held,) = slow.wait_for(1, timeout_seconds=20.0)
        stage.step()
    finally:
        slow.release()
        later.cancel()
    assert counted.writes[1][0] == "pending"  # "news" taken in first
    (news,) = hook.wait_for(1, timeout_seconds=20.0)
    assert "TASS" in str(news.body)
    stage.close()
    assert sorted(e for events in counted.writes for e in events) == ["pending"] * 2 + ["sent"] * 2
    assert counted.commits == 0
    assert counted.positions[-1] == {0: 3}  # past both matches

def _entry(n: int, receiver: str = "r") -> PendingAlert:
    return PendingAlert(f"n{n}", receiver, b"[]", 0, ("c",), (f"m{n}",), T0, T0)


class Gate:
    """An attempt function that records the order of attempts and holds those told to."""

    def __init__(self, held: set[str]) -> None:
        self.started: list[str] = []
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()
        self._held = {entry_id: threading.Event() for entry_id in held}

    def attempt(self, entry: PendingAlert) -> Attempt:
        with self._lock:
            self.started.append(entry.id)
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        gate = self._held.get(entry.id)
        if gate is not None:
            gate.wait(10)
        time.sleep(0.01)
        with self._lock:
            self.running -= 1
        return Sent(entry.id)

    def open(self, entry_id: str) -> None:
        self._held[entry_id].set()


def _all_done(pool: DeliveryPool, count: int) -> list[str]:
    done: list[str] = []
    deadline = time.monotonic() + 10
    while len(done) < count and time.monotonic() < deadline:
        pool.wait(0.1)
        done += [d.entry.id for d in pool.take_done()]
    return done


def test_a_groups_notifications_go_out_in_order_while_other_groups_pass() -> None:
    gate = Gate(held={"n1"})
    pool = DeliveryPool(gate.attempt, per_receiver=4)
    try:
        pool.submit(_entry(1), "group-a")
        pool.submit(_entry(2), "group-a")  # must wait for n1, however long n1 takes
        pool.submit(_entry(3), "group-b")
        assert _all_done(pool, 1) == ["n3"]
        assert gate.started == ["n1", "n3"]
        gate.open("n1")
        assert _all_done(pool, 2) == ["n1", "n2"]
        assert gate.started == ["n1", "n3", "n2"]
    finally:
        pool.close()


def test_deliveries_to_one_receiver_are_bounded_and_others_are_not_held_by_them() -> None:
    gate = Gate(held={f"n{n}" for n in range(4)})
    pool = DeliveryPool(gate.attempt, per_receiver=2)
    try:
        for n in range(4):
            pool.submit(_entry(n, "busy"), f"lane-{n}")
        pool.submit(_entry(9, "other"), "lane-9")
        assert _all_done(pool, 1) == ["n9"]  # the busy receiver's queue does not hold it
        assert sorted(gate.started) == ["n0", "n1", "n9"]  # two at a time for "busy"
        for n in range(4):
            gate.open(f"n{n}")
        assert sorted(_all_done(pool, 4)) == ["n0", "n1", "n2", "n3"]
        assert gate.most_running <= 3  # two of "busy", one of "other"
    finally:
        pool.close()


def test_an_attempt_that_raises_stops_the_stage_thread_with_its_error() -> None:
    def broken(entry: PendingAlert) -> Attempt:
        raise KeyError(entry.id)

    pool = DeliveryPool(broken)
    try:
        pool.submit(_entry(1), "lane")
        pool.wait(5)
        with pytest.raises(KeyError, match="n1"):
            pool.take_done()
        assert pool.in_flight() == 0
    finally:
        pool.close()


def test_a_stage_with_nothing_in_flight_closes_at_once(tmp_path: Path, db: Database,
                                                       slow: WebhookReceiver,
                                                       hook: WebhookReceiver) -> None:
    stage: AlertStage = alert_stage(embedded(db), two_receivers(tmp_path, slow, hook),
                                    lambda: T0, registry=CollectorRegistry(),
                                    max_poll_seconds=0.0)
    stage.step()
    began = time.monotonic()
    stage.close()
    # Not after a step's 5 s wait for deliveries; 2.5 s rather than 1 s so that a loaded
    # machine (2 cores, -n 2) does not fail a close that waited for nothing.
    assert time.monotonic() - began < 2.5



def test_the_silences_are_read_when_partitions_are_assigned_not_at_the_first_match(
        tmp_path: Path, db: Database, slow: WebhookReceiver, hook: WebhookReceiver) -> None:
    """The first read opens the silence book (through Kafka a consumer, metadata and end
    offsets): done when the stage gets its partitions, the first matches do not wait for it.
    Every intake still reads them again (a silence acknowledged before a match applies)."""
    reads: list[float] = []

    def silences(now: float) -> list[Silence]:
        reads.append(now)
        return []

    stage = alert_stage(embedded(db), two_receivers(tmp_path, slow, hook), lambda: T0,
                        silences=silences, max_poll_seconds=0.0)
    stage.step()  # the assignment, no match yet
    assert reads == [T0]
    stage.step()
    assert reads == [T0]  # nothing new assigned, nothing taken in
    log_matches(db, denial("news", "TASS"))
    stage.step()
    assert reads == [T0, T0]
    stage.close()

"""PollTransactions without a broker: retries of transient errors, fencing, ownership.

The broker's side (a real takeover fencing a real producer) is in
tests/integration/test_poll_exactly_once.py; here kafka-python's producer is replaced by a
scripted one, to show what the shell does with each kind of error.
"""

from __future__ import annotations

from typing import Any

import pytest
from kafka.errors import KafkaError, NotCoordinatorError, ProducerFencedError

from monitor.bus import kafka_poll
from monitor.bus.connectivity import BrokerWatch
from monitor.bus.kafka_poll import PollTransactions
from monitor.config.settings import KafkaSettings
from tests.support.clock import ManualClock

HANGS = KafkaError("the sender thread died: this commit never finishes")


class Result:
    """kafka-python's TransactionalRequestResult as PollTransactions waits on it."""

    def __init__(self, error: KafkaError | None = None) -> None:
        self.error = error

    def wait(self, timeout_ms: float | None = None) -> bool:
        if self.error is HANGS:
            assert timeout_ms is not None, "a wait without a deadline would never return"
            return False
        if self.error is not None:
            raise self.error
        return True


class Sent:
    """A record's future, written."""

    exception = None

    def succeeded(self) -> bool:
        return True


class ScriptedProducer:
    """Commits fail with the scripted errors, in order, then succeed. Speaks the parts of
    kafka-python's internals PollTransactions uses to bound a commit (its transaction manager
    and sender)."""

    script: list[KafkaError] = []
    started: list[str] = []

    def __init__(self, **config: Any) -> None:
        self.tid = config["transactional_id"]
        self.sent: list[tuple[str, bytes]] = []
        self.aborted = self.closed = 0
        self.committing = False
        self._transaction_manager = self._sender = self

    def init_transactions(self) -> None:
        ScriptedProducer.started.append(self.tid)

    def begin_transaction(self) -> None:
        self.sent = []

    def send(self, topic: str, key: bytes, value: bytes) -> Sent:
        self.sent.append((topic, key))
        return Sent()

    def begin_commit(self) -> Result:
        result = Result(ScriptedProducer.script.pop(0) if ScriptedProducer.script else None)
        self.committing = result.error is HANGS
        return result

    def begin_abort(self) -> Result:
        self.aborted += 1
        if self.committing:  # as kafka-python: no abort of a transaction being committed
            raise KafkaError("Invalid transition attempted from COMMITTING_TRANSACTION")
        return Result()

    def wakeup(self) -> None:
        """The sender thread is told there is work."""

    def close(self, timeout: float) -> None:
        self.closed += 1


@pytest.fixture
def transactions(monkeypatch: pytest.MonkeyPatch) -> PollTransactions:
    monkeypatch.setattr(kafka_poll, "KafkaProducer", ScriptedProducer)
    ScriptedProducer.script, ScriptedProducer.started = [], []
    settings = KafkaSettings(bootstrap_servers=("127.0.0.1:1",), poll_group="poll",
                             poll_control_partitions=4)
    return PollTransactions(settings, BrokerWatch(settings, probe=lambda *_: None),
                            clock=ManualClock())


def test_a_transient_error_is_tried_again_and_the_transaction_commits(
        transactions: PollTransactions) -> None:
    transactions.own({1, 3}, generation=7)
    transactions.state_read()  # as its caller does after own()
    assert ScriptedProducer.started == ["poll-1", "poll-3"]
    ScriptedProducer.script = [NotCoordinatorError()]
    assert transactions.commit(1, [], [(b"wire", b"{}")]) is None
    assert transactions.is_ready()


def test_transient_errors_that_last_fail_the_poll_after_three_attempts(
        transactions: PollTransactions) -> None:
    transactions.own({1}, generation=7)
    transactions.state_read()
    ScriptedProducer.script = [NotCoordinatorError() for _ in range(5)]
    failure = transactions.commit(1, [], [(b"wire", b"{}")])
    assert failure and "aborted" in failure
    assert len(ScriptedProducer.script) == 2  # three attempts, each aborted
    assert not transactions.is_ready() and transactions.owns(1)


def test_a_fenced_producer_gives_its_partition_up_and_says_so_once(
        transactions: PollTransactions, caplog: pytest.LogCaptureFixture) -> None:
    fenced: list[int] = []
    transactions.on_lost = lambda partition, is_fenced: fenced.append(partition)
    transactions.own({1, 2}, generation=7)
    transactions.state_read()
    ScriptedProducer.script = [ProducerFencedError()]
    failure = transactions.commit(2, [], [(b"wire", b"{}")])
    assert failure and "fenced" in failure
    assert fenced == [2] and not transactions.owns(2) and transactions.owns(1)
    again = transactions.commit(2, [], [(b"wire", b"{}")])  # no retry, no second line
    assert again and "no longer this poller's" in again
    assert fenced == [2]
    assert len([r for r in caplog.records if "stops polling its feeds" in r.getMessage()]) == 1


def test_a_new_generation_restarts_the_producers_it_keeps(
        transactions: PollTransactions) -> None:
    transactions.own({1, 2}, generation=7)
    transactions.own({1, 2}, generation=7)  # the same answer: nothing to do
    transactions.own({2, 3}, generation=8)  # lost and regained unnoticed? start afresh
    assert ScriptedProducer.started == ["poll-1", "poll-2", "poll-2", "poll-3"]
    assert not transactions.owns(1)


def test_a_fence_reported_inside_kafka_pythons_generic_error_is_a_fence(
        transactions: PollTransactions) -> None:
    """"Cannot perform send because at least one previous ... request has failed" wraps the
    ProducerFencedError of an earlier request: restarting that producer would fence the
    partition's rightful owner in turn."""
    fenced: list[int] = []
    transactions.on_lost = lambda partition, is_fenced: fenced.append(partition)
    transactions.own({1}, generation=7)
    transactions.state_read()
    ScriptedProducer.script = [KafkaError("Cannot perform send because at least one previous "
                                          "transactional or idempotent request has failed "
                                          "with errors.", ProducerFencedError())]
    assert transactions.commit(1, [], [(b"wire", b"{}")])
    assert fenced == [1] and ScriptedProducer.started == ["poll-1"]  # not started again


def test_a_commit_that_never_finishes_fails_the_poll_and_the_producer_is_started_again(
        transactions: PollTransactions) -> None:
    lost: list[tuple[int, bool]] = []
    transactions.on_lost = lambda partition, fenced: lost.append((partition, fenced))
    transactions.own({2}, generation=7)
    transactions.state_read()
    producer: Any = transactions._producers[2]
    ScriptedProducer.script = [HANGS]
    failure = transactions.commit(2, [], [(b"wire", b"{}")])
    assert failure and "restarting" in failure
    assert producer.aborted == 1 and producer.closed == 1  # given up, not waited on for ever
    assert lost == [(2, False)]  # the ownership loop starts it again and re-reads the state
    transactions.own({2}, generation=7)
    transactions.state_read()
    assert ScriptedProducer.started == ["poll-2", "poll-2"]
    assert transactions.commit(2, [], [(b"wire", b"{}")]) is None


def test_a_producer_started_again_commits_nothing_until_the_state_is_read_again(
        transactions: PollTransactions) -> None:
    """A pause longer than the session: another poller took the feeds, published, and was
    fenced by this one's new producer. A poll that read this process's memory before the state
    was read again would publish those items a second time: it fails, and the next one goes."""
    transactions.own({1}, generation=7)
    transactions.state_read()
    transactions.own({1}, generation=8)  # the producer starts afresh (fencing the other)
    failure = transactions.commit(1, [], [(b"wire", b"{}")])
    assert failure and "restarting" in failure and transactions.restarting(1)
    transactions.state_read()
    assert transactions.commit(1, [], [(b"wire", b"{}")]) is None
    assert not transactions.restarting(1)

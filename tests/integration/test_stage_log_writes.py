"""A stage log's write tried again after a failure stores each record once (issue 13).

The alert stage writes its records (``pending``, ``sent`` ...) in transactions fenced by the
group's generation. In a broker outage a write can fail although the broker stored it (its
answer was lost); the stage keeps the records and writes them again, and the chaos test saw
two ``sent`` records for one match on the alerts topic. Here, on the real broker, a write's
answer is "lost" after the broker stored it (the producer's futures raise after they
resolved), and the write tried again must find the records and not store them twice; a write
that really failed (nothing sent) must store them on the next try. And a member the group
dropped without its knowing (a zombie) cannot write at all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError

from monitor.bus.kafka import read_partitions, topic_reader, written_ends
from monitor.bus.kafka_log import RECORD_ID_HEADER, KafkaStageLog
from monitor.bus.log import Output
from monitor.config.settings import KafkaSettings
from monitor.errors import BusError
from tests.support.kafka_broker import LocalKafka, isolated_kafka_settings
from tests.support.waiting import eventually

pytestmark = pytest.mark.kafka


class AnswerLost:
    """A future whose record the broker stored, but whose answer never came back."""

    def __init__(self, future: Any) -> None:
        self._future = future

    def get(self, timeout: float | None = None) -> Any:
        self._future.get(timeout=timeout)
        raise KafkaTimeoutError("answer lost (test)")


class NeverSent:
    def get(self, timeout: float | None = None) -> Any:
        raise KafkaTimeoutError("not sent (test)")


class FailingOnce:
    """The stage log's producer, whose next ``send`` calls fail the given way ("stuck": for
    good, as a producer whose sender no longer sends)."""

    def __init__(self, producer: Any) -> None:
        self._producer = producer
        self.failure: str | None = None

    def send(self, *args: Any, **kwargs: Any) -> Any:
        if self.failure == "answer lost":
            return AnswerLost(self._producer.send(*args, **kwargs))
        if self.failure in ("never sent", "stuck"):
            return NeverSent()
        return self._producer.send(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)


@pytest.fixture
def settings(kafka_broker: LocalKafka) -> KafkaSettings:
    return isolated_kafka_settings(kafka_broker.bootstrap)


@pytest.fixture
def alert_log(settings: KafkaSettings) -> Iterator[tuple[KafkaStageLog, FailingOnce]]:
    stage_log = joined(KafkaStageLog(settings, "alert", settings.matches_topic,
                                     settings.alert_group, fenced_writes=True,
                                     session_timeout_seconds=6))
    producer = FailingOnce(stage_log._producer)
    stage_log._producer = producer  # type: ignore[assignment]
    yield stage_log, producer
    stage_log.close()


def joined(stage_log: KafkaStageLog) -> KafkaStageLog:
    """``stage_log`` once the group gave it partitions (a write needs some)."""
    eventually(lambda: stage_log.poll(0.5) and stage_log.is_ready(), 60, "partitions assigned")
    return stage_log


def stored_ids(settings: KafkaSettings) -> Counter[str]:
    reader = topic_reader(settings)
    try:
        ends = written_ends(settings, settings.alerts_topic)
        records = read_partitions(reader, settings.alerts_topic, ends=ends)
    finally:
        reader.close()
    return Counter(r.headers[RECORD_ID_HEADER] for r in records)


def outputs(*names: str, partition: int = 1) -> list[Output]:
    return [Output("alerts", b"claim", f'{{"n": "{name}"}}'.encode(), name, partition=partition)
            for name in names]


def test_a_write_whose_answer_was_lost_is_not_stored_twice(
        settings: KafkaSettings, alert_log: tuple[KafkaStageLog, FailingOnce]) -> None:
    stage_log, producer = alert_log
    stage_log.write(outputs("before"))  # acknowledged: the read-back starts after it
    producer.failure = "answer lost"
    with pytest.raises(BusError):
        stage_log.write(outputs("a:sent", "b:sent"))
    producer.failure = None
    stage_log.write(outputs("a:sent", "b:sent", "c:pending"))  # the stage tries all again
    assert stored_ids(settings) == {"before": 1, "a:sent": 1, "b:sent": 1, "c:pending": 1}


def test_a_write_that_failed_unsent_is_stored_on_the_next_try(
        settings: KafkaSettings, alert_log: tuple[KafkaStageLog, FailingOnce]) -> None:
    stage_log, producer = alert_log
    producer.failure = "never sent"
    with pytest.raises(BusError):
        stage_log.write(outputs("a:sent", "b:sent", partition=0))
    producer.failure = None
    stage_log.write(outputs("a:sent", "b:sent", partition=0))
    assert stored_ids(settings) == {"a:sent": 1, "b:sent": 1}


def test_records_of_a_failed_write_the_stage_gave_up_are_not_looked_for(
        settings: KafkaSettings, alert_log: tuple[KafkaStageLog, FailingOnce]) -> None:
    """A partition that moved away takes its unwritten records with it: the next write
    (other records) goes out as it is, and the same id later is a new record."""
    stage_log, producer = alert_log
    producer.failure = "answer lost"
    with pytest.raises(BusError):
        stage_log.write(outputs("a:sent"))
    producer.failure = None
    stage_log.write(outputs("z:pending"))
    stage_log.write(outputs("a:sent"))
    assert stored_ids(settings) == {"a:sent": 2, "z:pending": 1}


def test_a_producer_whose_write_timed_out_is_replaced(
        settings: KafkaSettings, alert_log: tuple[KafkaStageLog, FailingOnce]) -> None:
    """kafka-python 3.0.12 after a broker restart: a producer whose every write times out
    while the broker answers others (the chaos test's alerter, for minutes). The write after
    a timeout goes through a new producer."""
    stage_log, producer = alert_log
    producer.failure = "stuck"
    with pytest.raises(BusError):
        stage_log.write(outputs("a:pending"))
    stage_log.write(outputs("a:pending", "b:sent"))
    assert stage_log._producer is not producer
    assert stored_ids(settings) == {"a:pending": 1, "b:sent": 1}


def test_a_member_the_group_dropped_without_its_knowing_cannot_write(
        settings: KafkaSettings, alert_log: tuple[KafkaStageLog, FailingOnce]) -> None:
    """A zombie: its heartbeats stop (a frozen process, or lost around a broker restart), the
    group gives its partitions to another member, and it has not polled since. Its ``pending``
    record would land after the new owner read the alert log: the same matches would go out
    twice, under two notification ids (the CI run of 3838e56). The broker refuses the write's
    transaction: wrong generation."""
    zombie, _ = alert_log
    zombie.write(outputs("before"))
    zombie._consumer._coordinator._close_heartbeat()  # kafka-python 3.0 internals
    owner = KafkaStageLog(settings, "alert", settings.matches_topic, settings.alert_group,
                          fenced_writes=True, session_timeout_seconds=6)
    try:
        eventually(lambda: owner.poll(0.5) is not None and len(
            owner._consumer.assignment()) == settings.topic_partitions, 90,
            "every partition the new owner's")
        with pytest.raises(BusError, match="UnknownMemberId|IllegalGeneration"):
            zombie.write(outputs("zombie:pending"))
        owner.write(outputs("owner:pending"))
    finally:
        owner.close()
    assert stored_ids(settings) == {"before": 1, "owner:pending": 1}

"""The pollers' own clean-up of hanging transactions (monitor.bus.hanging) on the real broker.

A hanging transaction (records without a marker, unknown to its coordinator) came out of a
broker restart in the chaos test and cannot be made on purpose with a client. What can fail
here is the other half, that matters as much: a transaction its coordinator still has open is
never aborted, however old, and one of another transactional id is never touched.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kafka import KafkaProducer

from monitor.bus.hanging import abort_hanging
from monitor.bus.kafka import (
    ensure_topics,
    poll_topics,
    read_partitions,
    topic_reader,
    written_ends,
)
from monitor.config.settings import KafkaSettings
from tests.support.kafka_broker import LocalKafka, isolated_kafka_settings

pytestmark = pytest.mark.kafka


@pytest.fixture
def settings(kafka_broker: LocalKafka) -> KafkaSettings:
    run = uuid.uuid4().hex[:8]
    settings = isolated_kafka_settings(
        kafka_broker.bootstrap, feed_state_topic=f"feed-state.{run}",
        poll_control_topic=f"control.{run}", poll_group=f"poll-{run}")
    ensure_topics(settings, poll_topics(settings))
    return settings


@pytest.fixture
def producer(settings: KafkaSettings) -> Iterator[KafkaProducer]:
    producer = KafkaProducer(bootstrap_servers=list(settings.bootstrap_servers),
                             transactional_id=f"{settings.poll_group}-3")
    producer.init_transactions()
    yield producer
    producer.close(timeout=5)


def test_a_transaction_its_coordinator_has_open_is_left_to_it(
        settings: KafkaSettings, producer: KafkaProducer) -> None:
    producer.begin_transaction()
    producer.send(settings.feed_state_topic, key=b"wire", value=b"{}").get(timeout=10)
    prefix = f"{settings.poll_group}-"
    topics = [settings.feed_state_topic, settings.items_topic]
    assert abort_hanging(settings, topics, prefix, older_than_seconds=-60) == 0
    assert abort_hanging(settings, topics, "someone-else-", older_than_seconds=-60) == 0
    producer.commit_transaction()  # still its own to end: the record becomes visible
    reader = topic_reader(settings)
    try:
        records = read_partitions(reader, settings.feed_state_topic,
                                  ends=written_ends(settings, settings.feed_state_topic))
    finally:
        reader.close()
    assert [(r.key, r.value) for r in records] == [(b"wire", b"{}")]

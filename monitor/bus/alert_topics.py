"""Whole topics for the operator commands (``monitor alerts history``, ``monitor dlq``) in Kafka
mode: read one from the start to its end, write one record and wait for the broker. The
records stay bytes here; :mod:`monitor.alerting.archive` reads them.

Every KafkaError becomes a :class:`monitor.errors.BusError` naming the topic.
"""

from __future__ import annotations

from kafka import KafkaProducer
from kafka.errors import KafkaError

from monitor.bus.kafka import TopicRecord, client_config, read_partitions, topic_reader
from monitor.config.settings import KafkaSettings
from monitor.errors import BusError


def read_topic(settings: KafkaSettings, topic: str) -> list[TopicRecord]:
    """Every committed record of ``topic``, oldest first per partition."""
    try:
        reader = topic_reader(settings)
        try:
            return read_partitions(reader, topic)
        finally:
            reader.close()
    except KafkaError as exc:
        raise BusError(f"kafka: cannot read {topic}: {exc!r}", exc) from exc


def write_record(settings: KafkaSettings, topic: str, partition: int, key: bytes,
                 value: bytes) -> None:
    """Write one record on ``topic`` and wait for the broker (acks=all)."""
    try:
        producer = KafkaProducer(**client_config(settings), acks="all", enable_idempotence=True)
        try:
            producer.send(topic, key=key, value=value, partition=partition).get(
                timeout=settings.delivery_timeout_seconds + 5)
        finally:
            producer.close(timeout=5)
    except KafkaError as exc:
        raise BusError(f"kafka: cannot write to {topic}: {exc!r}", exc) from exc


def write_keyed(settings: KafkaSettings, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """Write (key, value) records on ``topic``, partitioned by key, and wait for every
    acknowledgement (acks=all)."""
    try:
        producer = KafkaProducer(**client_config(settings), acks="all", enable_idempotence=True)
        try:
            futures = [producer.send(topic, key=key, value=value) for key, value in records]
            for future in futures:
                future.get(timeout=settings.delivery_timeout_seconds + 5)
        finally:
            producer.close(timeout=5)
    except KafkaError as exc:
        raise BusError(f"kafka: cannot write to {topic}: {exc!r}", exc) from exc

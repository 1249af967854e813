"""``monitor.alerts`` and ``monitor.dlq`` for the operator commands: ``monitor dlq list``,
``monitor dlq replay`` and ``monitor alerts history`` in Kafka mode (the stage itself lives in
:mod:`monitor.bus.kafka_alert`)."""

from __future__ import annotations

import logging

from kafka import KafkaProducer

from monitor.alerting.alert_log import AlertRecord, decode_alert_record, encode_alert_record
from monitor.alerting.dead_letters import DeadLetter, dead_letters
from monitor.bus.kafka import TopicRecord, client_config, read_partitions, topic_reader
from monitor.config.settings import KafkaSettings
from monitor.errors import InvalidInputError

log = logging.getLogger(__name__)


def _read_topic(settings: KafkaSettings, topic: str) -> list[TopicRecord]:
    reader = topic_reader(settings)
    try:
        return read_partitions(reader, topic)
    finally:
        reader.close()


def read_dead_letters(settings: KafkaSettings) -> list[DeadLetter]:
    """Every record on ``monitor.dlq``, oldest first per partition."""
    records = _read_topic(settings, settings.dlq_topic)
    return dead_letters((f"{settings.dlq_topic}/{r.partition}@{r.offset}", r.headers, r.value)
                        for r in records)


def read_alert_records(settings: KafkaSettings) -> list[AlertRecord]:
    """Every readable record on ``monitor.alerts``, in time order."""
    found = []
    for record in _read_topic(settings, settings.alerts_topic):
        try:
            found.append(decode_alert_record(record.value))
        except InvalidInputError as exc:
            log.warning("alerts: %s/%d@%d unreadable: %s", settings.alerts_topic,
                        record.partition, record.offset, exc)
    return sorted(found, key=lambda r: r.at)


def write_alert_record(settings: KafkaSettings, partition: int, record: AlertRecord) -> None:
    """Write one record on ``monitor.alerts`` and wait for the broker (acks=all)."""
    producer = KafkaProducer(**client_config(settings), acks="all", enable_idempotence=True)
    try:
        producer.send(settings.alerts_topic, key=record.key, value=encode_alert_record(record),
                      partition=partition).get(timeout=settings.delivery_timeout_seconds + 5)
    finally:
        producer.close(timeout=5)

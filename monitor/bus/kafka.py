"""Kafka mode: the only module that talks to kafka-python.

Items go to ``monitor.items`` keyed by item_id through an idempotent producer with acks=all, so
an acknowledged item is on every in-sync replica and a retried send is not written twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from monitor.bus import PublishReport
from monitor.config.settings import KafkaSettings
from monitor.errors import MonitorError
from monitor.model import Item, encode_item

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


def item_topics(settings: KafkaSettings) -> list[TopicSpec]:
    week_ms = str(7 * 24 * 3600 * 1000)
    return [
        TopicSpec(settings.items_topic, settings.topic_partitions, {"retention.ms": week_ms}),
        TopicSpec(settings.matches_topic, settings.topic_partitions, {"retention.ms": week_ms}),
        TopicSpec(settings.dlq_topic, 1, {"retention.ms": str(30 * 24 * 3600 * 1000)}),
    ]


def client_config(settings: KafkaSettings) -> dict[str, Any]:
    """Connection settings shared by producers, consumers and the admin client."""
    config: dict[str, Any] = {
        "bootstrap_servers": list(settings.bootstrap_servers),
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism:
        config["sasl_mechanism"] = settings.sasl_mechanism
        config["sasl_plain_username"] = settings.sasl_username
        if settings.sasl_password is not None:
            config["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return config


def ensure_topics(settings: KafkaSettings, topics: Sequence[TopicSpec]) -> None:
    """Create missing topics, waiting up to ``startup_timeout_seconds`` for a broker."""
    deadline = time.monotonic() + settings.startup_timeout_seconds
    servers = ",".join(settings.bootstrap_servers)
    while True:
        try:
            admin = KafkaAdminClient(
                **client_config(settings), request_timeout_ms=10_000, bootstrap_timeout_ms=5_000
            )
            break
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise MonitorError(
                    f"kafka: no broker reachable at {servers} after "
                    f"{settings.startup_timeout_seconds:g} s ({type(exc).__name__})"
                ) from exc
            time.sleep(1.0)
    try:
        for spec in topics:
            _create_topic(admin, spec, settings.replication_factor)
    finally:
        admin.close()


def _create_topic(admin: KafkaAdminClient, spec: TopicSpec, replication_factor: int) -> None:
    topic = NewTopic(spec.name, spec.partitions, replication_factor, topic_configs=spec.configs)
    try:
        admin.create_topics([topic])
        log.info("kafka: created topic %s with %d partitions", spec.name, spec.partitions)
    except TopicAlreadyExistsError:
        pass
    except KafkaError as exc:
        raise MonitorError(f"kafka: cannot create topic {spec.name}: {exc}") from exc


class KafkaItemPublisher:
    """ItemPublisher on Kafka. Thread-safe (kafka-python's producer is)."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._producer = KafkaProducer(
            **client_config(settings),
            acks="all",
            enable_idempotence=True,  # explicit: a conflicting setting silently disables it
            linger_ms=10,
            compression_type=None,
            max_block_ms=int(settings.max_block_seconds * 1000),
            request_timeout_ms=min(10_000, int(settings.delivery_timeout_seconds * 1000) - 20),
            delivery_timeout_ms=int(settings.delivery_timeout_seconds * 1000),
        )
        self._healthy = True

    def publish(self, items: Sequence[Item]) -> PublishReport:
        pending: list[tuple[Item, Any]] = []
        failure: str | None = None
        for item in items:
            try:
                future = self._producer.send(
                    self._settings.items_topic, key=item.item_id.encode(), value=encode_item(item)
                )
            except KafkaError as exc:  # metadata or buffer space unavailable within max_block
                failure = f"kafka: send to {self._settings.items_topic} failed: {exc}"
                break
            pending.append((item, future))
        acknowledged, failure = self._await(pending, failure)
        self._healthy = failure is None
        return PublishReport(tuple(acknowledged), failure)

    def _await(
        self, pending: list[tuple[Item, Any]], failure: str | None
    ) -> tuple[list[Item], str | None]:
        acknowledged: list[Item] = []
        for item, future in pending:
            try:
                future.get(timeout=self._settings.delivery_timeout_seconds + 5)
            except KafkaError as exc:
                failure = failure or (
                    f"kafka: {self._settings.items_topic} did not acknowledge: {exc}"
                )
                continue
            acknowledged.append(item)
        return acknowledged, failure

    def is_ready(self) -> bool:
        return self._healthy

    def close(self) -> None:
        try:
            self._producer.flush(timeout=self._settings.delivery_timeout_seconds)
        finally:
            self._producer.close(timeout=5)

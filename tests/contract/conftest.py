"""The contract suite's two transports: each behaviour runs against the embedded logs (a real
SQLite state file) and against a real Apache Kafka broker, through the same stage code.

A :class:`Pipeline` is what a test sees of one transport: it writes input records the way the
stage before would, builds a stage's log as the service does (``monitor.bus.transport``), and
reads back what a stage wrote the way the next reader would (Kafka: read_committed).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kafka import KafkaProducer

from monitor.bus.embedded import EmbeddedLog, read_dead_letters
from monitor.bus.kafka import TopicRecord, read_partitions, topic_reader
from monitor.bus.log import LogName, StageLog
from monitor.bus.transport import EmbeddedTransport, KafkaTransport, StageName, Transport
from monitor.config.settings import KafkaSettings, Settings
from monitor.store import Database
from tests.support.kafka_broker import LocalKafka, isolated_kafka_settings

MODES = ["embedded", pytest.param("kafka", marks=pytest.mark.kafka)]


@dataclass
class Pipeline:
    """One transport under test; ``mode`` is "embedded" or "kafka"."""

    mode: str
    settings: Settings
    database: Database
    transport: Transport
    opened: list[StageLog] = field(default_factory=list)

    def stage_log(self, stage: StageName) -> StageLog:
        """A fresh log for ``stage`` (a second call is a restarted or second process)."""
        made = self.transport.stage_log(stage)
        self.opened.append(made)
        return made

    def append(self, log: LogName, records: list[tuple[bytes, bytes]]) -> None:
        """Write (key, value) records to ``log`` as the stage before would (any bytes)."""
        if self.mode == "embedded":
            with self.database.transaction() as conn:
                if log == "items":
                    conn.executemany(
                        "INSERT INTO item_log (item_id, content_hash, payload, logged_at) "
                        "VALUES (?, ?, ?, 0)",
                        [(k.decode(), uuid.uuid4().hex, v) for k, v in records])
                else:
                    conn.executemany(
                        "INSERT INTO match_log (match_id, claim_id, payload, logged_at) "
                        "VALUES (?, ?, ?, 0)",
                        [(uuid.uuid4().hex, k.decode(), v) for k, v in records])
            return
        producer = KafkaProducer(bootstrap_servers=list(self.kafka.bootstrap_servers),
                                 acks="all", enable_idempotence=True)
        try:
            topic = self.kafka.items_topic if log == "items" else self.kafka.matches_topic
            for future in [producer.send(topic, key=k, value=v) for k, v in records]:
                future.get(timeout=30)
        finally:
            producer.close(timeout=5)

    def read(self, log: LogName, *, expect: int = 0, settle_seconds: float = 0.0
             ) -> list[tuple[bytes | None, bytes]]:
        """(key, value) of every committed record of ``log``, as the next reader sees it."""
        if self.mode == "embedded":
            return [(r.key, r.value) for r in EmbeddedLog(self.database, log).read_all()]
        topic = {"items": self.kafka.items_topic, "matches": self.kafka.matches_topic,
                 "alerts": self.kafka.alerts_topic}[log]
        return [(r.key, r.value) for r in self._read_topic(topic, expect, settle_seconds)]

    def dead_letters(self, *, expect: int = 0) -> list[tuple[dict[str, str], bytes]]:
        """(headers, value) of every dead letter."""
        if self.mode == "embedded":
            return [(dict(h), v) for _place, h, v in read_dead_letters(self.database)]
        return [(dict(r.headers), r.value)
                for r in self._read_topic(self.kafka.dlq_topic, expect, 0.0)]

    @property
    def kafka(self) -> KafkaSettings:
        return self.settings.kafka

    def _read_topic(self, topic: str, expect: int, settle_seconds: float) -> list[TopicRecord]:
        """Every committed record of ``topic`` up to its end as it is now: what the stages
        committed before the call is all there (no quiet period to wait out)."""
        del expect, settle_seconds  # the end offsets say when everything was read
        reader = topic_reader(self.kafka)
        try:
            return read_partitions(reader, topic)
        finally:
            reader.close()

    def close(self) -> None:
        for made in self.opened:
            made.close()
        self.transport.close()
        self.database.close()


@pytest.fixture(params=MODES)
def pipeline(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pipeline]:
    mode: str = request.param
    if mode == "embedded":
        settings = Settings.model_validate({"state_path": tmp_path / "state.sqlite3"})
    else:
        broker: LocalKafka = request.getfixturevalue("kafka_broker")
        # The broker's minimum session timeout: a stopped member leaves the group soon.
        kafka = isolated_kafka_settings(broker.bootstrap, session_timeout_seconds=6)
        settings = Settings.model_validate({"state_path": tmp_path / "state.sqlite3",
                                            "kafka": kafka.model_dump(mode="json")})
    database = Database(settings.state_path)
    transport: Transport = (EmbeddedTransport(database) if mode == "embedded"
                            else KafkaTransport(settings))
    transport.prepare()
    made = Pipeline(mode, settings, database, transport)
    try:
        yield made
    finally:
        made.close()

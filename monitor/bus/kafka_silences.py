"""Kafka mode's :class:`monitor.bus.silences.SilenceBook`: the compacted silences topic.

Each record is one silence, keyed by its id, its value the JSON of
:func:`monitor.config.silences.encode_silence`; expiring a silence writes it again with the new
expiry, so compaction keeps the latest version of each and ``list --all`` still shows expired
ones. Writes wait for acks=all.

Every reader reads the whole topic, read_committed, with a consumer of no group (every
partition assigned by hand, positions kept in memory): every alerter sees every silence, and
a restarted one reads them all again before it decides on a match. Before each answer the book
reads up to the end offsets as they are at the call, so a silence the broker acknowledged
before a match was taken in is applied to it, whichever alerter took the match.

Every KafkaError becomes a :class:`monitor.errors.BusError` naming the topic: the alert stage's
runner tries the step again; ``monitor silence`` exits 1.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from monitor.bus.kafka import broker_errors_as_bus_errors, client_config, topic_reader
from monitor.config.settings import KafkaSettings
from monitor.config.silences import Silence, decode_silence, encode_silence, new_silence
from monitor.errors import BusError, InvalidInputError

log = logging.getLogger(__name__)

READ_TIMEOUT_SECONDS = 30.0


class KafkaSilenceBook:
    """See the module doc. Not thread-safe: one thread uses it at a time."""

    def __init__(self, settings: KafkaSettings, *,
                 read_timeout_seconds: float = READ_TIMEOUT_SECONDS) -> None:
        self._settings, self.source = settings, settings.silences_topic
        self._read_timeout_seconds = read_timeout_seconds
        self._consumer: KafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._producer: KafkaProducer | None = None
        self._known: dict[str, Silence] = {}

    def add(self, matchers: list[str], expires_at: datetime, reason: str, created_by: str,
            now: datetime) -> Silence:
        silence = new_silence(matchers, expires_at, reason, created_by, now)
        self._write(silence)
        return silence

    def list(self, *, include_expired: bool, now: datetime) -> list[Silence]:
        self._catch_up()
        found = [s for s in self._known.values() if include_expired or s.is_active(now)]
        return sorted(found, key=lambda s: (s.created_at, s.id))

    def expire(self, silence_id: str, now: datetime) -> Silence:
        self._catch_up()
        silence = self._known.get(silence_id)
        if silence is None or not silence.is_active(now):
            raise InvalidInputError(f"silence: no active silence with id {silence_id!r}")
        ended = replace(silence, expires_at=now)
        self._write(ended)
        return ended

    def active(self, now: float) -> Sequence[Silence]:
        return self.list(include_expired=False, now=datetime.fromtimestamp(now, UTC))

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close(autocommit=False)
        if self._producer is not None:
            self._producer.close(timeout=5)

    def _write(self, silence: Silence) -> None:
        with self._translated("write to"):
            if self._producer is None:
                self._producer = KafkaProducer(**client_config(self._settings), acks="all",
                                               enable_idempotence=True)
            self._producer.send(self.source, key=silence.id.encode("utf-8"),
                                value=encode_silence(silence)).get(
                timeout=self._settings.delivery_timeout_seconds + 5)
        self._known[silence.id] = silence

    def _catch_up(self) -> None:
        """Read every record up to the end offsets as they are now."""
        with self._translated("read"):
            consumer = self._reader()
            ends = consumer.end_offsets(self._partitions)
            deadline = time.monotonic() + self._read_timeout_seconds
            while any(consumer.position(tp) < ends[tp] for tp in self._partitions):
                if time.monotonic() > deadline:
                    raise BusError(f"silences: could not read {self.source} to its end within "
                                   f"{self._read_timeout_seconds:g} s")
                for records in consumer.poll(timeout_ms=200).values():
                    for record in records:
                        self._take(record)

    def _reader(self) -> KafkaConsumer:
        if self._consumer is None:
            consumer = topic_reader(self._settings)
            partitions = consumer.partitions_for_topic(self.source)
            if not partitions:
                consumer.close(autocommit=False)
                raise KafkaError(f"no partitions known for {self.source} yet")
            self._partitions = [TopicPartition(self.source, p) for p in sorted(partitions)]
            consumer.assign(self._partitions)
            for tp in self._partitions:
                consumer.seek_to_beginning(tp)
            self._consumer = consumer
        return self._consumer

    def _take(self, record: Any) -> None:
        key = (record.key or b"").decode("utf-8", "replace")
        if record.value is None:  # a tombstone: the silence was deleted from the topic
            self._known.pop(key, None)
            return
        try:
            silence = decode_silence(record.value)
        except InvalidInputError as exc:
            log.warning("silences: %s/%d@%d skipped: %s", self.source, record.partition,
                        record.offset, exc)
            return
        self._known[silence.id] = silence

    def _translated(self, action: str) -> AbstractContextManager[None]:
        return broker_errors_as_bus_errors("silences", action, self.source)

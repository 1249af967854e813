"""Kafka mode's match stage: consume ``monitor.items``, produce ``monitor.matches``, exactly once.

Each batch is one Kafka transaction holding the matches, the dead letters and the consumed
offsets (``send_offsets_to_transaction`` with the consumer's group metadata, KIP-447). Downstream
``read_committed`` consumers see a batch's matches only if its offsets were committed with them,
so a crash anywhere repeats nothing and loses nothing: the broker aborts the open transaction
when the next producer with the same ``transactional_id`` starts, and the group resumes from the
last committed offsets.

Failure modes of :meth:`KafkaMatchStage.run_once`:
- an undecodable record is dead-lettered (original bytes, headers stage/error/time) inside the
  batch's transaction and counted; it never stops the stage;
- a recoverable KafkaError aborts the transaction and rewinds the consumer to the committed
  offsets, so the batch is tried again on the next call (logged as
  :meth:`~monitor.bus.connectivity.BrokerWatch.level_for_failure` says: a broker outage is
  said once per process, a commit refused because the group moved on is a rebalance);
- a fenced producer (another matcher took over the ``transactional_id``) or any other fatal
  producer error raises MonitorError: this process must stop.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaProducer
from kafka.errors import (
    AuthorizationError,
    InvalidProducerEpochError,
    KafkaError,
    ProducerFencedError,
    UnsupportedVersionError,
)
from kafka.structs import OffsetAndMetadata, TopicPartition

from monitor.bus.connectivity import BrokerWatch
from monitor.bus.kafka import client_config, consumer_lag, group_consumer
from monitor.config.settings import KafkaSettings
from monitor.errors import InvalidInputError, MonitorError
from monitor.match.stage import MatchProcessor
from monitor.metrics import Metrics
from monitor.model import decode_item, encode_match

log = logging.getLogger(__name__)

STAGE = "match"
POLL_TIMEOUT_MS = 1000
# Producer errors after which the transactional producer can never be used again.
FATAL_ERRORS = (ProducerFencedError, InvalidProducerEpochError, AuthorizationError,
                UnsupportedVersionError)

Record = Any  # kafka-python's ConsumerRecord namedtuple; it never leaves this module


class _RebalanceLog(ConsumerRebalanceListener):  # type: ignore[misc]
    """One line per assignment and one per revocation (kafka-python calls these on its I/O
    loop; logging does not block it)."""

    def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:
            log.info("match: partitions revoked: %s", _partitions(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        if assigned:
            log.info("match: partitions assigned: %s", _partitions(assigned))


class KafkaMatchStage:
    """``run()`` = while not stopping: ``run_once()``. Not thread-safe: one thread drives it.

    Blocks in ``poll`` for up to a second when idle; commit and abort block until the broker
    answers. Raises MonitorError at start-up when transactions cannot be initialised.
    ``watch`` is the process's broker watch (one of its own when not given).
    """

    def __init__(self, settings: KafkaSettings, processor: MatchProcessor, metrics: Metrics, *,
                 batch_max: int = 200, session_timeout_seconds: float = 45.0,
                 watch: BrokerWatch | None = None) -> None:
        self._settings, self._processor, self._metrics = settings, processor, metrics
        self._watch = watch or BrokerWatch(settings)
        self._healthy = False
        self._consumer = group_consumer(settings, settings.match_group, batch_max=batch_max,
                                        session_timeout_seconds=session_timeout_seconds)
        self._producer = KafkaProducer(
            **client_config(settings), transactional_id=settings.transactional_id,
            enable_idempotence=True,  # explicit: a conflicting setting silently disables it
            acks="all", linger_ms=5, max_block_ms=int(settings.max_block_seconds * 1000),
        )
        try:
            self._producer.init_transactions()  # also aborts a crashed predecessor's transaction
        except KafkaError as exc:
            self._close_quietly()
            raise MonitorError(f"match: cannot start transactions as "
                               f"{settings.transactional_id!r}: {exc}") from exc
        self._consumer.subscribe([settings.items_topic], listener=_RebalanceLog())

    def run_once(self) -> int:
        """Match one batch in one transaction; returns how many records it committed."""
        self._processor.refresh_claims()
        polled = self._consumer.poll(timeout_ms=POLL_TIMEOUT_MS)
        records: list[Record] = [r for batch in polled.values() for r in batch]
        if not records:
            self._healthy = True  # an idle round is a round that went through
            self._update_lag()
            return 0
        try:
            dead = self._transact(records)
        except Exception as exc:  # whatever failed, the transaction is aborted before we go on
            self._abort_and_rewind(records, exc)
            if isinstance(exc, KafkaError):
                return 0
            raise
        self._healthy = True
        self._count_dead(dead)
        self._update_lag()
        return len(records)

    def _transact(self, records: list[Record]) -> list[tuple[Record, str]]:
        """Send matches, dead letters and offsets in one transaction; the dead letters sent."""
        self._producer.begin_transaction()
        dead: list[tuple[Record, str]] = []
        for record in records:
            try:
                item = decode_item(record.value)
            except InvalidInputError as exc:
                self._send_dead_letter(record, str(exc))
                dead.append((record, str(exc)))
                continue
            for match in self._processor.process(item):
                self._producer.send(self._settings.matches_topic,
                                    key=match.claim_id.encode(), value=encode_match(match))
        self._producer.send_offsets_to_transaction(
            _next_offsets(records), self._consumer.group_metadata())
        self._producer.commit_transaction()
        return dead

    def _send_dead_letter(self, record: Record, error: str) -> None:
        headers = [
            ("stage", STAGE.encode()), ("error", error.encode()),
            ("time", datetime.now(UTC).isoformat().replace("+00:00", "Z").encode()),
            ("source", f"{record.topic}/{record.partition}@{record.offset}".encode()),
        ]
        self._producer.send(self._settings.dlq_topic, key=record.key,
                            value=record.value if record.value is not None else b"",
                            headers=headers)

    def _abort_and_rewind(self, records: list[Record], exc: Exception) -> None:
        self._healthy = False
        tid = self._settings.transactional_id
        if isinstance(exc, FATAL_ERRORS):
            raise MonitorError(f"match: producer {tid!r} can no longer write ({exc}); another "
                               f"matcher may use the same transactional_id") from exc
        try:
            self._producer.abort_transaction()
        except KafkaError as abort_exc:  # the producer is in a fatal state
            raise MonitorError(f"match: producer {tid!r} cannot abort its transaction after "
                               f"{exc!r}: {abort_exc}; restart the matcher") from abort_exc
        log.log(self._watch.level_for_failure(exc), "match: batch of %d records aborted and "
                "will be retried: %r", len(records), exc)
        self._rewind(records)

    def _rewind(self, records: list[Record]) -> None:
        """Seek each partition of the batch back to its committed offset."""
        assigned = self._consumer.assignment()
        for tp, first in _first_offsets(records).items():
            if tp not in assigned:  # revoked meanwhile: its new owner starts from committed
                continue
            try:
                committed = self._consumer.committed(tp)
            except KafkaError:
                committed = None
            self._consumer.seek(tp, first if committed is None else committed)

    def _count_dead(self, dead: list[tuple[Record, str]]) -> None:
        for record, error in dead:
            self._metrics.dead_letters.labels(STAGE).inc()
            log.error("match: record %s/%d@%d set aside in %s: %s (%d bytes)", record.topic,
                      record.partition, record.offset, self._settings.dlq_topic, error,
                      len(record.value or b""))

    def _update_lag(self) -> None:
        self._metrics.consumer_lag.labels(STAGE).set(consumer_lag(self._consumer))

    def run(self, stopping: threading.Event) -> None:
        """Match until ``stopping`` is set; returns between batches, never mid-transaction."""
        while not stopping.is_set():
            try:
                self.run_once()
            except MonitorError:
                raise
            except KafkaError as exc:  # e.g. the broker went away during poll
                log.log(self._watch.level_for_failure(exc), "match: kafka error, retrying in 5 s: "
                        "%s", exc)
                stopping.wait(5.0)
            except Exception:  # a bug: the batch was aborted; log it, back off, stay alive
                log.exception("match: batch failed; retrying")
                stopping.wait(5.0)

    def is_ready(self) -> bool:
        return self._healthy and bool(self._consumer.assignment())

    def close(self) -> None:
        self._close_quietly()

    def _close_quietly(self) -> None:
        try:
            self._consumer.close(autocommit=False)
        finally:
            self._producer.close(timeout=5)


def _next_offsets(records: list[Record]) -> dict[TopicPartition, OffsetAndMetadata]:
    offsets: dict[TopicPartition, OffsetAndMetadata] = {}
    for record in records:  # records of one partition arrive in offset order
        offsets[TopicPartition(record.topic, record.partition)] = OffsetAndMetadata(
            record.offset + 1, "", record.leader_epoch if record.leader_epoch is not None else -1)
    return offsets


def _partitions(tps: Any) -> str:
    """``topic [0, 2]`` for a set of TopicPartitions."""
    by_topic: dict[str, list[int]] = {}
    for tp in tps:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return ", ".join(f"{topic} {sorted(parts)}" for topic, parts in sorted(by_topic.items()))


def _first_offsets(records: list[Record]) -> dict[TopicPartition, int]:
    first: dict[TopicPartition, int] = {}
    for record in records:
        first.setdefault(TopicPartition(record.topic, record.partition), record.offset)
    return first

"""Transactions left hanging on a partition, aborted the way Kafka's own tool does (KIP-664).

Seen in the chaos test (2026-11-30): around a broker restart, a shared poller's transaction
left records on ``monitor.feed-state`` without a commit or abort marker, while its transaction
coordinator had no transaction open for that producer (state Empty). The partition's last
stable offset then stays there for ever: every read_committed reader stops at it, and every
poller's state read waited and timed out, minute after minute, until the test gave up. The
broker's transaction timeout does not help (the coordinator does not know the transaction);
Kafka's answer is an admin abort (``kafka-transactions.sh abort``). The pollers do it
themselves, for transactions of their own transactional ids only.

A transaction counts as hanging when a partition's producer state shows it open, the
producer's last write there is older than ``older_than_seconds``, and its transactional id
(``<prefix><partition>``) has no transaction open at the coordinator for that producer id and
epoch. Such a transaction can never commit: aborting it only makes records that were never
committed invisible for good (the poll that wrote them counts as failed, and is done again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from kafka.admin import AbortTransactionSpec, KafkaAdminClient, TransactionState
from kafka.structs import TopicPartition

from monitor.bus.kafka import client_config, topic_reader
from monitor.config.settings import KafkaSettings

log = logging.getLogger(__name__)

# A coordinator in one of these states for the producer's id and epoch still ends the
# transaction itself (commit, abort, or abort at its timeout).
STILL_ENDING = (TransactionState.ONGOING, TransactionState.PREPARE_COMMIT,
                TransactionState.PREPARE_ABORT, TransactionState.PREPARE_EPOCH_FENCE)


def abort_hanging(settings: KafkaSettings, topics: Sequence[str], prefix: str,
                  older_than_seconds: float) -> int:
    """Abort the hanging transactions (see the module doc) of transactional ids starting with
    ``prefix`` on every partition of ``topics``; how many. KafkaError when the broker cannot
    be asked."""
    admin = KafkaAdminClient(**client_config(settings))
    try:
        open_ = _open_transactions(admin, settings, topics, older_than_seconds)
        if not open_:
            return 0
        listed = admin.list_transactions(producer_id_filters=sorted({p.producer_id
                                                                     for _, p in open_}))
        ids = {t.producer_id: t.transactional_id for ts in listed.values() for t in ts
               if t.transactional_id.startswith(prefix)}
        described = admin.describe_transactions(sorted(set(ids.values()))) if ids else {}
        aborted = 0
        for tp, producer in open_:
            tid = ids.get(producer.producer_id)
            if tid is None:
                continue  # not ours (or unknown): left to an operator
            coordinator = described.get(tid)
            if (coordinator is not None and coordinator.state in STILL_ENDING
                    and coordinator.producer_id == producer.producer_id
                    and coordinator.producer_epoch == producer.producer_epoch):
                continue  # its coordinator still ends it
            admin.abort_transaction(AbortTransactionSpec(
                tp, producer.producer_id, producer.producer_epoch, producer.coordinator_epoch))
            aborted += 1
            log.warning("kafka: aborted a hanging transaction of %r on %s-%d (open since offset "
                        "%d, its coordinator says %s): read_committed readers of the partition "
                        "were stuck behind it", tid, tp.topic, tp.partition,
                        producer.current_transaction_start_offset,
                        coordinator.state.value if coordinator is not None else "nothing")
        return aborted
    finally:
        admin.close()


def _open_transactions(admin: KafkaAdminClient, settings: KafkaSettings, topics: Sequence[str],
                       older_than_seconds: float) -> list[tuple[TopicPartition, Any]]:
    reader = topic_reader(settings)
    try:
        partitions = [TopicPartition(topic, p) for topic in topics
                      for p in sorted(reader.partitions_for_topic(topic) or ())]
    finally:
        reader.close()
    if not partitions:
        return []
    oldest_ms = (time.time() - older_than_seconds) * 1000
    return [(tp, producer) for tp, state in admin.describe_producers(partitions).items()
            for producer in state.active_producers
            if producer.current_transaction_start_offset >= 0
            and producer.last_timestamp < oldest_ms]

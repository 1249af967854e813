"""Kafka mode's stage log: :class:`monitor.bus.log.StageLog` on a consumer group and a producer.

- The input topic is consumed in the stage's group: read_committed, manual commits,
  cooperative-sticky assignment. Assignments and revocations are logged once each and handed
  to the stage with the next poll's records (callbacks run on kafka-python's I/O loop, where
  the stage must not work).
- ``transactional_id`` set (the match stage): :meth:`KafkaStageLog.transact` sends outputs,
  dead letters and the consumed offsets in one transaction (``send_offsets_to_transaction``
  with the group's metadata, KIP-447), so read_committed readers see a batch's outputs only
  with its offsets. The broker aborts a crashed predecessor's open transaction when this
  producer initialises; a producer fenced by a newer one raises MonitorError: stop.
  :meth:`KafkaStageLog.begin` starts a step's transaction before the step has its outputs:
  the partitions of the topics the last step wrote to and the step's offsets are added on
  the producer's thread while the stage matches, so ``transact`` is left with the sends and
  the commit (two round trips of five). A group change aborts a transaction begun so: its
  offsets may name a partition this member no longer owns. Every
  wait of a transaction has a deadline (kafka-python 3.0.12 waits without one, and after a
  broker restart some never ended); a transaction that cannot be aborted in time gives its
  producer up, and the next batch starts another with the same id.
- ``fenced_writes`` (the alert stage): :meth:`write` and :meth:`commit` are transactions too,
  each with offsets of the group (the last ones committed, for a write), so the group
  coordinator checks the member's generation before anything becomes visible (KIP-447). A
  member the group dropped without its knowing yet (a frozen process, heartbeats lost around
  a broker restart) cannot write: otherwise its ``pending`` records could land after the
  partition's next owner read the alert log, and the same matches would go out twice under
  two notification ids. The transactional id is new at every start (``<group>-<random>``),
  as Kafka Streams names its producers; the short transaction timeout bounds how long a
  killed process's open transaction holds readers back.
- Neither (tests only): an idempotent producer, acks=all, and plain offset commits.

A write that failed may still have been stored (the broker wrote it, its answer was lost in
an outage): before its records are written again, the partitions are read from the last
acknowledged offset and the records found there (by their ``record-id`` header) are not
written twice. A write that timed out or whose transaction could not be ended leaves a
producer that may never send again (kafka-python 3.0.12 after a broker restart: every later
write timed out for minutes while the consumer and a new producer worked); the next write
starts a new producer first (with the same transactional id, which aborts what the old one
left open).

Every KafkaError becomes a :class:`monitor.errors.BusError` after the consumer is rewound to
the committed offsets (and an open transaction aborted), so the stage's runner retries.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaProducer
from kafka.errors import (
    AuthorizationError,
    InvalidProducerEpochError,
    KafkaError,
    KafkaTimeoutError,
    ProducerFencedError,
    UnsupportedVersionError,
)
from kafka.structs import OffsetAndMetadata, TopicPartition

from monitor.bus.connectivity import BrokerWatch
from monitor.bus.hanging import abort_hanging
from monitor.bus.kafka import (
    add_partitions,
    await_offsets,
    client_config,
    consumer_lag,
    dead_letter_headers,
    end_transaction,
    group_consumer,
    learn_topics,
    read_partitions,
    send_offsets,
    start_offsets,
    topic_reader,
    transaction_deadline_seconds,
    transaction_timeout_seconds,
    written_ends,
)
from monitor.bus.log import DeadLetter, LogName, Output, Polled, Record
from monitor.bus.startup import transient
from monitor.config.settings import KafkaSettings
from monitor.errors import BusError, MonitorError

log = logging.getLogger(__name__)

# Names each output record (Output.id): how a write tried again finds what its failed try stored.
RECORD_ID_HEADER = "record-id"

# A transaction's records wait in the producer until its commit flushes them, so a step's
# records go in one produce request: sent as the producer's thread caught them (linger 0),
# ten items' outputs went in four, each a round trip before the commit could go. Bounds only a
# send that no commit follows, which the stage logs never leave.
TRANSACTION_LINGER_MS = 1000

# Producer errors after which a transactional producer can never be used again.
FATAL_ERRORS = (ProducerFencedError, InvalidProducerEpochError, AuthorizationError,
                UnsupportedVersionError)


def fenced(exc: KafkaError) -> bool:
    """Whether the producer can never commit again: fenced (or not allowed) itself, or
    kafka-python's "previous request failed" / "in an error state" KafkaError around that."""
    causes = (exc, *exc.args)
    return (any(isinstance(cause, FATAL_ERRORS) for cause in causes)
            or any(error.__name__ in str(exc) for error in FATAL_ERRORS))


@dataclass(frozen=True, slots=True)
class _Begun:
    """A step's transaction begun ahead (:meth:`KafkaStageLog.begin`): the offsets queued
    with it and their answer (a kafka-python result)."""

    offsets: dict[TopicPartition, OffsetAndMetadata]
    answer: Any


class _Rebalances(ConsumerRebalanceListener):  # type: ignore[misc]
    """Notes partition changes for the next poll, and says each once."""

    def __init__(self, stage: str) -> None:
        self._stage, self._lock = stage, threading.Lock()
        self._assigned: set[int] = set()
        self._revoked: set[int] = set()

    def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:
            log.info("%s: partitions revoked: %s", self._stage, partitions_text(revoked))
        with self._lock:
            for tp in revoked:
                self._revoked.add(tp.partition)
                self._assigned.discard(tp.partition)

    def on_partitions_assigned(self, assigned: Any) -> None:
        if assigned:
            log.info("%s: partitions assigned: %s", self._stage, partitions_text(assigned))
        with self._lock:
            self._assigned.update(tp.partition for tp in assigned)

    def take(self) -> tuple[frozenset[int], frozenset[int]]:
        """(assigned, revoked) since the last call; a partition lost and won back in between
        counts as both, so the stage forgets its old state before rebuilding it."""
        with self._lock:
            changes = frozenset(self._assigned), frozenset(self._revoked)
            self._assigned, self._revoked = set(), set()
        return changes


class KafkaStageLog:
    """See the module doc. Not thread-safe: one stage thread drives it.

    Blocks in ``poll`` up to its timeout, in ``transact``/``write`` until the broker answers
    (bounded by ``max_block_seconds`` and ``delivery_timeout_seconds``).
    """

    def __init__(self, settings: KafkaSettings, stage: str, source: str, group: str, *,
                 transactional_id: str | None = None, fenced_writes: bool = False,
                 batch_max: int = 200, session_timeout_seconds: float = 45.0,
                 watch: BrokerWatch | None = None) -> None:
        if transactional_id is not None and fenced_writes:
            raise MonitorError(f"{stage}: a transactional log cannot also fence its writes")
        self._settings, self._stage, self.source = settings, stage, source
        self._group, self._batch_max = group, batch_max
        self._deadline = transaction_deadline_seconds(settings)  # for any wait on the broker
        self._watch = watch or BrokerWatch(settings)
        self._topics: dict[LogName, str] = {"items": settings.items_topic,
                                            "matches": settings.matches_topic,
                                            "alerts": settings.alerts_topic,
                                            "features": settings.item_features_topic}
        self._transactional = transactional_id is not None
        self._write_tid = f"{group}-{uuid.uuid4().hex[:12]}" if fenced_writes else None
        self._tid = transactional_id or self._write_tid  # None: a plain idempotent producer
        self._healthy = False
        with ExitStack() as opened:  # a client that fails to open closes the others
            self._consumer = group_consumer(settings, group, batch_max=batch_max,
                                            session_timeout_seconds=session_timeout_seconds)
            opened.callback(self._consumer.close, autocommit=False)
            self._producer = self._new_producer(self._tid)
            opened.callback(self._producer.close, timeout=0)
            self._reader = topic_reader(settings)
            opened.pop_all()
        self._rebalances = _Rebalances(stage)
        # For writes tried again (see the module doc): the offset after the last record
        # acknowledged per (topic, partition), and the ids of a failed write's outputs.
        self._acknowledged: dict[tuple[str, int], int] = {}
        self._unsure: dict[str, tuple[str, int | None]] = {}  # id -> (topic, partition)
        self._stale_producer = False  # a write timed out: start a new producer first
        self._outcome_unknown = False  # a transaction given up: the stage reads its log again
        # fenced_writes: the offset committed last per owned partition (sent again with a
        # write, for the generation check); forgotten when the partition moves.
        self._committed_offsets: dict[int, int] = {}
        # Records polled and not committed yet, per partition (the lag counts them: a step may
        # poll again before it commits, monitor/match/stage.py).
        self._taken: dict[int, int] = {}
        self._unread = self._lag = 0
        self._begun: _Begun | None = None  # a transaction begun ahead of its outputs
        self._written_topics: frozenset[str] = frozenset()  # by the last transaction
        self._consumer.subscribe([source], listener=self._rebalances)

    def _new_producer(self, transactional_id: str | None) -> KafkaProducer:
        settings = self._settings
        common: dict[str, Any] = {
            **client_config(settings), "acks": "all", "linger_ms": 0,
            "enable_idempotence": True,  # explicit: a conflicting setting silently disables it
            "max_block_ms": int(settings.max_block_seconds * 1000)}
        outputs = [*self._topics.values(), settings.dlq_topic]
        if transactional_id is None:
            producer = KafkaProducer(
                **common, delivery_timeout_ms=int(settings.delivery_timeout_seconds * 1000),
                request_timeout_ms=min(10_000,
                                       int(settings.delivery_timeout_seconds * 1000) - 20))
            learn_topics(producer, outputs)
            return producer
        # 20 ms as the Java client retries a transaction's AddPartitions and coordinator
        # lookups: kafka-python's 100 ms default was most of a process's first transaction.
        if transactional_id == self._write_tid:
            common["transaction_timeout_ms"] = int(transaction_timeout_seconds(settings) * 1000)
        producer = KafkaProducer(**{**common, "linger_ms": TRANSACTION_LINGER_MS},
                                 transactional_id=transactional_id, retry_backoff_ms=20)
        try:
            producer.init_transactions()  # also aborts a crashed predecessor's transaction
        except KafkaError as exc:
            producer.close(timeout=5)
            if transient(exc):  # the broker away: waited for by open_when_reachable
                raise
            raise MonitorError(f"{self._stage}: cannot start transactions as "
                               f"{transactional_id!r}: {exc}") from exc
        learn_topics(producer, outputs)
        return producer

    # -- reading ---------------------------------------------------------------------------

    def poll(self, timeout_seconds: float, max_records: int | None = None) -> Polled:
        # At most batch_max, as embedded: kafka-python's max_records overrides it.
        limit = self._batch_max if max_records is None else min(max_records, self._batch_max)
        with self._translated("poll"):
            # Records fetched beyond the limit stay buffered in the consumer for the next poll.
            polled = self._consumer.poll(timeout_ms=max(0, int(timeout_seconds * 1000)),
                                         max_records=limit)
        assigned, revoked = self._rebalances.take()
        if assigned or revoked:  # a begun transaction's offsets may name a lost partition
            self._abort_begun()
        for partition in assigned | revoked:  # its next commit is read from the group again
            self._committed_offsets.pop(partition, None)
            self._taken.pop(partition, None)
        owned = {tp.partition for tp in self._consumer.assignment()}
        if assigned and owned and self._tid is not None and not self._stale_producer:
            self._warm_up()
        if self._outcome_unknown:
            assigned, self._outcome_unknown = assigned | owned, False
        records = [Record(r.partition, r.offset, r.key, r.value or b"")
                   for batch in polled.values() for r in batch if r.partition in owned]
        self._healthy = True  # a round that went through, idle or not
        self._measure_lag(records)
        if records:
            self._fetch_ahead()
        return Polled(records, assigned=assigned, revoked=revoked)

    def _fetch_ahead(self) -> None:
        """Send the next fetch now, so that what comes while the stage works is there for its
        next poll. kafka-python 3.0.12 sends it as the poll returns, but skips it when the
        stage took the last answer before the I/O thread marked that answer in: the fetch
        then went only with the next poll, and the match stage's "one more poll before the
        commit" (monitor/match/stage.py) found nothing, although the rest of a poll's items
        had come 1 ms after the first ones (bench/e2e.py through Kafka: one poll in ten was
        matched in two steps, the second after another model call and commit)."""
        with self._translated("fetch"):
            self._consumer._fetcher.send_fetches()

    def _warm_up(self) -> None:
        """After an assignment, a transaction with an owned partition's committed offset,
        aborted: a producer's first transaction looks up the group's coordinator for its
        offsets (~100 ms here, most of a process's first batch through Kafka), and that is
        paid now rather than by the first items. Nothing is written or committed. Best
        effort: a failure is left to the first real write."""
        try:
            self._in_transaction((), (), self._fence_offsets(), commit=False)
        except KafkaError as exc:
            log.debug("%s: transactions not warmed up: %r", self._stage, exc)

    def read_back(self, log_name: LogName, partitions: Sequence[int] | None) -> list[Record]:
        """Every record committed before the call: up to the high watermark, not to the last
        stable offset where read_committed stops (another matcher's transaction open on the
        partition would hide what was committed after it began, and the match ids read back
        to be written once would miss those)."""
        topic = self._topics[log_name]
        try:
            with self._translated("read back"):
                ends = written_ends(self._settings, topic)
                found = read_partitions(self._reader, topic, partitions, ends=ends)
        except BusError:
            if self._write_tid is not None:  # our group's transaction left hanging?
                self._abort_hanging(topic)
            raise
        return [Record(r.partition, r.offset, r.key, r.value) for r in found]

    def _abort_hanging(self, topic: str) -> None:
        """Abort this group's transactions left hanging on ``topic`` (see
        :mod:`monitor.bus.hanging`: the read stops at one for ever), so the next read gets
        past it. Not covered by a test of its own here: a hanging transaction cannot be made
        with a client (tests/integration/test_hanging_transactions.py tests what is spared)."""
        try:  # each abort is logged as a warning there
            abort_hanging(self._settings, [topic], f"{self._group}-",
                          transaction_timeout_seconds(self._settings) + 10)
        except KafkaError as exc:
            log.debug("%s: hanging transactions not looked for: %r", self._stage, exc)

    def lag(self) -> int:
        """As measured at the last poll (the consumer is the stage thread's alone)."""
        return self._lag

    def _measure_lag(self, records: Sequence[Record]) -> None:
        """Records after the last poll's position, plus those polled and not committed yet
        (as embedded: the source's records after the committed position): from the highwater
        of the last fetch, no extra request to the broker."""
        with self._translated("measure lag"):
            self._unread = consumer_lag(self._consumer)
        for record in records:
            self._taken[record.partition] = self._taken.get(record.partition, 0) + 1
        self._lag = self._unread + sum(self._taken.values())

    # -- writing ---------------------------------------------------------------------------

    def begin(self, consumed: Sequence[Record]) -> None:
        """Transactional: begin the step's transaction now, with every partition of the
        topics the last transaction wrote to and the offsets past ``consumed``; their round
        trips (AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit) go on the producer's
        thread while the stage works, and :meth:`transact` waits for their answer. Best
        effort: a failure here is left to :meth:`transact`, which starts afresh."""
        self._abort_begun()  # one a step left without transact (the runner retried it)
        if not self._transactional or self._stale_producer or not consumed:
            return
        offsets = _next_offsets(self.source, consumed)
        producer = self._producer
        try:
            producer.begin_transaction()
            add_partitions(producer, (TopicPartition(topic, p) for topic in self._written_topics
                                      for p in producer.partitions_for(topic)))
            answer = start_offsets(producer, offsets, self._consumer.group_metadata())
        except KafkaError as exc:
            log.debug("%s: transaction not begun ahead: %r", self._stage, exc)
            self._abort_ahead(producer)
            return
        self._begun = _Begun(offsets, answer)

    def _abort_begun(self) -> None:
        """Abort the transaction :meth:`begin` opened, if one is open (nothing was sent in
        it but offsets)."""
        if self._begun is not None:
            self._begun = None
            self._abort_ahead(self._producer)

    def _abort_ahead(self, producer: KafkaProducer) -> None:
        """Abort a transaction begun ahead, or give its producer up; but a fenced producer
        is kept, so that the next transact says so and stops (a new one would fence the
        process that took over)."""
        try:
            end_transaction(producer, commit=False, deadline_seconds=self._deadline)
        except KafkaError as exc:
            log.debug("%s: transaction begun ahead not aborted: %r", self._stage, exc)
            if not fenced(exc):
                self._give_up_producer()

    def transact(self, consumed: Sequence[Record], outputs: Sequence[Output],
                 dead: Sequence[DeadLetter]) -> None:
        if not self._transactional:
            raise MonitorError(f"{self._stage}: transact needs a transactional_id")
        try:
            if self._stale_producer:
                self._renew_producer()
            self._in_transaction(outputs, dead, _next_offsets(self.source, consumed))
        except KafkaError as exc:
            self._healthy = False
            if fenced(exc):
                raise MonitorError(f"{self._stage}: producer {self._tid!r} can no longer write "
                                   f"({exc}); another process may use the same "
                                   "transactional_id") from exc
            self._rewind(consumed)
            raise BusError(f"{self._stage}: batch of {len(consumed)} record(s) aborted and "
                           f"will be read again: {exc!r}", exc) from exc
        self._healthy = True
        for record in consumed:
            self._taken[record.partition] = max(0, self._taken.get(record.partition, 0) - 1)
        self._lag = self._unread + sum(self._taken.values())

    def write(self, outputs: Sequence[Output], dead: Sequence[DeadLetter] = (),
              positions: Mapping[int, int] | None = None) -> None:
        """Fenced (the alert stage): ``positions`` are the transaction's offsets, so the
        write and the commit are one transaction, checked against the generation once."""
        if self._transactional:
            raise MonitorError(f"{self._stage}: a transactional log writes with transact")
        commit = self._owned_offsets(positions or {})
        with self._translated("write"):
            if self._stale_producer:
                self._renew_producer()
            outputs = self._not_stored_yet(outputs)
            try:
                if self._write_tid is None:
                    futures = self._send(outputs, dead)
                else:
                    futures = self._in_transaction(outputs, dead,
                                                   commit or self._fence_offsets())
                for future in futures:
                    written = future.get(timeout=self._deadline)
                    place = (written.topic, written.partition)
                    self._acknowledged[place] = max(self._acknowledged.get(place, 0),
                                                    written.offset + 1)
            except KafkaError as exc:
                self._unsure.update({o.id: (self._topics[o.log], o.partition)
                                     for o in outputs})
                self._stale_producer |= isinstance(exc, KafkaTimeoutError)
                raise
            if commit and self._write_tid is None:  # tests' plain log: commit after the write
                self._consumer.commit(commit)
        if commit:
            self._note_committed(commit)

    def _in_transaction(self, outputs: Sequence[Output], dead: Sequence[DeadLetter],
                        offsets: Mapping[TopicPartition, OffsetAndMetadata],
                        commit: bool = True) -> list[Any]:
        """Send ``outputs``, ``dead`` and ``offsets`` (checked against the member's generation)
        in one transaction, committed (``commit=False``: aborted); the sends' futures. A
        failed transaction is aborted, or its producer given up (the next write starts
        another)."""
        producer = self._producer
        begun, self._begun = self._begun, None
        try:
            if begun is None:
                producer.begin_transaction()
            elif not _extends(offsets, begun.offsets):  # the stage's bug: stop
                self._aborted(producer)
                raise MonitorError(f"{self._stage}: a transaction begun with offsets "
                                   f"{begun.offsets} cannot commit {offsets}")
            else:  # before any other offsets: kafka-python 3.0.12 keeps those in flight in
                # one dict, and a second answer found its partitions gone (KeyError, no result)
                await_offsets(begun.answer, self._deadline)
            futures = self._send(outputs, dead)
            if begun is None or offsets != begun.offsets:  # records came since begin
                send_offsets(producer, offsets, self._consumer.group_metadata(),
                             deadline_seconds=self._deadline)
            if futures and commit:  # the records, in one request (TRANSACTION_LINGER_MS)
                producer.flush(timeout=self._deadline)
            # ... and a commit may report success with sends that expired unsent (kafka-python
            # 3.0.12, see kafka_poll): the caller reads every future.
            end_transaction(producer, commit=commit, deadline_seconds=self._deadline)
        except KafkaError as exc:
            if fenced(exc):
                if self._write_tid is not None:  # an id of our own: the broker fenced it
                    self._give_up_producer()
            elif not self._aborted(producer):
                self._give_up_producer()
            raise
        return futures

    def _give_up_producer(self) -> None:
        """The transaction may have committed or not: a new producer with the same id ends
        it (init_transactions), now or at the next write, and the next poll hands every owned
        partition back as assigned, so the stage reads its log again before going on."""
        self._stale_producer, self._outcome_unknown = True, True
        try:
            self._renew_producer()
        except KafkaError as exc:  # the broker still away: the next write tries again
            log.debug("%s: new producer not started yet: %r", self._stage, exc)

    def _aborted(self, producer: KafkaProducer) -> bool:
        try:
            end_transaction(producer, commit=False, deadline_seconds=self._deadline)
        except KafkaError as exc:
            log.debug("%s: transaction not aborted: %r", self._stage, exc)
            return False
        return True

    def _fence_offsets(self) -> dict[TopicPartition, OffsetAndMetadata]:
        """Offsets to send with a write: those this member committed last, or (none yet) the
        group's committed offset of one owned partition, else its log start: committing them
        again changes nothing, and the broker checks the generation of the commit. KafkaError
        when nothing is owned: the group took the partitions, and the next poll says so."""
        owned = sorted(self._consumer.assignment(), key=lambda tp: tp.partition)
        if not owned:
            raise KafkaError("the group has given this member no partition (the write waits "
                             "for the group)")
        known = {tp: OffsetAndMetadata(self._committed_offsets[tp.partition], "", -1)
                 for tp in owned if tp.partition in self._committed_offsets}
        if known:
            return known
        tp = owned[0]
        committed = self._consumer.committed(tp, timeout_ms=self._deadline * 1000)
        if committed is None:
            committed = self._consumer.beginning_offsets([tp])[tp]
        self._committed_offsets[tp.partition] = committed
        return {tp: OffsetAndMetadata(committed, "", -1)}

    def _renew_producer(self) -> None:
        """Close the producer whose write timed out or whose transaction could not be ended
        (what it still holds is dropped: the read-back of the next write finds what it
        stored) and start another; with a transactional id, that aborts what the old one
        left open."""
        self._begun = None  # the old producer's: left to the new one's init_transactions
        self._producer.close(timeout=0)
        self._producer = self._new_producer(self._tid)  # a KafkaError: next try
        self._stale_producer = False
        log.info("%s: a write failed in a way its producer may not recover from; writing "
                 "with a new producer", self._stage)

    def _not_stored_yet(self, outputs: Sequence[Output]) -> Sequence[Output]:
        """``outputs`` without those a failed write stored after all. Reads each partition
        that write went to, from the offset after its last acknowledged record to the
        high watermark; a read that fails leaves the question for the next try."""
        if not self._unsure:  # every write but one after a failure
            return outputs
        again = {o.id for o in outputs} & set(self._unsure)
        if not again:
            self._unsure.clear()  # the stage gave those up (their partition moved away)
            return outputs
        places: dict[str, set[int | None]] = {}
        for record_id in again:
            topic, partition = self._unsure[record_id]
            places.setdefault(topic, set()).add(partition)
        stored: set[str] = set()
        for topic, partitions in places.items():
            ends = written_ends(self._settings, topic)
            read = sorted(ends) if None in partitions else sorted(p for p in partitions
                                                                   if p is not None)
            starts = {p: self._acknowledged.get((topic, p), 0) for p in read}
            found = read_partitions(self._reader, topic, read, ends=ends, starts=starts)
            stored.update(r.headers.get(RECORD_ID_HEADER, "") for r in found)
        self._unsure.clear()
        if stored & again:
            log.info("%s: %d of %d record(s) of a failed write were stored after all; "
                     "they are not written again", self._stage, len(stored & again), len(again))
        return [o for o in outputs if o.id not in stored]

    def commit(self, positions: Mapping[int, int]) -> None:
        offsets = self._owned_offsets(positions)
        if offsets:
            with self._translated("commit"):
                if self._write_tid is None:
                    self._consumer.commit(offsets)
                else:
                    if self._stale_producer:
                        self._renew_producer()
                    self._in_transaction((), (), offsets)
        self._note_committed(offsets)

    def _owned_offsets(self, positions: Mapping[int, int]
                       ) -> dict[TopicPartition, OffsetAndMetadata]:
        """``positions`` of the partitions this member owns, as offsets to commit."""
        owned = {tp.partition for tp in self._consumer.assignment()}
        return {TopicPartition(self.source, p): OffsetAndMetadata(o, "", -1)
                for p, o in positions.items() if p in owned}

    def _note_committed(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        self._committed_offsets.update({tp.partition: o.offset for tp, o in offsets.items()})
        self._taken.clear()
        self._lag = self._unread  # what the last poll returned is taken in (or held)

    def _send(self, outputs: Sequence[Output], dead: Sequence[DeadLetter]) -> list[Any]:
        if outputs or dead:  # not a warm-up's: what the next begin adds ahead
            topics = {self._topics[o.log] for o in outputs}
            self._written_topics = frozenset(topics | ({self._settings.dlq_topic} if dead
                                                       else set()))
        futures = [self._producer.send(self._topics[o.log], key=o.key, value=o.value,
                                       partition=o.partition,
                                       headers=[(RECORD_ID_HEADER, o.id.encode("utf-8"))])
                   for o in outputs]
        for letter in dead:
            more = {k: v for k, v in letter.headers.items() if k not in ("stage", "error")}
            futures.append(self._producer.send(
                self._settings.dlq_topic, key=letter.key, value=letter.value,
                headers=dead_letter_headers(letter.stage, letter.error, **more)))
        return futures

    # -- failures --------------------------------------------------------------------------

    def _rewind(self, consumed: Sequence[Record]) -> None:
        """Seek each partition of an aborted batch back to the batch's first record (where
        the group's commit stands: the batch's offsets were part of the transaction).
        Revoked ones are left: their next owner starts from the commit anyway."""
        assigned = self._consumer.assignment()
        first: dict[int, int] = {}
        for record in consumed:
            first.setdefault(record.partition, record.offset)
        for partition, offset in first.items():
            tp = TopicPartition(self.source, partition)
            if tp in assigned:
                self._consumer.seek(tp, offset)
            self._taken.pop(partition, None)  # polled again, or by their next owner

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        try:
            yield
        except KafkaError as exc:
            self._healthy = False
            raise BusError(f"{self._stage}: cannot {action} on Kafka: {exc!r}", exc) from exc

    def failure_level(self, error: BaseException) -> int:
        cause = error.cause if isinstance(error, BusError) else error
        return self._watch.level_for_failure(cause)

    def is_ready(self) -> bool:
        return self._healthy and bool(self._consumer.assignment())

    def close(self) -> None:
        """Leave the group and release the clients."""
        try:
            self._consumer.close(autocommit=False)
            self._reader.close()
        finally:
            self._producer.close(timeout=5)


def _next_offsets(topic: str, records: Sequence[Record]) -> dict[TopicPartition,
                                                                   OffsetAndMetadata]:
    offsets: dict[TopicPartition, OffsetAndMetadata] = {}
    for record in records:  # records of one partition arrive in offset order
        offsets[TopicPartition(topic, record.partition)] = OffsetAndMetadata(
            record.offset + 1, "", -1)
    return offsets


def _extends(offsets: Mapping[TopicPartition, OffsetAndMetadata],
             begun: Mapping[TopicPartition, OffsetAndMetadata]) -> bool:
    """Whether ``offsets`` move every partition of ``begun`` as far or further (sent later
    in the same transaction, they replace those)."""
    return all(tp in offsets and offsets[tp].offset >= o.offset for tp, o in begun.items())


def partitions_text(tps: Any) -> str:
    """``topic [0, 2]`` for a set of TopicPartitions."""
    by_topic: dict[str, list[int]] = {}
    for tp in tps:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return ", ".join(f"{topic} {sorted(parts)}" for topic, parts in sorted(by_topic.items()))

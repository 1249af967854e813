"""Kafka mode's alert stage: ``monitor.matches`` -> silences, routes, groups -> channels, with
``monitor.alerts`` as the record of what was done and ``monitor.dlq`` for what was given up.

Handled once per (match_id, receiver), across restarts and instances, with nothing kept on
local disk (see :mod:`monitor.alerting.alert_log` for the record and
:mod:`monitor.alerting.progress` for the commit rule):

1. **Intake.** Matches are consumed in the group ``kafka.alert_group`` (read_committed). A
   pair already named on the ledger (partition p of ``monitor.alerts``) is skipped; the others
   join their groups and hold partition p's commit back.
2. **Pending.** A due notification is split per source partition; each part is written as a
   ``pending`` record (idempotent producer, acks=all, waited for) before it is sent. Only
   then are its pairs released, so the commit may pass them: from here on the ledger, not
   the matches topic, carries the notification.
3. **Delivery.** A part is sent through the shared core (:mod:`monitor.alerting.core`) and
   its outcome written: ``sent``, or after the last retry a record on ``monitor.dlq``
   (headers stage/error/time/receiver/id) and ``dead``.
4. **Commit** each partition up to its first match still held.

On assignment of partitions, the stage reads those partitions of ``monitor.alerts`` from the
start: handled pairs are skipped from then on, and parts that are ``pending`` without an
outcome (their writer died, or lost the partition, between writing "pending" and the outcome)
are delivered again with the same id, so the same idempotency key. On revocation the
partitions' groups, queued parts and unwritten records are dropped: the next owner rebuilds
them from the two topics. Rebalance callbacks only note the change; it is applied in
``run_once`` after ``poll`` returns, before any record is looked at, so no delivery is in
flight while a partition changes hands.

Windows that can repeat (never lose): a crash between a channel accepting and the outcome
record repeats that part once, with the same idempotency key; a group split by a rebalance
while waiting (``group_wait``) is sent as it stands and the rest follows from the new owner.
A delivery round is bounded (``DELIVERY_ROUND_SECONDS``) so that the stage polls well within
``max.poll.interval.ms`` and keeps its partitions.

A broker outage is said once per process by the :class:`~monitor.bus.connectivity.BrokerWatch`;
the writes it holds back are retried every round and logged at DEBUG meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from monitor.alerting.alert_log import (
    AlertRecord,
    Ledger,
    decode_alert_record,
    encode_alert_record,
)
from monitor.alerting.core import AlertCore, AlertStageConfig, GiveUp, Retry, Sent
from monitor.alerting.grouping import Grouper, Notification
from monitor.alerting.messages import encode_payload
from monitor.alerting.progress import CommitTracker, MemoryOutbox, Pair, PendingAlert
from monitor.alerting.silences import Silence
from monitor.bus.connectivity import BrokerWatch
from monitor.bus.kafka import (
    client_config,
    consumer_lag,
    dead_letter_headers,
    group_consumer,
    read_partitions,
    topic_reader,
)
from monitor.config.settings import KafkaSettings
from monitor.errors import InvalidInputError, MonitorError
from monitor.metrics import Metrics
from monitor.model import Match, decode_match

log = logging.getLogger(__name__)

STAGE = "alert"
MAX_POLL_SECONDS = 1.0
DELIVERY_ROUND_SECONDS = 60.0  # well under max.poll.interval.ms (300 s)

Record = Any  # kafka-python's ConsumerRecord; it never leaves this module
Silences = Callable[[float], Sequence[Silence]]


class _Rebalances(ConsumerRebalanceListener):  # type: ignore[misc]
    """Notes partition changes; the stage applies them between polls (callbacks run on the
    consumer's I/O loop, where blocking would stall heartbeats)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changes: list[tuple[str, set[int]]] = []

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._note("revoked", revoked)

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._note("assigned", assigned)

    def _note(self, kind: str, tps: Any) -> None:
        with self._lock:
            self._changes.append((kind, {tp.partition for tp in tps}))

    def take(self) -> list[tuple[str, set[int]]]:
        with self._lock:
            changes, self._changes = self._changes, []
        return changes


class KafkaAlertStage:
    """``run()`` = while not stopping: ``run_once(clock())``. Not thread-safe.

    Blocks in ``poll`` (up to a second), on every record write (acks=all) and on the channels.
    Raises MonitorError at start-up when ``monitor.alerts`` has fewer partitions than
    ``monitor.matches`` (partition p of one must pair with partition p of the other).
    ``watch`` is the process's broker watch (one of its own when not given).
    """

    def __init__(self, settings: KafkaSettings, core: AlertCore, silences: Silences,
                 metrics: Metrics, *, clock: Callable[[], float] = time.time,
                 batch_max: int = 200, session_timeout_seconds: float = 45.0,
                 watch: BrokerWatch | None = None) -> None:
        self._settings, self._core, self._silences = settings, core, silences
        self._metrics, self._clock = metrics, clock
        self._watch = watch or BrokerWatch(settings)
        self._grouper: Grouper = core.new_grouper()
        self._ledger, self._tracker, self.outbox = Ledger(), CommitTracker(), MemoryOutbox()
        self._unlogged: list[PendingAlert] = []  # parts whose "pending" write failed
        self._unwritten: list[tuple[int, AlertRecord, PendingAlert | None]] = []
        self._claim_partition: dict[str, int] = {}
        self._committed: dict[int, int] = {}
        self._owned: set[int] = set()
        self._rebalances = _Rebalances()
        self._healthy = False
        self._consumer = group_consumer(settings, settings.alert_group, batch_max=batch_max,
                                        session_timeout_seconds=session_timeout_seconds)
        self._producer = KafkaProducer(
            **client_config(settings), acks="all",
            enable_idempotence=True,  # explicit: a conflicting setting silently disables it
            linger_ms=5, max_block_ms=int(settings.max_block_seconds * 1000),
            request_timeout_ms=min(10_000, int(settings.delivery_timeout_seconds * 1000) - 20),
            delivery_timeout_ms=int(settings.delivery_timeout_seconds * 1000))
        self._reader = topic_reader(settings)
        try:
            self._check_partitions()
        except Exception:
            self.close()
            raise
        self._consumer.subscribe([settings.matches_topic], listener=self._rebalances)

    def reload_routes(self, config: AlertStageConfig) -> None:
        self._core.reload(config)

    def _check_partitions(self) -> None:
        counts = {topic: len(self._reader.partitions_for_topic(topic) or ())
                  for topic in (self._settings.matches_topic, self._settings.alerts_topic)}
        if counts[self._settings.alerts_topic] < counts[self._settings.matches_topic]:
            raise MonitorError(f"alert: {self._settings.alerts_topic} has fewer partitions "
                               f"than {self._settings.matches_topic} ({counts}); give it as "
                               "many")

    def run_once(self, now: float) -> int:
        """Poll, take in, write pending parts, deliver, commit; returns how much it did."""
        polled = self._consumer.poll(timeout_ms=self._poll_timeout_ms(now))
        self._apply_rebalances(now)
        records = self._owned_records(polled)
        self._write_outcomes()
        done = self._intake(records, now) + self._enqueue_due(now) + self._deliver_due(now)
        self._write_outcomes()
        self._commit()
        self._healthy = True
        self._update_gauges(now)
        return done

    # -- partitions ----------------------------------------------------------------------------

    def _apply_rebalances(self, now: float) -> None:
        for kind, partitions in self._rebalances.take():
            if kind == "revoked":
                self._revoke(partitions & self._owned)
            else:
                self._assign(partitions - self._owned, now)  # a kept partition keeps its state

    def _revoke(self, partitions: set[int]) -> None:
        for partition in sorted(partitions):
            self._forget(partition)
            self._owned.discard(partition)
        if partitions:
            log.info("alert: partitions revoked: %s %s", self._settings.matches_topic,
                     sorted(partitions))

    def _assign(self, partitions: set[int], now: float) -> None:
        read_back = 0
        for partition in sorted(partitions):
            read_back += self._rebuild(partition, now)
            self._owned.add(partition)
        if partitions:
            log.info("alert: partitions assigned: %s %s; %d record(s) of %s read back",
                     self._settings.matches_topic, sorted(partitions), read_back,
                     self._settings.alerts_topic)

    def _owned_records(self, polled: dict[Any, list[Record]]) -> list[Record]:
        """Records of partitions whose ledger is read; any other assigned partition is sought
        back, to be taken in once it is (kafka-python reports assignments before fetching,
        so this is a safeguard), and revoked partitions' records are left to their owner."""
        assigned = self._consumer.assignment()
        records = []
        for tp, batch in polled.items():
            if tp.partition in self._owned and tp in assigned:
                records.extend(batch)
            elif tp in assigned and batch:
                self._consumer.seek(tp, batch[0].offset)
        return records

    def _forget(self, partition: int) -> None:
        pairs = self._tracker.forget(partition)
        dropped = self._grouper.drop(pairs)
        queued = self.outbox.forget(partition)
        self._unlogged = [p for p in self._unlogged if p.partition != partition]
        self._unwritten = [w for w in self._unwritten if w[0] != partition]
        self._ledger.forget(partition)
        self._committed.pop(partition, None)
        if dropped or queued:
            log.info("alert: partition %d moved away; its %d grouped match(es) and %d queued "
                     "notification(s) go to its next owner", partition, dropped, queued)

    def _rebuild(self, partition: int, now: float) -> int:
        """Read the partition's ledger back and queue its parts in doubt; records read."""
        records = read_partitions(self._reader, self._settings.alerts_topic, [partition])
        for record in records:
            try:
                self._ledger.apply(partition, decode_alert_record(record.value))
            except InvalidInputError as exc:
                log.error("alert: %s/%d@%d unreadable, ignored: %s", self._settings.alerts_topic,
                          partition, record.offset, exc)
        for pending in self._ledger.in_doubt(partition):
            self.outbox.add(PendingAlert(pending.id, pending.receiver, pending.payload or b"",
                                         partition, pending.claim_ids, pending.match_ids,
                                         pending.at, now))
            log.warning("alert: %s to %s was pending when its last owner stopped; sending it "
                        "again with the same id", pending.id, pending.receiver,
                        extra={"receiver": pending.receiver})
        return len(records)

    # -- 1. intake -----------------------------------------------------------------------------

    def _intake(self, records: list[Record], now: float) -> int:
        if not records:
            return 0
        claims = self._core.claims()
        silences = self._silences(now)
        for record in records:
            try:
                match = decode_match(record.value or b"")
            except InvalidInputError as exc:
                self._dead_letter_record(record, str(exc))
                self._tracker.consumed(record.partition, record.offset, ())
                continue
            self._claim_partition[match.claim_id] = record.partition
            held = self._take(match, record.partition, claims.get(match.claim_id), silences, now)
            self._tracker.consumed(record.partition, record.offset, held)
        return len(records)

    def _take(self, match: Match, partition: int, claim: Any, silences: Sequence[Silence],
              now: float) -> list[Pair]:
        held = []
        for routed in self._core.destinations(match, claim, silences, now):
            if self._ledger.handled(partition, match.match_id, routed.receiver):
                continue
            if self._grouper.add(match, routed, now):
                held.append((match.match_id, routed.receiver))
        return held

    def _dead_letter_record(self, record: Record, error: str) -> None:
        headers = dead_letter_headers(STAGE, error, source=f"{record.topic}/{record.partition}"
                                                           f"@{record.offset}")
        self._producer.send(self._settings.dlq_topic, key=record.key, value=record.value or b"",
                            headers=headers).get(timeout=self._wait_seconds())
        self._metrics.dead_letters.labels(STAGE).inc()
        log.error("alert: record %s/%d@%d set aside in %s: %s", record.topic, record.partition,
                  record.offset, self._settings.dlq_topic, error)

    # -- 2. pending ----------------------------------------------------------------------------

    def _enqueue_due(self, now: float) -> int:
        due = self._core.due(self._grouper, now)
        for notification in due:
            self._grouper.mark_sent(notification, now)
            self._unlogged.extend(self._parts(notification, now))
        self._log_pending()
        return len(due)

    def _parts(self, notification: Notification, now: float) -> list[PendingAlert]:
        by_partition: dict[int, list[Match]] = {}
        for match in notification.matches:
            by_partition.setdefault(self._claim_partition[match.claim_id], []).append(match)
        parts = []
        for partition, matches in sorted(by_partition.items()):
            part_id = notification.notification_id + (
                "" if len(by_partition) == 1 else f"-p{partition}")
            part = Notification(notification.key, notification.receiver, tuple(matches),
                                notification.first)
            parts.append(PendingAlert(
                part_id, notification.receiver, encode_payload(part), partition,
                tuple(sorted({m.claim_id for m in matches})), part.match_ids, now, now))
        return parts

    def _log_pending(self) -> None:
        """Write every unlogged part as "pending"; a part is queued only once written."""
        if not self._unlogged:
            return
        writes = [(part, _pending_record(part)) for part in self._unlogged]
        try:
            self._write([(part.partition, record) for part, record in writes])
        except KafkaError as exc:
            self._healthy = False
            log.log(self._watch.level_for_failure(exc), "alert: %d notification(s) not yet "
                    "recorded on %s (%s); retrying", len(writes), self._settings.alerts_topic,
                    exc)
            return
        self._unlogged = []
        for part, record in writes:
            self._ledger.apply(part.partition, record)
            self.outbox.add(part)
            self._tracker.release((m, part.receiver) for m in part.match_ids)

    # -- 3. delivery ---------------------------------------------------------------------------

    def _deliver_due(self, now: float) -> int:
        started = time.monotonic()
        entries = self.outbox.due(now)
        for entry in entries:
            if time.monotonic() - started > DELIVERY_ROUND_SECONDS:
                break  # poll again first: the group must not think this member died
            self._deliver(entry, now)
        return len(entries)

    def _deliver(self, entry: PendingAlert, now: float) -> None:
        outcome = self._core.attempt(entry, now)
        if isinstance(outcome, Retry):
            self.outbox.retry(entry, now + outcome.delay_seconds)
            return
        self.outbox.remove(entry.id)
        pending = _pending_record(entry)
        if isinstance(outcome, Sent):
            record = pending.outcome("sent", now, entry.attempts + 1, outcome.detail)
            self._unwritten.append((entry.partition, record, None))
        elif isinstance(outcome, GiveUp):
            record = pending.outcome("dead", now, entry.attempts + 1, outcome.error)
            self._unwritten.append((entry.partition, record, entry))

    def _write_outcomes(self) -> None:
        """Write the outcomes not yet on the topics: dead letters first, then the record."""
        if not self._unwritten:
            return
        try:
            for _partition, record, dead in self._unwritten:
                if dead is not None:
                    self._send_dead_letter(dead, record)
            self._write([(partition, record) for partition, record, _ in self._unwritten])
        except KafkaError as exc:
            self._healthy = False
            log.log(self._watch.level_for_failure(exc), "alert: %d outcome(s) not yet recorded "
                    "(%s); retrying", len(self._unwritten), exc)
            return
        for partition, record, _ in self._unwritten:
            self._ledger.apply(partition, record)
        self._unwritten = []

    def _send_dead_letter(self, entry: PendingAlert, record: AlertRecord) -> None:
        headers = dead_letter_headers(STAGE, record.detail, receiver=entry.receiver,
                                      id=entry.id, partition=str(entry.partition),
                                      attempts=str(record.attempts))
        self._producer.send(self._settings.dlq_topic, key=entry.id.encode(),
                            value=entry.payload, headers=headers
                            ).get(timeout=self._wait_seconds())

    def _write(self, writes: list[tuple[int, AlertRecord]]) -> None:
        """Write records to ``monitor.alerts`` and wait for every acknowledgement."""
        futures = [self._producer.send(self._settings.alerts_topic, key=record.key,
                                       value=encode_alert_record(record), partition=partition)
                   for partition, record in writes]
        for future in futures:
            future.get(timeout=self._wait_seconds())

    # -- 4. commit, gauges, loop ---------------------------------------------------------------

    def _commit(self) -> None:
        assigned = {tp.partition for tp in self._consumer.assignment()}
        changed = {p: o for p, o in self._tracker.positions().items()
                   if p in assigned and self._committed.get(p) != o}
        if not changed:
            return
        topic = self._settings.matches_topic
        self._consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1)
                               for p, o in changed.items()})
        self._committed.update(changed)

    def _update_gauges(self, now: float) -> None:
        self._metrics.alert_outbox_size.set(self.outbox.size())
        self._metrics.alert_oldest_pending_age.set(self.outbox.oldest_pending_age(now))
        self._metrics.consumer_lag.labels(STAGE).set(consumer_lag(self._consumer))

    def next_wakeup(self) -> float | None:
        times = [t for t in (self._grouper.next_wakeup(), self.outbox.next_attempt_at())
                 if t is not None]
        return min(times, default=None)

    def _poll_timeout_ms(self, now: float) -> int:
        if self._unlogged or self._unwritten:
            return 100
        wakeup = self.next_wakeup()
        wait = MAX_POLL_SECONDS if wakeup is None else min(MAX_POLL_SECONDS, wakeup - now)
        return max(0, int(wait * 1000))

    def _wait_seconds(self) -> float:
        return self._settings.delivery_timeout_seconds + 5

    def idle(self) -> bool:
        """Nothing grouped, queued or unwritten, and no lag (``--once``, tests)."""
        return (self._grouper.pending_count() == 0 and self.outbox.size() == 0
                and not self._unlogged and not self._unwritten
                and self._tracker.held_count() == 0)

    def run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                self.run_once(self._clock())
            except MonitorError:
                raise
            except KafkaError as exc:  # e.g. the broker went away during poll or commit
                self._healthy = False
                log.log(self._watch.level_for_failure(exc), "alert: kafka error, retrying in 5 s: "
                        "%s", exc)
                stopping.wait(5.0)
            except Exception:  # a bug: log it, back off, keep the stage alive
                self._healthy = False
                log.exception("alert: step failed; retrying")
                stopping.wait(5.0)

    def is_ready(self) -> bool:
        """The last round went through and the stage owns partitions with their ledger read."""
        return self._healthy and bool(self._owned)

    def close(self) -> None:
        """Leave the group and release clients and channels; call after ``run`` returns."""
        try:
            self._consumer.close(autocommit=False)
            self._reader.close()
        finally:
            self._producer.close(timeout=5)
            self._core.close()


def _pending_record(part: PendingAlert) -> AlertRecord:
    return AlertRecord("pending", part.id, part.receiver, part.claim_ids, part.match_ids,
                       part.created_at, 0, "", part.payload)

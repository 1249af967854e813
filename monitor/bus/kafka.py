"""Kafka mode's plumbing: clients, topics, reading a topic back, and the item publisher.

Items go to ``monitor.items`` keyed by item_id through an idempotent producer with acks=all, so
an acknowledged item is on every in-sync replica and a retried send is not written twice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from kafka.structs import TopicPartition

from monitor.bus import PublishReport
from monitor.clock import SYSTEM_CLOCK, Clock
from monitor.config.settings import KafkaSettings
from monitor.errors import BusError, MonitorError
from monitor.model import Item, encoded_items

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


def item_topics(settings: KafkaSettings) -> list[TopicSpec]:
    week_ms, month_ms = str(7 * 24 * 3600 * 1000), str(30 * 24 * 3600 * 1000)
    return [
        TopicSpec(settings.items_topic, settings.topic_partitions, {"retention.ms": week_ms}),
        TopicSpec(settings.matches_topic, settings.topic_partitions, {"retention.ms": week_ms}),
        TopicSpec(settings.dlq_topic, 1, {"retention.ms": month_ms}),
        # Partition p of alerts records what was done with partition p of matches.
        TopicSpec(settings.alerts_topic, settings.topic_partitions, {"retention.ms": month_ms}),
        silence_topic(settings),
        # Each item's match features (monitor/match/features.py), latest version per item.
        TopicSpec(settings.item_features_topic, settings.topic_partitions,
                  {"cleanup.policy": "compact"}),
    ]


def silence_topic(settings: KafkaSettings) -> TopicSpec:
    """Compacted, keyed by silence id; every alerter reads all of it (one partition is plenty)."""
    return TopicSpec(settings.silences_topic, 1, {"cleanup.policy": "compact"})


def poll_topics(settings: KafkaSettings) -> list[TopicSpec]:
    """The topics of pollers that share the feeds (``poll.shared``)."""
    return [
        TopicSpec(settings.poll_control_topic, settings.poll_control_partitions),
        TopicSpec(settings.feed_state_topic, 1, {"cleanup.policy": "compact"}),
    ]


def check_paired_partitions(settings: KafkaSettings) -> None:
    """MonitorError when ``monitor.alerts`` has fewer partitions than ``monitor.matches``: the
    alert stage records what it did with partition p of one on partition p of the other."""
    reader = topic_reader(settings)
    try:
        counts = {topic: len(reader.partitions_for_topic(topic) or ())
                  for topic in (settings.matches_topic, settings.alerts_topic)}
    finally:
        reader.close()
    if counts[settings.alerts_topic] < counts[settings.matches_topic]:
        raise MonitorError(f"alert: {settings.alerts_topic} has fewer partitions than "
                           f"{settings.matches_topic} ({counts}); give it as many")


def warn_if_checksums_in_python() -> bool:
    """Say so when kafka-python computes record checksums in pure Python: without the crc32c
    package (the ``kafka-python[crc32c]`` extra this project depends on) every batch written
    and every batch fetched costs ~6 ms of CPU a 20 KB, on each stage's critical path (p95
    end to end through Kafka 336-634 -> 207-386 ms with it, bench/README.md). True when the
    C checksum is in use."""
    from kafka.record import util

    if util.crc32c_c is not None:
        return True
    log.warning("kafka: the crc32c package is missing, so kafka-python checks and writes "
                "record checksums in pure Python (~6 ms of CPU per 20 KB, on every batch); "
                "install the monitor with its dependencies (kafka-python[crc32c])")
    return False


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


def ensure_topics(settings: KafkaSettings, topics: Sequence[TopicSpec], *,
                  clock: Clock = SYSTEM_CLOCK) -> None:
    """Create missing topics, waiting up to ``startup_timeout_seconds`` for a broker."""
    deadline = clock.monotonic() + settings.startup_timeout_seconds
    servers = ",".join(settings.bootstrap_servers)
    while True:
        try:
            admin = KafkaAdminClient(
                **client_config(settings), request_timeout_ms=10_000, bootstrap_timeout_ms=5_000
            )
            break
        except KafkaError as exc:
            if clock.monotonic() > deadline:
                raise MonitorError(
                    f"kafka: no broker reachable at {servers} after "
                    f"{settings.startup_timeout_seconds:g} s ({type(exc).__name__})"
                ) from exc
            clock.sleep(1.0)
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


@dataclass(frozen=True, slots=True)
class TopicRecord:
    """One record read back, without kafka-python's types."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]


# How long the broker may hold a stage's fetch when nothing is there to read (kafka-python's
# default, set here because it was once shorter). The broker answers as soon as a commit makes
# records readable, so a longer wait costs no latency, and each empty fetch costs the process
# CPU and interpreter time its stages then wait for. bench/e2e.py through Kafka, one process,
# alternated 2026-12-01: 100 ms gave p95 374-449 ms, 500 ms 214-330 ms (alert intake p50 37-56
# -> 20-29 ms); no batch waited out a fetch in ~100 batches. (100 ms dated from before the
# record checksums were computed in C, when about one batch in ten came 100-500 ms late.)
FETCH_WAIT_MS = 500


def group_consumer(settings: KafkaSettings, group_id: str, *, batch_max: int,
                   session_timeout_seconds: float) -> KafkaConsumer:
    """A stage's consumer: read_committed, manual commits, cooperative-sticky assignment."""
    session_ms = int(session_timeout_seconds * 1000)
    return KafkaConsumer(
        **client_config(settings), group_id=group_id, isolation_level="read_committed",
        fetch_max_wait_ms=FETCH_WAIT_MS,
        enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=batch_max,
        partition_assignment_strategy=[CooperativeStickyAssignor],
        session_timeout_ms=session_ms, heartbeat_interval_ms=min(3000, session_ms // 3))


def consumer_lag(consumer: KafkaConsumer) -> int:
    """Records waiting in the assigned partitions, from the highwater of the last fetch (no
    extra request to the broker)."""
    lag = 0
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        position = consumer.position(tp, timeout_ms=1000)
        if highwater is not None and position is not None:
            lag += max(0, highwater - position)
    return lag


def topic_reader(settings: KafkaSettings, *,
                 isolation_level: str = "read_committed") -> KafkaConsumer:
    """A group-less consumer for :func:`read_partitions`; close it after."""
    return KafkaConsumer(**client_config(settings), group_id=None, enable_auto_commit=False,
                         isolation_level=isolation_level, auto_offset_reset="earliest")


def written_ends(settings: KafkaSettings, topic: str) -> dict[int, int]:
    """Each partition's high watermark: the offset after every record written so far,
    committed or not (a record of a transaction still open included)."""
    reader = topic_reader(settings, isolation_level="read_uncommitted")
    try:
        tps = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())]
        return {tp.partition: offset for tp, offset in reader.end_offsets(tps).items()}
    finally:
        reader.close()


def read_partitions(reader: KafkaConsumer, topic: str, partitions: Sequence[int] | None = None,
                    *, ends: Mapping[int, int] | None = None,
                    starts: Mapping[int, int] | None = None,
                    timeout_seconds: float = 60.0) -> list[TopicRecord]:
    """Every committed record of ``topic`` (all partitions when None), from the start (or
    ``starts``, partition -> offset) up to ``ends`` (partition -> offset) or, without, up to
    the end as it was when called. BusError when the end is not reached in time.

    A read_committed reader's own end is the last stable offset, the first record of the
    oldest transaction still open: what other transactions committed after that one began
    lies beyond it and is not read. With ``ends`` from :func:`written_ends`, every record
    committed before the call is read, once the transactions open at the call have ended.
    """
    if partitions is None:
        partitions = (sorted(ends) if ends is not None
                      else sorted(reader.partitions_for_topic(topic) or ()))
    tps = [TopicPartition(topic, p) for p in partitions]
    reader.assign(tps)
    if not tps:
        return []
    ends_of = ({tp: ends[tp.partition] for tp in tps} if ends is not None
               else reader.end_offsets(tps))
    firsts = reader.beginning_offsets(tps)
    starts_of = {tp: max(firsts[tp], (starts or {}).get(tp.partition, 0)) for tp in tps}
    for tp in tps:
        reader.seek(tp, starts_of[tp])
    remaining = {tp for tp in tps if ends_of[tp] > starts_of[tp]}
    found: list[TopicRecord] = []
    deadline = time.monotonic() + timeout_seconds
    while remaining:
        if time.monotonic() > deadline:
            raise BusError(f"kafka: could not read {topic} to its end within "
                           f"{timeout_seconds:g} s")  # a transaction open that long: retried
        for tp, records in reader.poll(timeout_ms=200).items():
            found.extend(_topic_record(r) for r in records if r.offset < ends_of[tp])
        remaining = {tp for tp in remaining if reader.position(tp) < ends_of[tp]}
    return found


def _topic_record(record: Any) -> TopicRecord:
    headers = {name: (value or b"").decode("utf-8", "replace")
               for name, value in record.headers or ()}
    return TopicRecord(record.partition, record.offset, record.key, record.value or b"",
                       headers)


@contextmanager
def broker_errors_as_bus_errors(role: str, action: str, topic: str) -> Iterator[None]:
    """A KafkaError inside becomes a BusError naming what failed ("desk: cannot read
    monitor.matches: ..."): the runner retries a BusError, and says what was being done."""
    try:
        yield
    except KafkaError as exc:
        raise BusError(f"{role}: cannot {action} {topic}: {exc!r}", exc) from exc


def dead_letter_headers(stage: str, error: str, **more: str) -> list[tuple[str, bytes]]:
    """The headers of a record on monitor.dlq: stage, error, time (UTC ISO-8601), and more."""
    moment = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    fields = {"stage": stage, "error": error, "time": moment, **more}
    return [(name, value.encode("utf-8")) for name, value in fields.items()]


def learn_topics(producer: KafkaProducer, topics: Iterable[str]) -> None:
    """Fetch the partitions and leaders of the topics ``producer`` will write to, now rather
    than at its first send: a process's first items or matches would otherwise wait for it
    (~0.1-0.4 s in bench/e2e.py through Kafka). Blocks up to the producer's ``max_block_ms``;
    a broker that does not answer is left to the first send, which waits for it anyway."""
    for topic in topics:
        try:
            producer.partitions_for(topic)
        except KafkaError as exc:
            log.info("kafka: metadata of %s not fetched ahead (the first send will): %r",
                     topic, exc)
            return


def transaction_timeout_seconds(settings: KafkaSettings) -> float:
    """A transaction left open (its process frozen or its abort failed) holds back every
    read_committed reader of its partitions until the broker aborts it: not for
    kafka-python's default minute, but soon after its sends would have expired anyway."""
    return settings.delivery_timeout_seconds + 10


def transaction_deadline_seconds(settings: KafkaSettings) -> float:
    """How long a transaction's commit, abort or offsets may take before its producer is
    given up: a little longer than its sends may take."""
    return settings.delivery_timeout_seconds + 5


def end_transaction(producer: KafkaProducer, *, commit: bool, deadline_seconds: float) -> None:
    """``commit_transaction``/``abort_transaction`` with a deadline. kafka-python waits for
    them without one, and its sender thread can die in a transaction (seen after a broker
    restart: "Invalid transition attempted from state READY to state READY"), which left the
    caller waiting for ever. KafkaTimeoutError on the deadline: the caller gives the producer
    up, and its successor's init_transactions completes or aborts what it left open. Uses
    kafka-python 3's internals (pinned < 4)."""
    manager = producer._transaction_manager
    result = manager.begin_commit() if commit else manager.begin_abort()
    producer._sender.wakeup()
    if not result.wait(timeout_ms=deadline_seconds * 1000):  # raises the broker's error, if any
        raise KafkaTimeoutError(f"transaction {'commit' if commit else 'abort'} not finished "
                                f"in {deadline_seconds:g} s")


def send_offsets(producer: KafkaProducer, offsets: Mapping[TopicPartition, Any],
                 group_metadata: Any, *, deadline_seconds: float) -> None:
    """``send_offsets_to_transaction`` with a deadline, for the reason of
    :func:`end_transaction` (kafka-python waits for it without one: a chaos run's alerters
    hung there for good after a broker restart, no error, no log line)."""
    await_offsets(start_offsets(producer, offsets, group_metadata), deadline_seconds)


def start_offsets(producer: KafkaProducer, offsets: Mapping[TopicPartition, Any],
                  group_metadata: Any) -> Any:
    """Queue the offsets for the open transaction and return at once (their round trips go
    on the producer's thread); :func:`await_offsets` waits for the answer."""
    result = producer._transaction_manager.send_offsets_to_transaction(dict(offsets),
                                                                       group_metadata)
    producer._sender.wakeup()
    return result


def await_offsets(result: Any, deadline_seconds: float) -> None:
    """Wait for :func:`start_offsets`' answer: the broker's error raised, KafkaTimeoutError
    on the deadline."""
    if not result.wait(timeout_ms=deadline_seconds * 1000):  # raises the broker's error, if any
        raise KafkaTimeoutError(f"offsets not added to the transaction in {deadline_seconds:g} s")


def add_partitions(producer: KafkaProducer, partitions: Iterable[TopicPartition]) -> None:
    """Add ``partitions`` to the open transaction now, before anything is sent to them (one
    AddPartitionsToTxn round trip on the producer's thread, instead of one before the
    first send)."""
    manager = producer._transaction_manager
    for tp in partitions:
        manager.maybe_add_partition_to_transaction(tp)
    producer._sender.wakeup()


PUBLISH_LINGER_MS = 1000  # see KafkaItemPublisher


class KafkaItemPublisher:
    """ItemPublisher on Kafka. Thread-safe (kafka-python's producer is).

    A send the producer gave up on may still have been stored: a batch sent just before its
    delivery timeout, stored by a broker that was coming back, is expired by the client all
    the same (and the producer's epoch bumped, so idempotence cannot drop the new copy). So an
    item whose send failed is looked for on the topic, from the failed attempt's time on,
    before it is sent again; found, it counts as acknowledged and is not sent twice.
    """

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        delivery_ms = int(settings.delivery_timeout_seconds * 1000)
        request_ms = min(10_000, delivery_ms - 20)
        self._producer = KafkaProducer(
            **client_config(settings),
            acks="all",
            enable_idempotence=True,  # explicit: a conflicting setting silently disables it
            # A poll's items go in one request, so a reader gets them in one fetch and the
            # match stage in one step (every publish that sent ends with a flush): 2 ms split
            # ten of them whenever the poll thread waited for the GIL mid-loop, and 20 ms still
            # split one poll in ten in bench/e2e.py through Kafka (a loop slowed by the model's
            # threads; the rest waited for a second step). Nothing waits for the linger; the
            # client wants it within the delivery timeout, with the request's.
            linger_ms=min(PUBLISH_LINGER_MS, delivery_ms - request_ms),
            compression_type=None,
            max_block_ms=int(settings.max_block_seconds * 1000),
            request_timeout_ms=request_ms,
            delivery_timeout_ms=delivery_ms,
        )
        learn_topics(self._producer, [settings.items_topic])
        self._healthy = True
        self._unsure = FailedSends()

    def publish(self, items: Sequence[Item], payloads: Sequence[bytes] = ()) -> PublishReport:
        began_ms = int(time.time() * 1000)
        try:
            stored = self._stored_after_failure(items)
        except (KafkaError, BusError) as exc:  # the broker still away: nothing is sent now
            self._healthy = False
            return PublishReport((), f"kafka: {self._settings.items_topic} not read back after "
                                     f"a failed send: {exc!r}")
        pending: list[tuple[Item, Any]] = []
        failure: str | None = None
        values = encoded_items(items, payloads)
        for item, value in zip(items, values, strict=True):
            if item in stored:
                continue
            try:
                future = self._producer.send(
                    self._settings.items_topic, key=item.item_id.encode(), value=value)
            except KafkaError as exc:  # metadata or buffer space unavailable within max_block
                failure = f"kafka: send to {self._settings.items_topic} failed: {exc}"
                break
            pending.append((item, future))
        if pending:  # sends now, not after linger_ms; a timeout: each send's outcome is below
            with suppress(KafkaError):
                self._producer.flush(timeout=self._settings.delivery_timeout_seconds + 5)
        acknowledged, failure = self._await(pending, failure)
        if failure is not None:
            done = set(acknowledged)
            self._unsure.remember([i for i in items if i not in done and i not in stored],
                                  began_ms)
        self._healthy = failure is None
        return PublishReport((*stored, *acknowledged), failure)

    def _stored_after_failure(self, items: Sequence[Item]) -> list[Item]:
        """Those of ``items`` a failed attempt stored after all (read from the topic since
        that attempt began); forgets them as unsure. Nothing to read in the common case."""
        since = self._unsure.earliest(items)
        if since is None:  # no send of these failed: every publish but those after a failure
            return []
        reader = topic_reader(self._settings, isolation_level="read_uncommitted")
        try:
            topic = self._settings.items_topic
            tps = [TopicPartition(topic, p)
                   for p in sorted(reader.partitions_for_topic(topic) or ())]
            ends = {tp.partition: o for tp, o in reader.end_offsets(tps).items()}
            found = reader.offsets_for_times({tp: since for tp in tps})
            starts = {tp.partition: (at.offset if at is not None else ends[tp.partition])
                      for tp, at in found.items()}
            records = read_partitions(reader, topic, ends=ends, starts=starts)
        finally:
            reader.close()
        on_topic = {_identity_of_record(r) for r in records}
        stored = [item for item in items if _identity(item) in on_topic]
        self._unsure.forget(items)  # read back: either found, or sent again now
        if stored:
            log.info("kafka: %d item(s) of a failed send were stored after all; not sent "
                     "again", len(stored))
        return stored

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


class FailedSends:
    """Items whose send failed, by (item id, content hash), with the time (ms) the first
    failed attempt began. Thread-safe.

    An entry is settled when its item is published again (the poller retries a feed whose
    publish failed within the backoff cap, an hour). One still unsettled after ``horizon_ms``
    belongs to an item its feed no longer lists, which will not be sent again: it is dropped
    at the next failure, so that the memory stays bounded whatever the outages."""

    def __init__(self, horizon_ms: int = 24 * 3600 * 1000) -> None:
        self._horizon_ms = horizon_ms
        self._lock = threading.Lock()
        self._began: dict[tuple[str, str], int] = {}

    def __len__(self) -> int:
        return len(self._began)

    def remember(self, items: Iterable[Item], began_ms: int) -> None:
        with self._lock:
            oldest = began_ms - self._horizon_ms
            self._began = {k: at for k, at in self._began.items() if at >= oldest}
            for item in items:
                self._began.setdefault(_identity(item), began_ms)

    def earliest(self, items: Iterable[Item]) -> int | None:
        """When the earliest failed send of any of ``items`` began; None if none failed."""
        if not self._began:  # the common case: no send has failed, no lock taken
            return None
        with self._lock:
            times = [self._began[k] for k in map(_identity, items) if k in self._began]
        return min(times) if times else None

    def forget(self, items: Iterable[Item]) -> None:
        with self._lock:
            for item in items:
                self._began.pop(_identity(item), None)


def _identity(item: Item) -> tuple[str, str]:
    return item.item_id, item.content_hash


def _identity_of_record(record: TopicRecord) -> tuple[str, str]:
    """(item id, content hash) of an item record; an unreadable one matches nothing."""
    try:
        value = json.loads(record.value)
        return (record.key or b"").decode("utf-8"), str(value.get("content_hash"))
    except (ValueError, AttributeError):
        return "", ""

"""Shared pollers' writes: a poll's items and its feed's state record in one Kafka transaction.

Every feed belongs to one partition of the poll group's control topic
(:func:`control_partition`), and every control partition has its own transactional id,
``<poll_group>-<partition>``: the poller that owns the partition owns the producer. When the
group moves a partition to another poller, the new owner's ``init_transactions`` bumps the
id's epoch before it reads the feeds' state: the broker aborts the old owner's open
transaction (its items never become visible to read_committed readers) and fences its
producer, so the old owner can no longer commit anything for those feeds after the new owner
read their state. A read_committed reader of ``monitor.items`` and ``monitor.feed-state`` sees a
poll's items together with the seen-marks that stop the next owner from publishing them again,
or neither.

Why per partition rather than one id per poller process: the group gives partitions, not
processes, to owners, and the epoch bump is what fences. With one id per process a poller
that lost a partition could still commit for its feeds until it noticed the rebalance.

A transaction that fails loses nothing: it is aborted and the poll fails (the items stay
unseen and are published again by the next poll, here or at the next owner). Known-transient
broker errors are tried again a few times first. A fenced producer means another poller took
the partition over (or the broker aborted its transaction on its timeout): its producer is
closed, ``on_lost(partition, True)`` is called once, and every later commit for it fails until
the ownership loop takes it again (:mod:`monitor.feeds.ownership`). A producer is only ever started
by :meth:`PollTransactions.own`, which the caller follows with a read of the feed state: one
that broke otherwise (its abort failed) is closed and ``on_lost(partition, False)`` asks for
that again. A started producer commits nothing until :meth:`PollTransactions.state_read` says
the state was read after it started: a poll that read memory before (a pause longer than the
session, during which another poller took the feeds and published; a commit that timed out
and completed at the broker) would publish its items again.

Failure windows: a commit or abort waits at most the delivery timeout + 5 s (kafka-python's
own wait has no deadline); a commit that timed out may still complete at the broker, which the
next producer's init_transactions settles before the feed state is read again.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from monitor.bus.connectivity import BrokerWatch
from monitor.bus.kafka import (
    client_config,
    end_transaction,
    transaction_deadline_seconds,
    transaction_timeout_seconds,
)
from monitor.bus.kafka_log import fenced
from monitor.clock import SYSTEM_CLOCK, Clock
from monitor.config.settings import KafkaSettings
from monitor.model import Item, encoded_items
from monitor.retry import RetryPolicy

log = logging.getLogger(__name__)

# A transaction is tried again after a retriable broker error (a coordinator moving, a leader
# election: seconds at most); anything longer is the next poll's to retry.
RETRIES = RetryPolicy(max_attempts=3, base_delay_seconds=0.5, max_delay_seconds=2.0)


def control_partition(feed_id: str, partitions: int) -> int:
    """Stable across processes and restarts (Python's hash() is salted per process)."""
    return zlib.crc32(feed_id.encode()) % partitions


def transactional_id(settings: KafkaSettings, partition: int) -> str:
    return f"{settings.poll_group}-{partition}"


class PollTransactions:
    """The transactional producers of the control partitions this poller owns (see module doc).

    Thread-safe: a partition's transactions run one at a time; different partitions' in
    parallel. ``own`` blocks on ``init_transactions`` (bounded by ``max_block_seconds``) and
    raises KafkaError when a producer cannot start; ``commit`` returns a failure text instead
    of raising for broker errors.
    """

    def __init__(self, settings: KafkaSettings, watch: BrokerWatch,
                 on_lost: Callable[[int, bool], None] = lambda _partition, _fenced: None, *,
                 retries: RetryPolicy = RETRIES, clock: Clock = SYSTEM_CLOCK) -> None:
        self._settings, self._watch, self.on_lost = settings, watch, on_lost
        self._retries, self._clock = retries, clock
        self._locks = [threading.Lock() for _ in range(settings.poll_control_partitions)]
        self._producers: dict[int, KafkaProducer] = {}
        self._started_in: dict[int, int] = {}  # partition -> group generation of its producer
        self._unread: set[int] = set()  # started since the feed state was last read
        self._owned: frozenset[int] = frozenset()
        self._generation = -1
        self._healthy = True

    def own(self, partitions: Iterable[int], generation: int) -> None:
        """Close the producers of partitions no longer ours, start (and so fence the last
        owner of) the new ones and those started in an older generation of the group (we may
        have lost and regained them without noticing). Call before reading the feed state."""
        owned = frozenset(partitions)
        self._owned, self._generation = owned, generation
        for partition in sorted(set(self._producers) - owned):
            with self._locks[partition]:  # a poll committing for it finishes first
                self._drop(partition)
        for partition in sorted(owned):
            with self._locks[partition]:
                if self._started_in.get(partition) != generation:
                    self._drop(partition)
                    self._start(partition)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No transaction runs inside (to read the feed state without a commit racing it)."""
        with ExitStack() as stack:
            for lock in self._locks:
                stack.enter_context(lock)
            yield

    def commit(self, partition: int, items: Sequence[Item],
               state_records: Sequence[tuple[bytes, bytes]],
               still_valid: Callable[[], bool] = lambda: True,
               payloads: Sequence[bytes] = ()) -> str | None:
        """Write ``items`` to the items topic and ``state_records`` (key, value) to the
        feed-state topic in one transaction; None when committed, else why not.
        ``still_valid`` is asked under the partition's lock first (has the state the poll
        read been replaced meanwhile?). ``payloads``: the items' encodings, if made ahead."""
        item_records = [(item.item_id.encode(), value)
                        for item, value in zip(items, encoded_items(items, payloads), strict=True)]
        attempt = 0
        with self._locks[partition]:
            while True:
                attempt += 1
                if not still_valid():
                    return f"kafka: control partition {partition} changed hands during the poll"
                failure, retriable = self._attempt(partition, item_records, state_records)
                delay = self._retries.next_delay(attempt) if failure and retriable else None
                if delay is None:
                    self._healthy = failure is None
                    return failure
                self._clock.sleep(delay)

    def _attempt(self, partition: int, item_records: Sequence[tuple[bytes, bytes]],
                 state_records: Sequence[tuple[bytes, bytes]]) -> tuple[str | None, bool]:
        if partition not in self._owned:
            return f"kafka: control partition {partition} is no longer this poller's", False
        producer = self._producers.get(partition)
        if producer is None or partition in self._unread:  # own() starts it again, then the
            # state is read: what this poll computed from memory may miss what the
            # partition's other owner or an unsure commit wrote meanwhile
            return f"kafka: the producer of control partition {partition} is restarting", False
        try:
            producer.begin_transaction()
            sent = [producer.send(self._settings.items_topic, key=key, value=value)
                    for key, value in item_records]
            sent += [producer.send(self._settings.feed_state_topic, key=key, value=value)
                     for key, value in state_records]
            self._finish(producer, commit=True)  # flushes; fails when any send failed
            # ... except when it does not: kafka-python 3.0.12 was seen to commit after a broker
            # outage although every batch of the transaction had expired unsent (the poll's
            # items then counted as published, never written). What was not written fails
            # the poll here, so its items stay unseen and the next poll sends them again.
            unsent = [future.exception for future in sent if not future.succeeded()]
            if unsent:
                raise KafkaError(f"{len(unsent)} of {len(sent)} record(s) of the transaction "
                                 f"not written: {unsent[0]!r}")
        except KafkaError as exc:
            return self._failed(partition, exc), bool(getattr(exc, "retriable", False))
        return None, False

    def _failed(self, partition: int, exc: KafkaError) -> str:
        """Abort the transaction; a producer that cannot go on is closed (fenced: for good)."""
        tid = transactional_id(self._settings, partition)
        if fenced(exc):
            self._drop(partition)
            self._owned = self._owned - {partition}
            log.warning("poll: producer %r of control partition %d fenced (%s): another "
                        "poller took the partition over, or the broker aborted a transaction "
                        "on its timeout; this poller stops polling its feeds until the group "
                        "says which", tid, partition, type(exc).__name__)
            self.on_lost(partition, True)
            return f"kafka: producer {tid!r} fenced by the feed's new owner ({exc!r})"
        producer = self._producers.get(partition)
        try:
            if producer is not None:
                self._finish(producer, commit=False)
        except KafkaError as abort_error:  # beyond repair: a new one (own()) aborts its
            log.info("poll: producer %r given up (%r, then %r); starting it again", tid,
                     exc, abort_error)  # transaction on start
            self._drop(partition)
            self.on_lost(partition, False)
        return f"kafka: transaction of {tid!r} aborted: {exc!r}"

    def _finish(self, producer: Any, *, commit: bool) -> None:
        end_transaction(producer, commit=commit,
                        deadline_seconds=transaction_deadline_seconds(self._settings))

    def _start(self, partition: int) -> KafkaProducer:
        settings = self._settings
        producer = KafkaProducer(
            **client_config(settings), acks="all", linger_ms=5,
            enable_idempotence=True,  # explicit: a conflicting setting silently disables it
            transactional_id=transactional_id(settings, partition),
            max_block_ms=int(settings.max_block_seconds * 1000),
            request_timeout_ms=min(10_000, int(settings.delivery_timeout_seconds * 1000) - 20),
            delivery_timeout_ms=int(settings.delivery_timeout_seconds * 1000),
            transaction_timeout_ms=int(transaction_timeout_seconds(settings) * 1000))
        try:
            producer.init_transactions()  # fences the last owner, aborts its open transaction
        except BaseException:
            producer.close(timeout=0)
            raise
        self._producers[partition] = producer
        self._started_in[partition] = self._generation
        self._unread.add(partition)
        return producer

    def _drop(self, partition: int) -> None:
        producer: Any = self._producers.pop(partition, None)
        self._started_in.pop(partition, None)
        if producer is None:
            return
        try:
            producer.close(timeout=5)
        except KafkaError as exc:
            # Its records cannot be flushed (its sender died, or the broker is away): they
            # belong to a transaction given up and go with it. The sender stops without them.
            log.debug("poll: producer of control partition %d closed unflushed: %r",
                      partition, exc)
            sender = producer._sender
            if sender is not None and sender.is_alive():
                sender.force_close()

    def owns(self, partition: int) -> bool:
        return partition in self._owned

    def restarting(self, partition: int) -> bool:
        """Ours, but its producer was given up and the ownership loop starts it again (and
        reads the state again): a poll failing meanwhile is part of that, not a fault."""
        return partition in self._owned and (partition not in self._producers
                                             or partition in self._unread)

    def state_read(self) -> None:
        """The feed state was read (inside :meth:`paused`) after every producer started so
        far: they may commit. Until then a started producer commits nothing."""
        self._unread.clear()

    def failure_level(self, exc: BaseException | None) -> int:
        return self._watch.level_for_failure(exc)

    def is_ready(self) -> bool:
        return self._healthy

    def close(self) -> None:
        for partition in sorted(self._producers):
            with self._locks[partition]:
                self._drop(partition)

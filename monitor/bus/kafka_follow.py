"""Kafka mode's :class:`monitor.bus.follow.MatchFollower`: ``monitor.matches`` read by a
consumer of no group.

Every partition is assigned by hand and read_committed (a batch the matcher aborted is never
seen), from the positions the reader keeps itself: nothing is committed to the broker, so any
number of desks each read the whole topic and none takes partitions from another. Partitions
added to the topic later are read from their beginning once the consumer's metadata shows them.

Every KafkaError becomes a :class:`monitor.errors.BusError` (the broker away: the desk's runner
tries again with a new follower from the positions the view stored).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager

from kafka import KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from monitor.bus.connectivity import BrokerWatch
from monitor.bus.kafka import broker_errors_as_bus_errors, client_config, consumer_lag
from monitor.bus.log import Record
from monitor.config.settings import KafkaSettings
from monitor.errors import BusError

log = logging.getLogger(__name__)


class KafkaMatchFollower:
    """See the module doc. Blocks in ``poll`` up to its timeout, elsewhere until the broker
    answers (bounded by the client's request timeout)."""

    def __init__(self, settings: KafkaSettings, positions: Mapping[int, int], *,
                 watch: BrokerWatch, batch_max: int = 500) -> None:
        self.source = settings.matches_topic
        self._watch = watch
        with self._translated("connect to"):
            self._consumer = KafkaConsumer(
                **client_config(settings), group_id=None, enable_auto_commit=False,
                isolation_level="read_committed", auto_offset_reset="earliest",
                max_poll_records=batch_max,
                # A broker away is retried by the runner; a stop is not held up 30 s meanwhile.
                bootstrap_timeout_ms=int(settings.max_block_seconds * 1000))
        try:
            self._assigned = self._assign(dict(positions))
        except BaseException:
            self._consumer.close()
            raise

    def poll(self, timeout_seconds: float) -> list[Record]:
        with self._translated("read"):
            self._take_new_partitions()
            polled = self._consumer.poll(timeout_ms=max(0, int(timeout_seconds * 1000)))
        return [Record(r.partition, r.offset, r.key, r.value or b"")
                for batch in polled.values() for r in batch]

    def ends(self) -> dict[int, int]:
        with self._translated("read the end offsets of"):
            found = self._consumer.end_offsets(list(self._assigned))
        return {tp.partition: int(offset) for tp, offset in found.items()}

    def positions(self) -> dict[int, int]:
        with self._translated("read the positions in"):
            return {tp.partition: int(self._consumer.position(tp)) for tp in self._assigned}

    def lag(self) -> int:
        """From the highwater of the last fetch (no request to the broker)."""
        with self._translated("measure the lag on"):
            return consumer_lag(self._consumer)

    def place(self, record: Record) -> str:
        return f"{self.source}/{record.partition}@{record.offset}"

    def failure_level(self, error: BaseException) -> int:
        cause = error.cause if isinstance(error, BusError) else error
        return self._watch.level_for_failure(cause)

    def close(self) -> None:
        self._consumer.close(autocommit=False)

    def _assign(self, positions: dict[int, int]) -> set[TopicPartition]:
        """Assign every partition of the topic; seek each to its position, or its start."""
        with self._translated("list the partitions of"):
            partitions = self._consumer.partitions_for_topic(self.source)
            if not partitions:
                raise KafkaError(f"no partitions known for {self.source} yet")
            assigned = {TopicPartition(self.source, p) for p in partitions}
            self._consumer.assign(list(assigned))
            self._seek(assigned, positions)
        return assigned

    def _seek(self, partitions: set[TopicPartition], positions: Mapping[int, int]) -> None:
        for tp in partitions:
            if tp.partition in positions:
                self._consumer.seek(tp, positions[tp.partition])
            else:
                self._consumer.seek_to_beginning(tp)

    def _take_new_partitions(self) -> None:
        """Partitions added to the topic since: assigned too, read from their beginning
        (assign() forgets the positions of the others, so they are sought again)."""
        known = self._consumer.partitions_for_topic(self.source) or set()
        added = {TopicPartition(self.source, p) for p in known} - self._assigned
        if not added:
            return
        kept = {tp.partition: int(self._consumer.position(tp)) for tp in self._assigned}
        self._assigned |= added
        self._consumer.assign(list(self._assigned))
        self._seek(self._assigned, kept)
        log.info("desk: reading %s partitions %s too (added to the topic)", self.source,
                 sorted(tp.partition for tp in added))

    def _translated(self, action: str) -> AbstractContextManager[None]:
        return broker_errors_as_bus_errors("desk", action, self.source)

"""Read a topic back from the real broker, the way a downstream stage would."""

from __future__ import annotations

import time

from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from monitor.bus.kafka import read_partitions, topic_reader
from monitor.config.settings import KafkaSettings
from monitor.model import Item, decode_item


def read_items(bootstrap: str, topic: str, *, expect: int, timeout_seconds: float = 60.0,
               settle_seconds: float = 2.0) -> list[tuple[bytes, Item]]:
    """Every (key, item) on ``topic`` (read_committed, from the start).

    Reads until ``expect`` records arrived and nothing more came for ``settle_seconds``, or the
    deadline passed; extra records are returned too, so that duplicates can be seen.

    No group: every partition is assigned by hand once the topic exists (a test often starts
    reading before its processes created the topic). A group member that subscribed before
    the topic existed was seen never to get its partitions (kafka-python 3.0.12: 3 joins in
    25 here), and read nothing for the whole deadline.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
        enable_auto_commit=False, isolation_level="read_committed",
    )
    records: list[tuple[bytes, Item]] = []
    deadline = time.monotonic() + timeout_seconds
    try:
        partitions = _partitions_once_created(consumer, topic, deadline)
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            for messages in batch.values():
                records.extend((m.key, decode_item(m.value)) for m in messages)
                quiet_since = time.monotonic()
            if len(records) >= expect and time.monotonic() - quiet_since >= settle_seconds:
                break
    finally:
        consumer.close()
    return records


def _partitions_once_created(consumer: KafkaConsumer, topic: str, deadline: float) -> set[int]:
    """The topic's partitions; an empty set when it is not created by the deadline."""
    while True:
        partitions: set[int] = consumer.partitions_for_topic(topic)
        if partitions or time.monotonic() > deadline:
            return partitions
        time.sleep(0.2)  # the processes under test create it as they start


def committed_offsets(settings: KafkaSettings, group: str) -> dict[TopicPartition, int]:
    """The group's committed offsets; empty while its coordinator is still being elected."""
    admin = KafkaAdminClient(bootstrap_servers=list(settings.bootstrap_servers))
    try:
        offsets = admin.list_group_offsets({group: None})
    except KafkaError:  # CoordinatorNotAvailable on a fresh broker: nothing committed yet
        return {}
    finally:
        admin.close()
    return {tp: meta.offset for tp, meta in offsets.get(group, {}).items()}


def consumed_to_the_end(settings: KafkaSettings, group: str, topic: str) -> bool:
    """Whether ``group`` has committed past every record now readable on ``topic``
    (read_committed). A stage that has, and holds nothing in hand, has nothing more to do:
    what a test waits on instead of sleeping to see that nothing more comes."""
    reader = topic_reader(settings)
    try:
        records = read_partitions(reader, topic)
    finally:
        reader.close()
    needed: dict[int, int] = {}
    for record in records:
        needed[record.partition] = max(needed.get(record.partition, 0), record.offset + 1)
    committed = {tp.partition: offset for tp, offset in committed_offsets(settings, group).items()
                 if tp.topic == topic}
    return all(committed.get(partition, 0) >= end for partition, end in needed.items())

"""Read a topic back from the real broker, the way a downstream stage would."""

from __future__ import annotations

import time
import uuid

from kafka import KafkaConsumer

from monitor.model import Item, decode_item


def read_items(bootstrap: str, topic: str, *, expect: int, timeout_seconds: float = 60.0,
               settle_seconds: float = 2.0) -> list[tuple[bytes, Item]]:
    """Every (key, item) on ``topic`` (read_committed, from the start).

    Reads until ``expect`` records arrived and nothing more came for ``settle_seconds``, or the
    deadline passed; extra records are returned too, so that duplicates can be seen.
    """
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"test-{uuid.uuid4().hex}",
        auto_offset_reset="earliest", enable_auto_commit=False,
        isolation_level="read_committed", consumer_timeout_ms=500,
    )
    records: list[tuple[bytes, Item]] = []
    deadline = time.monotonic() + timeout_seconds
    quiet_since = time.monotonic()
    try:
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

"""The pieces of shared polling that need no broker: feed records and control partitions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.feeds.kafka_state import decode_feed_record, encode_feed_record
from monitor.feeds.ownership import control_partition
from monitor.model import FeedState


def test_a_feed_record_round_trips_state_and_seen_items() -> None:
    state = FeedState("ria", etag='"abc"', last_modified="Sat, 28 Nov 2026 06:00:00 GMT",
                      body_hash="h1", consecutive_failures=3, last_success_at=1.5e9,
                      last_error="HTTP 503", next_check_at=1.5e9 + 600)
    seen = {"item-1": ("hash-1", 1.5e9), "item-2": ("hash-2", 1.5e9 + 1)}
    assert decode_feed_record("ria", encode_feed_record(state, seen)) == (state, seen)


def test_a_record_of_another_schema_is_refused() -> None:
    with pytest.raises(ValueError, match="schema"):
        decode_feed_record("ria", b'{"schema": 99, "state": {}, "seen": {}}')


@given(st.text(min_size=1, max_size=40), st.integers(min_value=1, max_value=64))
def test_control_partition_is_stable_and_in_range(feed_id: str, partitions: int) -> None:
    partition = control_partition(feed_id, partitions)
    assert 0 <= partition < partitions
    assert control_partition(feed_id, partitions) == partition


def test_control_partition_does_not_depend_on_the_process_hash_seed() -> None:
    # crc32("ria-ru") = 3982738247: the same in every process (Python's hash() is salted).
    assert control_partition("ria-ru", 12) == 3982738247 % 12 == 11

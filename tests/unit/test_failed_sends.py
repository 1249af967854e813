"""monitor/bus/kafka.py FailedSends: what the Kafka item publisher remembers of failed sends."""

from __future__ import annotations

from dataclasses import replace

from monitor.bus.kafka import FailedSends
from tests.unit.test_model import ITEM

HOUR_MS = 3600 * 1000


def test_the_earliest_failed_attempt_of_the_items_asked_about_is_given() -> None:
    first, second, other = (replace(ITEM, item_id=n) for n in ("a", "b", "c"))
    sends = FailedSends()
    assert sends.earliest([first]) is None
    sends.remember([first], 5_000)
    sends.remember([first, second], 9_000)  # a second failure keeps the first attempt's time
    assert sends.earliest([second]) == 9_000
    assert sends.earliest([second, first]) == 5_000
    assert sends.earliest([other]) is None


def test_a_new_version_of_an_item_is_not_the_item_that_failed() -> None:
    sends = FailedSends()
    sends.remember([ITEM], 1_000)
    assert sends.earliest([replace(ITEM, content_hash="edited")]) is None


def test_forgotten_items_are_no_longer_asked_about() -> None:
    first, second = (replace(ITEM, item_id=n) for n in ("a", "b"))
    sends = FailedSends()
    sends.remember([first, second], 1_000)
    sends.forget([first])
    assert sends.earliest([first]) is None
    assert len(sends) == 1


def test_items_unsettled_past_the_horizon_are_dropped_at_the_next_failure() -> None:
    gone, kept, new = (replace(ITEM, item_id=n) for n in ("gone", "kept", "new"))
    sends = FailedSends(horizon_ms=24 * HOUR_MS)
    sends.remember([gone], 0)
    sends.remember([kept], 2 * HOUR_MS)
    sends.remember([new], 25 * HOUR_MS)
    assert sends.earliest([gone]) is None
    assert sends.earliest([kept]) == 2 * HOUR_MS
    assert len(sends) == 2

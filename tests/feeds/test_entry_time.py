"""parse._entry_time: a date's instant built from its fields, as calendar.timegm gives it."""

from __future__ import annotations

import calendar
import contextlib
import itertools
import time
from datetime import UTC, datetime

from monitor.feeds.parse import _entry_time


def _timegm_instant(parsed: time.struct_time) -> datetime | None:
    with contextlib.suppress(OverflowError, ValueError, OSError):
        return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
    return None


def test_instant_as_timegm_gives_it() -> None:
    fields = itertools.product([1, 1969, 1970, 2024, 2026, 9999], [1, 2, 12, 13], [0, 1, 29, 31],
                               [0, 23, 24], [0, 59, 60], [0, 59, 60, 61])
    for year, month, day, hour, minute, second in fields:
        parsed = time.struct_time((year, month, day, hour, minute, second, 0, 1, 0))
        assert _entry_time((parsed,)) == _timegm_instant(parsed), parsed[:6]


def test_first_date_that_converts() -> None:
    late = time.struct_time((2026, 12, 1, 7, 0, 0, 1, 335, 0))
    assert _entry_time((None, late)) == datetime(2026, 12, 1, 7, tzinfo=UTC)
    assert _entry_time((None, None, None)) is None

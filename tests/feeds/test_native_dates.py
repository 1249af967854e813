"""The compiled date reading (native/src/feed_dates.rs) against feed_dates.py's Python one.

Wherever the compiled reading gives fields they must be ``python_parse_date``'s, and it must
take the two common forms: over generated dates near every edge (month lengths, leap years,
years 1 and 9999, zones that cross a day or a year, case, stray characters; fixed seeds).
The corpus and the awkward dates of test_feed_dates.py run through it too (``parse_date``).
Skipped without monitor_native; required when MONITOR_REQUIRE_NATIVE=1.
"""

from __future__ import annotations

import os
import random

import pytest

from monitor.feeds import feed_dates
from monitor.feeds.feed_dates import python_parse_date

native = pytest.mark.skipif(
    feed_dates._native_date is None and os.environ.get("MONITOR_REQUIRE_NATIVE") != "1",
    reason="monitor_native (with DateReader) is not installed (pip install ./native)")


def _taken(value: str) -> bool:
    read = feed_dates._native_date
    assert read is not None, "MONITOR_REQUIRE_NATIVE=1 but monitor_native has no DateReader"
    fields = read(value)
    if fields is None:
        return False
    assert fields == tuple(python_parse_date(value) or ()), value
    return True


def _rfc822(rng: random.Random) -> str:
    day = rng.choice(["Mon", "tue", "WED", "Thu", "fri", "Sat", "sun", "Xyz", "Mo"])
    date = (f"{rng.choice(['1', '01', '9', '28', '29', '30', '31', '32', '0', '001', 'x'])} "
            f"{rng.choice(['Jan', 'feb', 'MAR', 'Dec', 'Dez', 'Ja', 'Sept'])} "
            f"{rng.choice(['2026', '2024', '2100', '2000', '0001', '9999', '0000', '999'])}")
    clock = rng.choice(["00:00:00", "23:59:59", "24:00:00", "12:60:00", "12:00:60", "1:00:00",
                        "07:30:15"])
    zone = rng.choice(["+0000", "+0300", "-0330", "+9999", "-1400", "GMT", "gmt", "UT", "Z",
                       "EST", "pdt", "met", "MEST", "xyz", "GMT+3", "GMTA", "A", "y", "+030",
                       "+03:00", "", "abcde"])
    sep = rng.choice([", ", ", ", ",", ",  "])
    return f"{day}{sep}{date} {clock} {zone}".rstrip(" " if rng.random() < 0.9 else "")


def _w3dtf(rng: random.Random) -> str:
    date = rng.choice(["2026-12-01", "2024-02-29", "2026-02-29", "0001-01-01", "9999-12-31",
                       "2026-13-01", "2026-00-10", "2026-1-01", "0000-06-15"])
    clock = rng.choice(["00:00:00", "23:59:59", "24:00:00", "07:00:00.5", "23:59:59.999999",
                        "00:00:59.99999999999999999", "07:00", "07:00:00.", "12:00:60"])
    zone = rng.choice(["Z", "z", "+03:00", "-03:30", "+14:00", "-12:00", "+99:99", "-00:00",
                       "+0300", "", "+03", " Z", "Zz"])
    return f"{date}{rng.choice(['T', 't', 'T', ' '])}{clock}{zone}"


@native
@pytest.mark.parametrize("seed", range(3))
def test_generated_dates(seed: int) -> None:
    rng = random.Random(seed)
    taken = 0
    for _ in range(6_000):
        value = _rfc822(rng) if rng.random() < 0.5 else _w3dtf(rng)
        if rng.random() < 0.05:  # a stray character somewhere
            at = rng.randrange(len(value) + 1)
            value = value[:at] + rng.choice(" x9:+-.\u0661ſ") + value[at:]
        taken += _taken(value)
    assert taken > 200  # most generated values are not dates: Python's reading decides


@native
def test_every_day_of_leap_and_common_years() -> None:
    for year in (1, 1900, 2000, 2024, 2026, 9999):
        for month in range(1, 13):
            for day in range(1, 32):
                for zone in ("Z", "+14:00", "-12:00"):
                    _taken(f"{year:04d}-{month:02d}-{day:02d}T00:30:00{zone}")
                    name = "JanFebMarAprMayJunJulAugSepOctNovDec"[month * 3 - 3:month * 3]
                    rfc_zone = zone.replace(":", "").replace("Z", "GMT")
                    _taken(f"Mon, {day} {name} {year:04d} 23:30:00 {rfc_zone}")

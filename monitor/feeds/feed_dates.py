"""Feed dates as feedparser's ``_parse_date`` reads them, the two common forms without it.

Nearly every date in the wild is RFC 822 ("Tue, 01 Dec 2026 07:00:00 +0300") or W3C-DTF
("2026-12-01T07:00:00+03:00"). feedparser tries nine handlers in turn, each splitting and
lower-casing the string; for these two forms one regex match gives the same fields, and the
same datetime arithmetic then gives the same struct_time. Anything else, or a value that
arithmetic refuses, goes to feedparser. tests/feeds/test_feed_dates.py holds the two equal
over every date in ../shared/feeds and over generated awkward cases.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import re
import time
from collections.abc import Callable

from feedparser.datetimes import _parse_date
from feedparser.datetimes.rfc822 import months, timezone_names

# ASCII only: feedparser lower-cases with str.lower, under which "ſat" is not "sat".
# RFC 822 with a day name and a four-digit year, single spaces. feedparser's first handler
# (W3C-DTF) finds no four-digit year before a "-" or "t" in such a string and passes it on to
# the RFC 822 handler, whose rules are copied here. Zones starting "gmt" (feedparser reads
# "gmt+3" its own way) and "etc/" are left to it.
_RFC822 = re.compile(
    r"(?i:mon|tue|wed|thu|fri|sat|sun), ([0-9]{1,2}) ([A-Za-z]{3}) ([0-9]{4}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) (?:([+-])([0-9]{2})([0-9]{2})|([A-Za-z]{1,4}))", re.ASCII)
# W3C-DTF with a time and a zone "Z" or "+hh:mm" (feedparser reads "+hhmm" minutes as 0).
_W3DTF = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2}(?:\.[0-9]+)?)"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))", re.ASCII)


# The two forms compiled (native/, optional like html_text's): the same fields, or None for
# anything else (then the reading below). Given feedparser's tables, so that both use them.
_native_date: Callable[[str], tuple[int, ...] | None] | None = None
with contextlib.suppress(ImportError, AttributeError):  # not installed, or built before it
    _native_date = importlib.import_module("monitor_native").DateReader(
        months, timezone_names).read


def parse_date(value: str) -> time.struct_time | None:
    """feedparser's ``_parse_date(value)``."""
    if _native_date is not None and (fields := _native_date(value)) is not None:
        return time.struct_time(fields)
    return python_parse_date(value)


def python_parse_date(value: str) -> time.struct_time | None:
    """``parse_date`` without the compiled reading."""
    found = _RFC822.fullmatch(value)
    parsed = _rfc822(found) if found is not None else None
    if parsed is None:
        found = _W3DTF.fullmatch(value)
        parsed = _w3dtf(found) if found is not None else None
    return parsed if parsed is not None else _parse_date(value)


def _rfc822(found: re.Match[str]) -> time.struct_time | None:
    day, month_name, year, hour, minute, second, sign, zone_hours, zone_minutes, name = \
        found.groups()
    month = months.get(month_name.lower())
    if month is None:
        return None
    if sign is not None:
        hours, minutes = int(zone_hours), int(zone_minutes)
        if sign == "-":
            hours, minutes = -hours, -minutes
    else:
        name = name.lower()
        if name.startswith("gmt") and name != "gmt":
            return None
        hours, minutes = timezone_names.get(name, 0), 0
    return _utc(int(year), month, int(day), int(hour), int(minute), int(second), hours, minutes)


def _w3dtf(found: re.Match[str]) -> time.struct_time | None:
    year, month, day, hour, minute, second, sign, zone_hours, zone_minutes = found.groups()
    hours = minutes = 0
    if sign is not None:
        hours, minutes = int(zone_hours), int(zone_minutes)
        if sign == "-":
            hours, minutes = -hours, -minutes
    return _utc(int(year), int(month), int(day), int(hour), int(minute),
                int(float(second)), hours, minutes)


def _utc(year: int, month: int, day: int, hour: int, minute: int, second: int,
         zone_hours: int, zone_minutes: int) -> time.struct_time | None:
    """feedparser's last step, in both handlers; None where it fails (feedparser decides)."""
    try:
        stamp = datetime.datetime(year, month, day, hour, minute, second)
        if zone_hours or zone_minutes:
            stamp -= datetime.timedelta(0, 0, 0, 0, zone_minutes, zone_hours)
        return stamp.utctimetuple()
    except (OverflowError, ValueError):
        return None

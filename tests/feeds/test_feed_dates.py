"""feed_dates.parse_date against feedparser's _parse_date: every date in ../shared/feeds and
generated awkward ones."""

from __future__ import annotations

import itertools
import random
import re
from pathlib import Path

import pytest
from feedparser.datetimes import _parse_date

from monitor.feeds.feed_dates import parse_date

FEEDS = Path(__file__).resolve().parents[2].parent / "shared" / "feeds"
_DATE_ELEMENT = re.compile(
    rb"<((?:[A-Za-z]+:)?(?:pubDate|published|updated|issued|modified|date|lastBuildDate|"
    rb"created))[^>]*>\s*(?:<!\[CDATA\[)?([^<]{0,100}?)(?:\]\]>)?\s*</\1>", re.IGNORECASE)


def _corpus_dates() -> set[str]:
    dates = set()
    for path in FEEDS.rglob("*"):
        if path.is_file() and not path.name.startswith(".") and path.suffix != ".md":
            for found in _DATE_ELEMENT.finditer(path.read_bytes()):
                dates.add(found.group(2).decode("utf-8", "replace").strip())
    return dates


@pytest.mark.skipif(not FEEDS.is_dir(), reason=f"feed documents not found at {FEEDS}")
def test_every_corpus_date_as_feedparser_reads_it() -> None:
    dates = _corpus_dates()
    assert len(dates) > 1000  # the corpus holds ~7,000 distinct dates
    for value in sorted(dates):
        assert parse_date(value) == _parse_date(value), value


def _awkward_rfc822() -> list[str]:
    days = ["Tue", "tue", "SAT", "Sun", "ſat", "Xyz"]
    dates = ["01 Dec 2026", "1 dec 2026", "31 Feb 2026", "00 Jan 2026", "29 Feb 2024",
             "01 Dez 2026", "01 DEC 0000", "01 Jan 0001", "31 Dec 9999", "15 Oct 1899"]
    times = ["07:00:00", "23:59:59", "24:00:00", "00:60:00", "12:00:60", "00:00:00"]
    zones = ["+0300", "-0330", "+9999", "-0000", "GMT", "gmt", "UT", "UTC", "Z", "EST",
             "pdt", "met", "xyz", "GMT+3", "GMTA", "gmt-05:00", "+03:00", "A", "N", "+030"]
    return [f"{day}, {date} {clock} {zone}"
            for day, date, clock, zone in itertools.product(days, dates, times, zones)]


def _awkward_w3dtf() -> list[str]:
    dates = ["2026-12-01", "2026-02-30", "0000-01-01", "0001-01-01", "9999-12-31", "2026-13-01"]
    times = ["07:00:00", "23:59:59.999999", "24:00:00", "12:00:60", "00:00:59.99999999999999999",
             "07:00:00.5", "07:00"]
    zones = ["Z", "z", "+03:00", "-03:30", "+99:99", "-00:00", "+0300", "", "+03", " +03:00"]
    return [f"{date}{sep}{clock}{zone}" for date, sep, clock, zone
            in itertools.product(dates, ["T", "t", " "], times, zones)]


def test_awkward_dates_as_feedparser_reads_them() -> None:
    values = _awkward_rfc822() + _awkward_w3dtf() + [
        "", " ", "Tue, 01 Dec 2026 07:00:00 +0300 extra", "Tue,  01 Dec 2026 07:00:00 +0300",
        "Tuesday, 01 Dec 2026 07:00:00 +0300", "01 Dec 2026 07:00:00 +0300",
        "Tue, 01 Dec 26 07:00:00 +0300", "２０２６-12-01T07:00:00Z",
        "Tue, ０1 Dec 2026 07:00:00 +0300"]
    random.seed(12)
    alphabet = "0123456789-:+ TZtz.,ADEGMNOSTUacdeglmnostu"
    values += ["".join(random.choices(alphabet, k=random.randint(1, 32))) for _ in range(3000)]
    for template in ["Tue, 01 Dec 2026 07:00:00 +0300", "2026-12-01T07:00:00.123+03:00"] * 3000:
        at = random.randrange(len(template))  # one character changed
        values.append(template[:at] + random.choice(alphabet) + template[at + 1:])
    for value in values:
        assert parse_date(value) == _parse_date(value), value

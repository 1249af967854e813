"""The compiled plain_text (native/src/plain_text.rs) against normalize.py's Python reading.

Wherever the compiled reading gives a text it must be ``python_plain_text``'s: over every title
and summary in ../shared/feeds at several limits, and over generated texts (HTML atoms,
whitespace of every kind, invisible characters, mojibake pairs, long runs; fixed seeds).
Skipped without monitor_native; required when MONITOR_REQUIRE_NATIVE=1.
"""

from __future__ import annotations

import os
import random

import pytest

from monitor.feeds import normalize
from monitor.feeds.entry import RawEntry
from monitor.feeds.inflate import inflate_gzip
from monitor.feeds.wellformed import read_wellformed
from tests.conftest import SHARED

native = pytest.mark.skipif(
    normalize._native_plain_text is None and os.environ.get("MONITOR_REQUIRE_NATIVE") != "1",
    reason="monitor_native (with PlainText) is not installed (pip install ./native)")

LIMITS = (1, 2, 3, 7, 80, 500, 2_000)


def _taken(value: str, max_chars: int) -> bool:
    """Whether the compiled reading took ``value``; if so, its text is the Python one's."""
    read = normalize._native_plain_text
    assert read is not None, "MONITOR_REQUIRE_NATIVE=1 but monitor_native has no PlainText"
    text = read(value, max_chars)
    if text is None:
        return False
    assert text == normalize.python_plain_text(value, max_chars), (max_chars, value[:300])
    return True


def _corpus_entries() -> list[RawEntry]:
    entries: list[RawEntry] = []
    for folder in ("real", "bench"):
        path = SHARED / "feeds" / folder
        for document in sorted(path.iterdir()) if path.is_dir() else ():
            body = document.read_bytes()
            if body.startswith(b"\x1f\x8b"):
                body = inflate_gzip(body, 10 << 20)
            raw = read_wellformed(body, None)
            entries.extend(raw.entries if raw else ())
    return entries


def _corpus_texts() -> list[str]:
    return [text for entry in _corpus_entries() for text in (entry.title or "",
                                                              entry.summary_html)]


@native
def test_every_title_and_summary_in_the_shared_feeds() -> None:
    texts = _corpus_texts()
    if not texts:
        pytest.skip(f"feed documents not found under {SHARED / 'feeds'}")
    for limit in LIMITS:
        taken = sum(_taken(text, limit) for text in texts)
        assert taken > 0.9 * len(texts), (limit, taken, len(texts))


ATOMS = [
    "a", "word", "Слово", "日本語", "é", " ", "  ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\x1c",
    "\x1f", "\x85", "\xa0", "\u1680", "\u2002", "\u2028", "\u2029", "\u202f", "\u3000",
    "\x00", "\x07", "\x7f", "\x9f", "\u00ad", "\u200b", "\u200e", "\u202e", "\u2066", "\ufeff",
    "\ue000", "\U000f0001", "\U0010fffd", "\U000e0041", "\U0001d173", "\u0378", "\ud800",
    "Ã", "Ã©", "Â", "Â\u00a0", "Ã\u2019", "Å\u0153", "ô", "\u00c2\u2013", "\u0152",
    "<p>", "</p>", "<br/>", "<b>", "</b>", "<!-- c -->", "<script>x</script>", "<", ">", "&",
    "&amp;", "&nbsp;", "&#8203;", "&#xA0;", "&#195;", "&Atilde;", "&copy;", "&#0;",
    # what may write a first letter of a mojibake pair where long HTML is not read yet
    "&#xc3;", "&#X00F4;", "&#0000244;", "&#2440;", "&timesx", "&eth;", "Ã<b>", "Ã&#169;",
    "Ã&copy;", "é", "ô</p>", "&#xc1;", "&#193;",
    # unquoted attribute values, which the compiled reading takes as html.parser reads them
    "<a href=https://e.org/x?y=1&z=2>", "<h3 id=what-was-it>", "</h3>", "<img src=a.png alt=x/>",
    "<br clear=all/>", "<br clear=all />", "<a b=c", "<a b=>", '<a b=c"d>', "<p class=x\xa0y>",
    "<script src=x.js>", "<style media=all>", "<a b==c>", "<a b=c/ >", "<td width=50%>",
    "<a b=c d='e' f=g>", "<a b=(c)>", "<a b=c\x0bd>", "<a b=é>", "<a b = c >",
    "…", ".", ",", "-",
]


@native
@pytest.mark.parametrize("seed", range(4))
def test_generated_texts(seed: int) -> None:
    rng = random.Random(seed)
    taken = 0
    for _ in range(4_000):
        value = "".join(rng.choice(ATOMS) for _ in range(rng.randint(0, 40)))
        if rng.random() < 0.1:  # past the limits: the cut and the pieces of long HTML
            value = value * rng.randint(50, 400)
        taken += _taken(value, rng.choice(LIMITS))
    assert taken > 500


@native
@pytest.mark.parametrize("value", [
    "", " ", "a", "a b", " a ", "ab " * 5, "x" * 10, "word " * 10, "é" * 9 + " " + "日" * 9,
    "a" * 3 + " " + "b" * 3 + " " + "c" * 3, "<p>" + "long " * 5_000 + "</p>",
    "Ã©" + "x" * 10_000, "x" * 10_000 + "Ã©", "<p>" + "x " * 5_000 + "&Atilde;&copy;</p>",
    "<p>" + "word " * 1_000 + "</p><p>" + "é " * 3_000 + "Ã</p><p>©</p>",
    "<p>" + "word " * 1_000 + "</p>" * 800 + "&#195;&#169;", "<b>x</b>" * 2_000 + "&times;",
])
def test_cuts_and_edges(value: str) -> None:
    for limit in LIMITS:
        _taken(value, limit)


@native
def test_every_code_point_between_letters() -> None:
    """Each character as the compiled folding classes it (a table below U+0800, the ranges
    above): whitespace and invisible ones separate words, the others stay."""
    for point in [*range(0x3000), *range(0xD7F0, 0x10000, 3), *range(0xE0000, 0xE0100),
                  *range(0xF0000, 0x110000, 997)]:
        if not 0xD800 <= point < 0xE000:
            _taken(f"ab{chr(point)}cd", 80)


def _item_texts_taken(title: str, summary: str, url: str | None, guid: str | None) -> bool:
    read = normalize._native_item_texts
    assert read is not None, "MONITOR_REQUIRE_NATIVE=1 but monitor_native has no item_texts"
    texts = read(title, summary, url, "feed-1", guid, 500, 2_000)
    if texts is None:
        return False
    assert texts == normalize.python_item_texts(title, summary, url, "feed-1", guid, 500,
                                                2_000), (title[:100], summary[:100], url, guid)
    return True


@native
def test_item_texts_of_every_entry_in_the_shared_feeds() -> None:
    """Titles, summaries, ids from the canonical URL, the guid or the title, and hashes."""
    entries = _corpus_entries()
    if not entries:
        pytest.skip(f"feed documents not found under {SHARED / 'feeds'}")
    taken = 0
    for entry in entries:
        url = normalize.canonical_url(entry.link.strip()) if entry.link else None
        guid = entry.guid.strip() if entry.guid else None
        title = (entry.title or "").strip()
        for url_guid in ((url, guid), (None, guid), (None, None)):
            taken += _item_texts_taken(title, entry.summary_html, *url_guid)
    assert taken > 0.95 * 3 * len(entries)


@native
@pytest.mark.parametrize("seed", range(2))
def test_item_texts_generated(seed: int) -> None:
    rng = random.Random(seed)
    keys = ["", "https://e.org/a", "http://Ю.рф/ц?q=1", "g\x1fh", "тег", "x" * 300, "\ud800"]
    taken = 0
    for _ in range(2_000):
        title, summary = ("".join(rng.choice(ATOMS) for _ in range(rng.randint(0, 12)))
                          for _ in range(2))
        url, guid = (rng.choice([None, *keys]) for _ in range(2))
        taken += _item_texts_taken(title, summary, url, guid)
    assert taken > 150

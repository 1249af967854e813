"""The shortcuts in normalize.py and wellformed.py give what the long way gives: canonical
URLs of plain links without urllib, folding without the invisible-character regex when nothing
is invisible, links without feedparser's join when there is no base to join to.

The long ways are the definitions (tests/unit/test_normalize.py holds them to examples);
these tests hold the shortcuts to them over every link in ../shared/feeds, generated URLs,
and every code point.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from feedparser.urls import _urljoin

from monitor.feeds.normalize import (
    _HINT_IN_HTML,
    _HINT_IN_HTML_UTF8,
    _MOJIBAKE_HINT,
    _MOJIBAKE_HINT_UTF8,
    _drop_invisible,
    _folded,
    _split_canonical_url,
    _visible_folded,
    canonical_url,
)
from monitor.feeds.wellformed import _has_extra_slashes, read_wellformed
from tests.conftest import SHARED

FEEDS = SHARED / "feeds"


def _links() -> set[str]:
    """Links and guids as the documents give them (those the fast path reads)."""
    links: set[str] = set()
    for path in sorted(p for folder in ("real", "bench") if (FEEDS / folder).is_dir()
                       for p in (FEEDS / folder).iterdir() if p.is_file()):
        document = read_wellformed(path.read_bytes(), None)
        for entry in document.entries if document else ():
            links.update(link.strip() for link in (entry.link, entry.guid) if link)
    return links


def test_plain_links_of_the_corpus() -> None:
    links = _links()
    if not links:
        pytest.skip(f"feed documents not found under {FEEDS}")
    for link in links:
        assert canonical_url(link) == _split_canonical_url(link), link


URL_PIECES = ["http://", "https://", "HTTPS://", "Http://", "ftp://", "http:/", "https:///",
              "a", "Z", "0", ".", "-", "/", ":", "?", "#", "@", "%", "[", "]", "\\", " ",
              "\t", "\n", "~", "&", "=", ";", "+", "'", '"', "<", ">", "^", "`", "{", "|",
              "\x7f", "é", "\u200b", ":80", ":443", ":8080", "utm_source=x", "?a=1&b=2"]


def test_generated_urls() -> None:
    rng = random.Random(12)
    for _ in range(50_000):
        url = rng.choice(URL_PIECES[:7]) + "".join(
            rng.choice(URL_PIECES) for _ in range(rng.randint(0, 10)))
        assert canonical_url(url) == _split_canonical_url(url), repr(url)


@pytest.mark.parametrize("step", [0, 1])
def test_folding_every_code_point(step: int) -> None:
    # Half the code points per run of the loop keeps each test short.
    for point in range(step, 0x110000, 2):
        char = chr(point)
        for text in (f"a{char}b", f"a {char}\n b", char):
            assert _visible_folded(text) == _folded(_drop_invisible(text)), hex(point)


def test_folding_mixed_texts() -> None:
    path = Path(__file__).with_name("test_html_text.py")  # a text with mixed whitespace
    text = path.read_text(encoding="utf-8") + " \u00a0\u2028x\u200b\u202e\x00y\ufeff"
    for end in range(0, len(text), 97):
        assert _visible_folded(text[:end]) == _folded(_drop_invisible(text[:end]))


def test_mojibake_hints_in_utf8() -> None:
    """The UTF-8 forms of the mojibake hints match where the str forms do."""
    firsts = [chr(point) for point in range(0x80, 0x100)]
    seconds = [chr(point) for point in (*range(0x300), *range(0x2000, 0x2070))]
    for pattern, utf8 in ((_MOJIBAKE_HINT, _MOJIBAKE_HINT_UTF8),
                          (_HINT_IN_HTML, _HINT_IN_HTML_UTF8)):
        for first in firsts:
            for second in seconds:
                text = f"a{first}{second}b"
                assert (pattern.search(text) is not None) == (
                    utf8.search(text.encode()) is not None), (pattern, first, second)


def test_joining_to_no_base() -> None:
    """wellformed._text skips feedparser's _urljoin against an empty base unless it would
    change the text."""
    rng = random.Random(3)
    pieces = ["http://", "https:///", "x:////", "a", "/", "?", "#", " ", "é", "1+.-:", "//",
              "mailto:", "HTTP:///", "tag:x,1", ""]
    for _ in range(50_000):
        uri = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))
        assert (_urljoin("", uri) != uri) == _has_extra_slashes(uri), repr(uri)

"""The fast parse path (lxml) against the reference (feedparser): same Items wherever the fast
path accepts a document, and the documents it must refuse.

Over every document in ../shared/feeds (real and bench; skipped when absent) and over small
documents that exercise feedparser's rules for competing elements.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import ParseError
from monitor.feeds.parse import (
    FAST_PATH,
    REFERENCE_PATH,
    FeedSource,
    ParsedFeed,
    parse_feed,
    parse_feed_reference,
)
from monitor.feeds.wellformed import read_wellformed
from tests.conftest import SHARED

FETCHED = datetime(2026, 11, 30, tzinfo=UTC)
FEEDS = SHARED / "feeds"
# Share of documents the fast path reads itself (measured 2026-12-01: real 46 of 56, bench
# 197 of 200; the rest are malformed past what loose_repair repairs, UTF-16, or carry an
# image or a source with elements inside an item).
MIN_ACCEPTED = {"real": 0.75, "bench": 0.95}


def _documents(folder: str) -> list[Path]:
    path = FEEDS / folder
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix not in (".md", ".tsv"))


def _params() -> list[object]:
    docs = [pytest.param(p, id=f"{p.parent.name}/{p.name}")
            for folder in MIN_ACCEPTED for p in _documents(folder)]
    return docs or [pytest.param(None, id="absent")]


def _both(body: bytes, name: str, content_type: str | None = None
          ) -> tuple[ParsedFeed | str, ParsedFeed | str]:
    source = FeedSource(name, "S", None)
    results: list[ParsedFeed | str] = []
    for parse in (parse_feed, parse_feed_reference):
        try:
            results.append(parse(body, content_type, source, FETCHED))
        except ParseError as exc:
            results.append(f"ParseError: {exc}")
    return results[0], results[1]


def _assert_same(fast: ParsedFeed | str, reference: ParsedFeed | str) -> None:
    assert isinstance(fast, ParsedFeed) and isinstance(reference, ParsedFeed), (fast, reference)
    for mine, theirs in zip(fast.items, reference.items, strict=True):
        assert mine == theirs  # ids, titles, links, dates, summaries, language, hash
    assert (fast.entries_without_id, fast.encoding, fast.warning, fast.bytes_replaced) == (
        reference.entries_without_id, reference.encoding, reference.warning,
        reference.bytes_replaced)


@pytest.mark.parametrize("document", _params())
def test_both_paths_give_the_same_items(document: Path | None) -> None:
    if document is None:
        pytest.skip(f"feed documents not found under {FEEDS}")
    fast, reference = _both(document.read_bytes(), document.name)
    if isinstance(fast, ParsedFeed) and fast.parser == FAST_PATH:
        _assert_same(fast, reference)
    else:  # refused: the reference read it, as before
        assert fast == reference or (isinstance(fast, ParsedFeed) and
                                     fast.parser == REFERENCE_PATH)


@pytest.mark.parametrize("folder", list(MIN_ACCEPTED))
def test_the_fast_path_accepts_most_well_formed_feeds(folder: str) -> None:
    documents = _documents(folder)
    if not documents:
        pytest.skip(f"feed documents not found under {FEEDS / folder}")
    source = FeedSource("f", "S", None)
    accepted = 0
    for path in documents:
        with contextlib.suppress(ParseError):
            accepted += parse_feed(path.read_bytes(), None, source, FETCHED).parser == FAST_PATH
    print(f"{folder}: the fast path read {accepted} of {len(documents)} documents")
    assert accepted / len(documents) >= MIN_ACCEPTED[folder]


def rss(items: str, namespaces: str = "", channel: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" {namespaces}>'
            f"<channel><title>T</title>{channel}{items}</channel></rss>").encode()


def _even(body: bytes) -> bytes:
    return body if len(body) % 2 == 0 else body + b"\n"


MEDIA = 'xmlns:media="http://search.yahoo.com/mrss/"'
CONTENT = 'xmlns:content="http://purl.org/rss/1.0/modules/content/"'

# Documents the fast path must read, and read exactly as feedparser does.
QUIRKS = [
    # YouTube and many CMSs: media:title/description inside media:group beside the item's own.
    pytest.param(rss("<item><media:group><media:title>M</media:title><media:description>MD"
                     "</media:description></media:group><title>T</title><link>https://a.b/1"
                     "</link></item>", MEDIA), id="media-group-title-loses"),
    pytest.param(rss("<item><media:title>M</media:title><link>https://a.b/1</link></item>",
                     MEDIA), id="media-title-alone"),
    pytest.param(rss("<item><title></title><title>Second</title><link>https://a.b/1</link>"
                     "</item>"), id="empty-title-then-title"),
    pytest.param(rss("<item><title>A</title><description>first</description><description>"
                     "second</description><link>https://a.b/1</link></item>"),
                 id="second-description-is-content"),
    pytest.param(rss("<item><title>A</title><content:encoded>&lt;p&gt;body&lt;/p&gt;"
                     "</content:encoded><description>  </description><link>https://a.b/1</link>"
                     "</item>", CONTENT), id="blank-description-then-content"),
    pytest.param(rss("<item><title>A</title><guid>https://a.b/g?utm_source=x</guid></item>"),
                 id="permalink-guid-is-the-link"),
    pytest.param(rss('<item><title>A</title><guid isPermaLink="false">x-1</guid></item>'),
                 id="guid-not-permalink"),
    pytest.param(rss('<item><title>A</title><link>https://a.b/1?x=1&amp;amp;y=2</link>'
                     "<source url='https://s.example/'>S</source><title>B</title></item>"),
                 id="link-ampersands-and-source"),
    pytest.param(b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" '
                 b'xml:base="https://site.example/blog/" xml:lang="de_AT"><title>F</title>'
                 b'<entry><title type="html">&lt;b&gt;A&lt;/b&gt; &amp;amp; B</title>'
                 b'<link rel="enclosure" href="a.mp3"/><link href="posts/1"/><id>tag:x,1</id>'
                 b"<updated>2024-04-30T14:00:00+02:00</updated><summary>S</summary>"
                 b"</entry></feed>", id="atom-xml-base-and-lang"),
    pytest.param(b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" '
                 b'xml:base="https://site.example/blog/"><title>F</title><entry><title>A</title>'
                 b'<link href=""/><id>tag:x,2</id></entry></feed>', id="atom-empty-href"),
    pytest.param('<?xml version="1.0" encoding="windows-1251"?><rss version="2.0"><channel>'
                 "<language>ru</language><item><title>Привет — мир</title><link>https://a.b/"
                 "</link><pubDate>Tue, 30 Apr 2024 15:00:00 +0300</pubDate></item></channel>"
                 "</rss>".encode("cp1251"), id="windows-1251"),
    pytest.param(rss("<item><title>CafÃ© \u0093quoted\u0094</title><link>https://a.b/1</link>"
                     "</item>"), id="latin1-repair-and-cp1252"),
    # cp1252's characters written as references (only those; the document has no other).
    *(pytest.param(rss(f"<item><title>a{ref}b</title><link>https://a.b/1</link></item>"),
                   id=f"cp1252-reference-{ref[2:-1]}")
      for ref in ("&#150;", "&#0128;", "&#x9F;", "&#x093;", "&#1280;", "&#x800;")),
    # A bare DOCTYPE at the start of a line: no DTD, no entities; feedparser strips it.
    pytest.param(rss("<item><title>A</title><link>https://a.b/1</link></item>").replace(
        b"<rss", b"\n<!DOCTYPE rss >\n<rss", 1), id="bare-doctype"),
    pytest.param(rss("<item><title>A</title><image>https://a.b/i.jpg</image><title>B</title>"
                     "<link>https://a.b/1</link></item>"), id="image-in-item"),
    pytest.param(b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>P</title>'
                 b"<entry><title>A</title><link href='https://a.b/1'/><id>tag:x,3</id>"
                 b"<source><title>Origin</title><subtitle>s</subtitle><link rel='self' "
                 b"href='https://o.example/atom'/><id>https://o.example/</id><updated>"
                 b"2024-01-01T00:00:00Z</updated></source></entry></feed>",
                 id="atom-source-closing-the-entry"),
    # Declared UTF-16 without a byte-order mark, sent as UTF-8 (an even number of bytes:
    # feedparser's UTF-16 reading finds no "<", hence no feed, and the reference re-reads it).
    pytest.param(_even(rss("<item><title>Hello</title><link>https://a.b/1</link></item>")
                       .replace(b'encoding="utf-8"', b'encoding="utf-16"')),
                 id="false-utf-16"),
    # Undefined entities (HTML5 names written into XML): feedparser's loose parser keeps them
    # as they are, in text and attributes, but not inside CDATA or comments.
    pytest.param(rss("<item><title>Note&colon; a</title><description>&lt;p&gt;x&colon;"
                     " y&lt;/p&gt;<![CDATA[ &colon; ]]></description><link>https://a.b/1?q&colon;"
                     "</link><guid isPermaLink='false'>id&colon;1</guid></item><!-- &colon; -->"
                     "<item><title>B</title><link>https://a.b/2</link></item>"),
                 id="undefined-entities"),
    pytest.param(b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>F</title>'
                 b'<entry><title type="html">A&amp;colon; &lt;b&gt;&NewLine;&lt;/b&gt;</title>'
                 b'<link href="https://a.b/x&colon;y"/><id>tag:x,1</id><content type="html">'
                 b"&lt;p&gt;one&Tab;two&lt;/p&gt;</content></entry></feed>",
                 id="atom-undefined-entities"),
    # A CDN's e-mail protection injected after the root: the loose parser finds nothing there.
    pytest.param(rss("<item><title>A</title><link>https://a.b/1</link></item>")
                 + b'\n<script data-cfasync="false" src="/cdn-cgi/scripts/x/email-decode.min.js">'
                 b"</script>\n", id="script-after-the-root"),
    # Control characters: the loose parser keeps them in the text, wherever they are in it.
    pytest.param(rss("<item><title>\x1fA\x02B \x0b</title><description>&lt;p&gt;x\x02\x03 y"
                     "&lt;/p&gt;<![CDATA[\x01]]></description><link>https://a.b/1\x02</link>"
                     "<guid isPermaLink='false'>\x0cg\x07</guid><pubDate>Tue, 30 Apr 2024 "
                     "15:00:00 +0300\x02</pubDate></item><!-- \x00 -->"), id="control-characters"),
    pytest.param(rss("<item><title>Caf\u00c3\u00a9\x02</title><link>https://a.b/1</link></item>",
                     "", "<language>\x02ru</language>"), id="control-characters-latin1-repair"),
]


@pytest.mark.parametrize("body", QUIRKS)
def test_quirks_are_read_as_feedparser_reads_them(body: bytes) -> None:
    fast, reference = _both(body, "quirks", "application/rss+xml")
    assert isinstance(fast, ParsedFeed) and fast.parser == FAST_PATH
    _assert_same(fast, reference)


BOMB = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode()
                   for i in range(8))
        + b']><rss version="2.0"><channel><item><title>&i;</title>'
          b"<link>https://example.org/bomb</link></item></channel></rss>")


def _external_entity(secret: Path) -> bytes:
    return (f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
            '<rss version="2.0"><channel><item><title>leak &x;</title>'
            "<link>https://example.org/xxe</link></item></channel></rss>").encode()


HOSTILE = [
    pytest.param(BOMB, id="billion-laughs"),
    # libxml2 without huge_tree: no text node over 10 MB, no nesting over 256 levels.
    pytest.param(rss(f"<item><title>{'A' * 11_000_000}</title><link>https://a.b/1</link>"
                     "</item>"), id="huge-text-node"),
    pytest.param(rss("<item><title>deep</title><link>https://a.b/1</link>"
                     + "<x>" * 300 + "</x>" * 300 + "</item>"), id="deep-nesting"),
    pytest.param(rss("<item><title>unclosed<link>https://a.b/1</link></item>"), id="malformed"),
    pytest.param(rss("<item><title>a&nbsp;b</title><link>https://a.b/1</link></item>"),
                 id="html-entity-in-xml"),
    pytest.param(rss("<item><title>a&colon;b&nbsp;</title><link>https://a.b/1</link></item>"),
                 id="html-entity-beside-an-undefined-one"),
    pytest.param(rss("<item><title>a&colon;b</title><link>https://a.b/1</link></item>"
                     "<unclosed>"), id="undefined-entity-and-malformed"),
    pytest.param(rss("<item><title>A</title><link>https://a.b/1</link></item>")
                 + b"<script>x</script>", id="script-with-content-after-the-root"),
    pytest.param(rss("<item><title>A</title><link>https://a.b/1</link></item>")
                 + b"<script></script><item><title>B</title></item>", id="item-after-the-root"),
    pytest.param(rss("<item><title>A</title><link href='https://a.b/\x02'>https://a.b/1</link>"
                     "</item>"), id="control-character-in-an-attribute"),
    pytest.param(rss("<item><title>A\x02\U000f0002</title><link>https://a.b/1</link></item>"),
                 id="control-character-and-its-mark"),
    pytest.param(b'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "http://127.0.0.1:9/rss.dtd">'
                 b'<rss version="2.0"><channel><item><title>t</title></item></channel></rss>',
                 id="external-dtd"),
    pytest.param(b'<?xml version="1.0"?>\n<!DOCTYPE rss SYSTEM "http://127.0.0.1:9/rss.dtd">'
                 b'\n<rss version="2.0"><channel><item><title>t</title></item></channel></rss>',
                 id="external-dtd-on-its-own-line"),
    pytest.param(b'<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY e "x">]>\n<rss version="2.0">'
                 b"<channel><item><title>&e;</title></item></channel></rss>",
                 id="internal-subset-on-its-own-line"),
    pytest.param(b'<?xml version="1.0"?>\n<!DOCTYPE rss>\n<!DOCTYPE rss>\n<rss version="2.0">'
                 b"<channel><item><title>t</title></item></channel></rss>", id="two-doctypes"),
]


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_documents_are_refused_and_read_by_the_reference(body: bytes) -> None:
    started = time.process_time()  # CPU seconds: the work a document costs, whatever the load
    assert read_wellformed(body, None) is None
    fast, reference = _both(body, "hostile")
    assert time.process_time() - started < 30
    assert fast == reference
    if isinstance(fast, ParsedFeed):
        assert fast.parser == REFERENCE_PATH
        assert all(len(item.title) <= 500 for item in fast.items)


def test_an_external_entity_is_neither_read_nor_accepted(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET", encoding="utf-8")
    body = _external_entity(secret)
    assert read_wellformed(body, None) is None
    parsed = parse_feed(body, None, FeedSource("x", "X", None), FETCHED)
    assert not any("TOPSECRET" in item.title + item.summary for item in parsed.items)


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        pytest.param(None, FAST_PATH, id="none"),
        pytest.param("application/rss+xml; charset=utf-8", FAST_PATH, id="rss-utf8"),
        pytest.param("text/xml; charset=UTF-8", FAST_PATH, id="text-xml-charset"),
        # feedparser flags these (bozo) or guesses: the reference reads them.
        pytest.param("text/html; charset=utf-8", REFERENCE_PATH, id="text-html"),
        pytest.param("text/xml", REFERENCE_PATH, id="text-xml-no-charset-non-ascii"),
    ],
)
def test_which_path_reads_a_document(content_type: str | None, expected: str) -> None:
    body = rss("<item><title>Привет</title><link>https://a.b/1</link></item>")
    fast, reference = _both(body, "ct", content_type)
    assert isinstance(fast, ParsedFeed) and fast.parser == expected
    assert isinstance(reference, ParsedFeed)
    assert (fast.items, fast.encoding, fast.warning) == (
        reference.items, reference.encoding, reference.warning)


def _declared(encoding: str, items: str) -> bytes:
    body = (f'<?xml version="1.0" encoding="{encoding}"?><rss version="2.0"><channel>'
            f"<title>T</title>{items}</channel></rss>").encode()
    return body if len(body) % 2 else body + b"\n"  # odd: UTF-16 cannot decode it


OVERRIDES = [
    # UTF-8 declared UTF-16, of an odd length: UTF-16 does not decode it, chardet's guess does.
    pytest.param(_declared("utf-16", "<item><title>Café – ok</title><link>https://a.b/1</link>"
                           "</item>"), None, id="utf16-declared-odd"),
    pytest.param(_declared("utf-16", "<item><title>Café – ok</title><link>https://a.b/1</link>"
                           "</item>"), "application/xml; charset=UTF-16",
                 id="utf16-declared-odd-charset"),
    pytest.param(_declared("windows-1252", "<item><title>caf\u00e9</title><link>https://a.b/1"
                           "</link></item>").replace(b"\xc3\xa9", b"\xe9\x81"), None,
                 id="cp1252-undefined-byte"),
    pytest.param(_declared("x-no-such-encoding", "<item><title>Привет</title>"
                           "<link>https://a.b/1</link></item>"), "application/rss+xml",
                 id="unknown-encoding"),
]


@pytest.mark.parametrize(("body", "content_type"), OVERRIDES)
def test_an_encoding_feedparser_overrides_is_read_as_feedparser_reads_it(
        body: bytes, content_type: str | None) -> None:
    fast, reference = _both(body, "override", content_type)
    assert isinstance(fast, ParsedFeed) and fast.parser == FAST_PATH
    assert fast.warning is not None and "but parsed as" in fast.warning
    _assert_same(fast, reference)


def test_an_overridden_encoding_with_a_malformed_body_is_left_to_feedparser() -> None:
    body = _declared("utf-16", "<item><title>a&colon;b</title><link>https://a.b/1</link></item>")
    fast, reference = _both(body, "override-malformed")
    assert isinstance(fast, ParsedFeed) and fast.parser == REFERENCE_PATH


def test_a_body_naming_a_local_file_is_not_read_from_disk(tmp_path: Path) -> None:
    local = tmp_path / "feed.xml"
    local.write_bytes(rss("<item><title>LOCAL SECRET</title><link>https://a.b/1</link></item>"))
    for parse in (parse_feed, parse_feed_reference):
        with pytest.raises(ParseError):  # the path's own bytes: not a feed
            parse(str(local).encode(), None, FeedSource("x", "X", None), FETCHED)


@pytest.mark.parametrize(("body", "content_type"), [
    pytest.param(b'{"version": "https://jsonfeed.org/version/1", "items": [{"id": "1", '
                 b'"content_html": "a <{ b } & c &amp; <3"}]}', None, id="json-feed"),
    pytest.param(b'[{"title": "x"}]', "application/json", id="json-content-type"),
    pytest.param(b"Forbidden\n", None, id="plain-text"),
    pytest.param(b"  \n\t", None, id="blank"),
    pytest.param(b"", None, id="empty"),
    pytest.param("Доступ запрещён".encode("cp1251"), "text/plain; charset=windows-1251",
                 id="not-xml-media-type"),
    pytest.param(b"a < b and c<d", "application/rss+xml", id="lone-brackets"),
    pytest.param(b"x <item><title>T</title></item>", None, id="a-tag-in-text"),
])
def test_a_body_without_markup_is_no_feed_for_the_same_reason(
        body: bytes, content_type: str | None) -> None:
    fast, reference = _both(body, "no-markup", content_type)
    assert fast == reference  # the same ParseError, or the same feed


# Byte sequences that are not UTF-8 (overlong, surrogate, past U+10FFFF, cut short, stray),
# and U+FFFE, which Python decodes and XML forbids.
NOT_UTF8 = [b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xc3",
            b"\xe2\x82", b"\xff", b"\xf0\x80\x80\xaf", b"\xef\xbf\xbe"]
PLACES = {
    "text": "<item><title>a{}b</title><link>https://a.b/1</link></item>",
    "attribute": "<item><title>a</title><link>https://a.b/1</link><category domain='{}'>c"
                 "</category></item>",
    "comment": "<item><title>a</title><!-- {} --><link>https://a.b/1</link></item>",
    "cdata": "<item><title><![CDATA[a{}b]]></title><link>https://a.b/1</link></item>",
    "pi": "<item><title>a</title><?pi {} ?><link>https://a.b/1</link></item>",
}


@pytest.mark.parametrize("place", list(PLACES))
def test_libxml2_refuses_what_is_not_utf8_wherever_it_is(place: str) -> None:
    """What parse._read_unchecked_utf8 relies on: a body libxml2 reads is valid UTF-8."""
    for sequence in NOT_UTF8:
        body = rss(PLACES[place].replace("{}", "\x00")).replace(b"\x00", sequence)
        assert read_wellformed(body, None, True) is None, sequence
        fast, reference = _both(body, "not-utf8", "application/rss+xml; charset=utf-8")
        if isinstance(fast, ParsedFeed) and fast.parser == FAST_PATH:
            _assert_same(fast, reference)
        else:
            assert fast == reference or (isinstance(fast, ParsedFeed) and
                                         fast.parser == REFERENCE_PATH)


def test_bytes_cut_by_a_repair_are_checked_too() -> None:
    body = rss("<item><title>A</title><link>https://a.b/1</link></item>") \
        + b'\n<script data-cfasync="\xff"></script>\n'
    fast, reference = _both(body, "repair-not-utf8")
    assert isinstance(fast, ParsedFeed) and fast.parser == FAST_PATH
    assert fast.bytes_replaced == 1
    _assert_same(fast, reference)

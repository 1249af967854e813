"""monitor/feeds/parse.py on small hand-written feed documents."""

from __future__ import annotations

import gzip
import unicodedata
from datetime import UTC, datetime

import pytest

from monitor.errors import ParseError
from monitor.feeds.normalize import item_id_for
from monitor.feeds.parse import FeedSource, ParsedFeed, TextLimits, parse_feed

FETCHED = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
SOURCE = FeedSource(feed_id="tass-ru", source="TASS", language=None)
LIMITS = TextLimits()


def parse(body: bytes, content_type: str | None = "application/rss+xml",
          source: FeedSource = SOURCE, limits: TextLimits = LIMITS) -> ParsedFeed:
    return parse_feed(body, content_type, source, FETCHED, limits)


def rss(items: str, declaration: str = '<?xml version="1.0" encoding="utf-8"?>',
        language: str = "") -> str:
    lang = f"<language>{language}</language>" if language else ""
    return (f'{declaration}<rss version="2.0"><channel><title>T</title>{lang}'
            f"{items}</channel></rss>")


RSS2 = rss("""
<item><title>Песков: Кремль не комментирует</title>
<link>https://tass.ru/politika/1?utm_source=rss</link><guid>https://tass.ru/politika/1</guid>
<description>&lt;p&gt;Пресс-секретарь &lt;b&gt;заявил&lt;/b&gt;&amp;nbsp;журналистам&lt;/p&gt;
</description><pubDate>Tue, 30 Apr 2024 15:00:00 +0300</pubDate></item>""",
           language="ru-RU").encode()

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="uk"><title>U</title><id>urn:f</id>
<updated>2024-04-30T12:00:00Z</updated>
<entry><title type="html">&lt;b&gt;Zelensky&lt;/b&gt; met allies</title>
<link href="https://www.ukrinform.net/rubric-polytics/1.html#top"/><id>urn:uuid:1</id>
<updated>2024-04-30T14:00:00+02:00</updated>
<content type="html">&lt;p&gt;Kyiv, April 30&lt;/p&gt;</content></entry></feed>"""

# RSS 1.0 (RDF), as Deutsche Welle's rdf feeds still serve it.
RDF = b"""<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
 xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://www.dw.com/"><title>DW</title><link>https://www.dw.com/</link>
<description>d</description><dc:language>en</dc:language></channel>
<item rdf:about="https://www.dw.com/en/a"><title>RDF item</title><link>https://www.dw.com/en/a</link>
<description>Berlin said</description><dc:date>2024-04-30T10:00:00+00:00</dc:date></item>
</rdf:RDF>"""


@pytest.mark.parametrize(
    ("body", "title", "summary", "url", "language", "published"),
    [
        pytest.param(RSS2, "Песков: Кремль не комментирует", "Пресс-секретарь заявил журналистам",
                     "https://tass.ru/politika/1", "ru", datetime(2024, 4, 30, 12, tzinfo=UTC),
                     id="rss2"),
        pytest.param(ATOM, "Zelensky met allies", "Kyiv, April 30",
                     "https://www.ukrinform.net/rubric-polytics/1.html", "uk",
                     datetime(2024, 4, 30, 12, tzinfo=UTC), id="atom"),
        pytest.param(RDF, "RDF item", "Berlin said", "https://www.dw.com/en/a", "en",
                     datetime(2024, 4, 30, 10, tzinfo=UTC), id="rss1-rdf"),
    ],
)
def test_dialects(body: bytes, title: str, summary: str, url: str, language: str,
                  published: datetime) -> None:
    parsed = parse(body)
    (item,) = parsed.items
    assert (item.title, item.summary, item.url, item.language) == (title, summary, url, language)
    # published_at in UTC whatever offset the feed used (+0300 Moscow, +02:00 Kyiv DST).
    assert item.published_at == published
    assert item.published_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert (item.feed_id, item.source, item.fetched_at) == ("tass-ru", "TASS", FETCHED)
    assert item.item_id == item_id_for(url, "tass-ru", item.guid)
    assert parsed.entries_without_id == 0


_RU_ITEM = "<item><title>В Москве прошла встреча</title><link>https://ria.ru/1</link></item>"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        # RIA Novosti and BelTA have served windows-1251 with an XML declaration.
        pytest.param(rss(_RU_ITEM, '<?xml version="1.0" encoding="windows-1251"?>'
                         ).encode("cp1251"), "application/rss+xml", id="cp1251-declared"),
        # RFC 7303 3.2: the charset parameter of the Content-Type is authoritative.
        pytest.param(rss(_RU_ITEM, '<?xml version="1.0"?>').encode("koi8-r"),
                     "text/xml; charset=KOI8-R", id="koi8r-header-only"),
        pytest.param(rss(_RU_ITEM, '<?xml version="1.0" encoding="koi8-r"?>').encode("koi8-r"),
                     None, id="koi8r-declared-no-header"),
    ],
)
def test_cyrillic_encodings(body: bytes, content_type: str | None) -> None:
    (item,) = parse(body, content_type).items
    assert item.title == "В Москве прошла встреча"


def test_latin1_from_content_type_only() -> None:
    body = rss("<item><title>Café à São Paulo</title><link>https://x.fr/1</link></item>",
               '<?xml version="1.0"?>').encode("latin-1")
    parsed = parse(body, "application/xml; charset=ISO-8859-1")
    assert parsed.items[0].title == "Café à São Paulo"
    assert parsed.encoding is not None and parsed.encoding.lower() == "iso-8859-1"


def test_gzip_body() -> None:
    # A .xml.gz served without Content-Encoding.
    assert parse(gzip.compress(RSS2)).items == parse(RSS2).items


def test_broken_gzip_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="gzip"):
        parse(gzip.compress(RSS2)[:40])


IDENTITIES = rss("""
<item><title>with link</title><link>https://tass.ru/1</link><guid>g-1</guid></item>
<item><title>guid only</title><guid isPermaLink="false">tass-12345</guid></item>
<item><title>title only</title><description>old RSS 0.91 style</description></item>
<item><description>nothing to call it by</description></item>
<item><title>with link UPDATE</title><link>https://tass.ru/1#x</link></item>
<item><guid isPermaLink="false">tass-12345</guid></item>
""").encode()


def test_identity_fallbacks_and_duplicates() -> None:
    parsed = parse(IDENTITIES)
    by_title = {item.title: item for item in parsed.items}
    assert set(by_title) == {"with link", "guid only", "title only"}
    guid_only = by_title["guid only"]
    assert (guid_only.url, guid_only.guid) == (None, "tass-12345")
    assert guid_only.item_id == item_id_for(None, "tass-ru", "tass-12345")
    assert by_title["title only"].item_id == item_id_for(None, "tass-ru", "title:title only")
    # The same story twice in one feed (same canonical URL, same guid) is published once,
    # and the first occurrence wins.
    assert parsed.entries_without_id == 1
    assert len(parsed.items) == 3


def test_permalink_guid_is_the_url() -> None:
    # RSS 2.0: <guid> without isPermaLink="false" is the item's URL.
    body = rss("<item><title>t</title><guid>https://tass.ru/2?utm_medium=rss</guid></item>")
    (item,) = parse(body.encode()).items
    assert item.url == "https://tass.ru/2"


@pytest.mark.parametrize(
    ("source_language", "document_language", "expected"),
    [
        pytest.param("uk", "ru-RU", "uk", id="source-overrides-document"),
        pytest.param(None, "ru-RU", "ru", id="document-region-dropped"),
        pytest.param(None, "EN_us", "en", id="underscore-and-case"),
        pytest.param(None, "", None, id="neither"),
    ],
)
def test_language(source_language: str | None, document_language: str,
                  expected: str | None) -> None:
    body = rss("<item><title>t</title><link>https://a.b/1</link></item>",
               language=document_language).encode()
    source = FeedSource("f", "S", source_language)
    assert parse(body, source=source).items[0].language == expected


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(b"<!DOCTYPE html><html><head><title>Login</title></head>"
                     b"<body><p>Please sign in</p></body></html>", "text/html", id="html-page"),
        # A captive portal or a CDN error page served with an XML type.
        pytest.param(b"<html><body><h1>502 Bad Gateway</h1></body></html>", "application/xml",
                     id="html-as-xml"),
        pytest.param(b"", "application/rss+xml", id="empty"),
        pytest.param(b"   \n", None, id="whitespace"),
        pytest.param(b'{"items": []}', "application/json", id="json"),
        pytest.param(b"\x00\x01\x02garbage", None, id="binary"),
    ],
)
def test_not_a_feed(body: bytes, content_type: str | None) -> None:
    with pytest.raises(ParseError, match="not a feed"):
        parse(body, content_type)


def test_empty_channel_is_a_feed_with_no_items() -> None:
    parsed = parse(rss("").encode())
    assert parsed.items == () and parsed.entries_without_id == 0


def test_hostile_title_is_bounded_and_clean() -> None:
    # Trojan-Source bidi override, zero-width joiners, terminal escapes, and 100 kB of text.
    hostile = ("\u202eevil\u200b\u200d\u2066title\u2069\u001b[31m\u0007 " + "A" * 100_000)
    body = rss(f"<item><title>{hostile}</title><link>https://x.com/1</link>"
               f"<description>{'word ' * 20_000}</description></item>").encode()
    parsed = parse(body, limits=TextLimits(max_title_chars=120, max_summary_chars=300))
    (item,) = parsed.items
    assert len(item.title) <= 120 and len(item.summary) <= 300
    assert item.title.startswith("evil title")
    assert item.summary.endswith("…")
    for text in (item.title, item.summary):
        assert not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text)


def test_links_differing_only_by_fragment_stay_distinct_entries() -> None:
    # Seen in the fastfeedparser corpus: a "now" page whose entries all link to one page
    # with different #anchors, each with its own guid.
    parsed = parse(rss(
        "<item><title>A</title><link>https://site.example/now#a</link><guid>g-a</guid></item>"
        "<item><title>B</title><link>https://site.example/now#b</link><guid>g-b</guid></item>"
        "<item><title>B again</title><link>https://site.example/now#b</link><guid>g-b</guid>"
        "</item>").encode())
    assert [item.title for item in parsed.items] == ["A", "B"]
    assert parsed.items[0].item_id != parsed.items[1].item_id


@pytest.mark.parametrize("padding", [b"", b" "], ids=["odd-length", "even-length"])
def test_utf8_declared_as_utf16_without_bom_is_read_whatever_its_length(padding: bytes) -> None:
    body = ('<?xml version="1.0" encoding="utf-16"?><rss version="2.0"><channel><title>T</title>'
            "<item><title>Привет</title><link>https://x.example/1</link></item>"
            "</channel></rss>").encode() + padding
    assert [item.title for item in parse(body, None).items] == ["Привет"]

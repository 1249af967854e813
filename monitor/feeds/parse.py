"""Bytes of a feed document -> Items. The only module that sees feedparser objects.

Two paths read a document into ``RawEntry``s; one normalization turns those into Items.
The fast path (``wellformed.py``, lxml) reads well-formed RSS 2.0, RSS 1.0 and Atom 1.0 whose
encoding is certain, and refuses whatever it is not sure it reads as feedparser would.
feedparser is the reference and reads the rest: every dialect (RSS 0.9x/1.0/2.0, Atom), any
encoding (HTTP Content-Type, the XML declaration, a BOM, or chardet as a last resort),
malformed documents. Sanitizing and relative-URI resolution are switched off because summaries
are reduced to plain text anyway; that is most of feedparser's time. ``ParsedFeed.parser``
says which path read a document.
"""

from __future__ import annotations

import calendar
import contextlib
import io
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import feedparser

from monitor.errors import ParseError
from monitor.feeds.entry import RawDocument, RawEntry
from monitor.feeds.inflate import GZIP_MAGIC, DecompressionError, inflate_gzip
from monitor.feeds.loose_repair import expat_warning
from monitor.feeds.normalize import canonical_url, item_id_for, item_texts
from monitor.feeds.wellformed import read_wellformed
from monitor.feeds.xml_charset import declared_utf8, utf8_document
from monitor.model import Item

FAST_PATH = "lxml"
REFERENCE_PATH = "feedparser"


@dataclass(frozen=True, slots=True)
class FeedSource:
    """What the parser needs to know about the feed an item came from."""

    feed_id: str
    source: str
    language: str | None


@dataclass(frozen=True, slots=True)
class TextLimits:
    max_title_chars: int = 500
    max_summary_chars: int = 2000
    max_inflated_bytes: int = 10 * 1024 * 1024  # a gzip body served raw inflates to this at most


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    items: tuple[Item, ...]
    entries_without_id: int  # entries with neither link nor guid: counted, not published
    encoding: str | None
    warning: str | None  # feedparser's complaint about a feed it could still read
    # Invalid bytes in a document declared UTF-8, read as U+FFFD; items carrying one are new
    # items, never new versions of items already published (see poller.py).
    bytes_replaced: int = 0
    parser: str = REFERENCE_PATH  # which path read it: FAST_PATH or REFERENCE_PATH


def parse_feed(
    body: bytes,
    content_type: str | None,
    source: FeedSource,
    fetched_at: datetime,
    limits: TextLimits = TextLimits(),
) -> ParsedFeed:
    """Parse one feed document; ParseError when it is not a feed at all."""
    return _parse(body, content_type, source, fetched_at, limits, fast=True)


def parse_feed_reference(
    body: bytes,
    content_type: str | None,
    source: FeedSource,
    fetched_at: datetime,
    limits: TextLimits = TextLimits(),
) -> ParsedFeed:
    """``parse_feed`` with feedparser alone: the reference the fast path is held to (the
    tests over ../shared/feeds, bench/parse.py)."""
    return _parse(body, content_type, source, fetched_at, limits, fast=False)


def _parse(body: bytes, content_type: str | None, source: FeedSource, fetched_at: datetime,
           limits: TextLimits, *, fast: bool) -> ParsedFeed:
    body = _maybe_gunzip(body, limits.max_inflated_bytes)
    if fast and _declares_utf8(body, content_type) and b"<!DOCTYPE" not in body[:4096]:
        document, body, replaced = _read_unchecked_utf8(body, content_type)
    else:
        body, replaced, valid = _valid_utf8(body, content_type)
        document = read_wellformed(body, content_type, valid) if fast else None
    parser = FAST_PATH
    if document is None:
        if fast:
            _refuse_markup_free(body, content_type)
        document, parser = _reference(body, content_type), REFERENCE_PATH
    language = source.language or _language_code(document.language)
    items, without_id = [], 0
    guids: dict[str, str | None] = {}
    for entry in document.entries:
        item = _item_from_entry(entry, source, language, fetched_at, limits)
        if item is None:
            without_id += 1
            continue
        if item.item_id in guids and item.guid and guids[item.item_id] != item.guid:
            # Links that differ only by #fragment, with their own guids: distinct entries.
            item = replace(item, item_id=item_id_for(None, source.feed_id, item.guid) or "")
        if item.item_id not in guids:  # a feed that lists one story twice publishes it once
            guids[item.item_id] = item.guid
            items.append(item)
    return ParsedFeed(tuple(items), without_id, document.encoding, document.warning, replaced,
                      parser)


def _reference(body: bytes, content_type: str | None) -> RawDocument:
    document = _feedparser(body, content_type)
    fixed = declared_utf8(body)
    if not _is_feed(document) and fixed is not None:
        # Declared UTF-16 without a byte-order mark, but really UTF-8 (seen in the wild):
        # feedparser reads such a body or not depending on whether its length is odd.
        document = _feedparser(fixed, content_type)
    if not _is_feed(document):
        reason = document.get("bozo_exception") or "no RSS or Atom document found"
        raise ParseError(f"not a feed: {_short(reason)}")
    warning = _short(document.get("bozo_exception")) if document.get("bozo") else None
    raw = document.feed.get("language") if document.get("feed") else None
    return RawDocument(tuple(_raw_entry(entry) for entry in document.entries),
                       raw if isinstance(raw, str) else None, document.get("encoding"), warning)


_MARKUP = re.compile(rb"<[A-Za-z/!?]")  # what sgmllib reads as a tag, comment, PI, declaration


def _refuse_markup_free(body: bytes, content_type: str | None) -> None:
    """ParseError, with feedparser's reason, for a body feedparser finds nothing in: one
    without a tag, comment, declaration or processing instruction (a JSON Feed, a plain-text
    error page). Its loose parser (the cost: ~0.05 s for a 370 KB JSON Feed) then reads only
    text, so the reason is its strict parser's error, which expat gives alone."""
    if not body or declared_utf8(body) is not None:
        return  # feedparser: no reason for an empty body; a second reading for the other
    decided = utf8_document(body, content_type)
    if decided is None or _MARKUP.search(decided[0]):
        return
    reason = expat_warning(decided[0])
    if reason is not None:
        raise ParseError(f"not a feed: {_short(reason)}")


def _raw_entry(entry: Any) -> RawEntry:
    # dict.get: FeedParserDict.get("updated_parsed") would fall back to published_parsed
    # (with a DeprecationWarning); that case is the next key's anyway.
    times = tuple(dict.get(entry, key) for key in ("published_parsed", "updated_parsed",
                                                   "created_parsed"))
    return RawEntry(link=_str(entry.get("link")), guid=_str(entry.get("id")),
                    title=_str(entry.get("title")), summary_html=_summary_html(entry),
                    times=times)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _feedparser(body: bytes, content_type: str | None) -> Any:
    headers = {"content-type": content_type} if content_type else {}
    try:
        # A stream, not bytes: feedparser opens bytes naming a local file and reads that
        # file instead (a server answering "/etc/..." would have it parse the monitor's files).
        return feedparser.parse(
            io.BytesIO(body), response_headers=headers, sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as exc:  # feedparser is meant not to raise; if it does, the body is bad
        raise ParseError(f"{type(exc).__name__}: {exc}") from exc


def _is_feed(document: Any) -> bool:
    return bool(document.get("version") or document.entries)


def _maybe_gunzip(body: bytes, max_bytes: int) -> bytes:
    """Some servers send gzip bytes without Content-Encoding (a .xml.gz on disk)."""
    if not body.startswith(GZIP_MAGIC):
        return body
    try:
        return inflate_gzip(body, max_bytes)
    except DecompressionError as exc:
        raise ParseError(f"gzip body cannot be decompressed: {exc}") from exc


_CHARSET = re.compile(rb"""charset\s*=\s*["']?([A-Za-z0-9._-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(
    rb"""^(?:\xef\xbb\xbf)?\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._-]+)""",
    re.IGNORECASE)


def _read_unchecked_utf8(body: bytes, content_type: str | None
                         ) -> tuple[RawDocument | None, bytes, int]:
    """The fast path's reading of a document declared UTF-8 (without a DOCTYPE), its body and
    how many bytes were replaced, as ``_valid_utf8`` then ``read_wellformed`` give them, but
    without decoding the whole body first (3 % of the parse path) when libxml2 reads it.

    libxml2 refuses every byte sequence that is not UTF-8, wherever it is (text, attribute,
    comment, CDATA, PI: tests/feeds/test_parse_paths.py), so a document it reads whole is
    valid UTF-8. Only when the fast path refuses the body, or repaired it (bytes cut or
    changed before libxml2 read them), is it decoded to be checked as before."""
    document = read_wellformed(body, content_type, True)
    if document is not None and document.warning is None:
        return document, body, 0
    checked, replaced, valid = _valid_utf8(body, content_type)
    if checked is body:  # valid: the reading above stands
        return document, body, 0
    return read_wellformed(checked, content_type, valid), checked, replaced


def _declares_utf8(body: bytes, content_type: str | None) -> bool:
    declared = _CHARSET.search(content_type.encode("ascii", "replace")) if content_type else None
    match = declared or _XML_ENCODING.match(body)
    return match is not None and match.group(1).lower() in (b"utf-8", b"utf8")


def _valid_utf8(body: bytes, content_type: str | None) -> tuple[bytes, int, bool]:
    """A document declared UTF-8 with a few invalid bytes keeps its valid text.

    feedparser would read the whole document as another encoding (MacRoman) and garble every
    item; the bad bytes become U+FFFD instead. Returns the body, how many were replaced, and
    whether the body returned is known to be valid UTF-8 (it was declared so).
    """
    if not _declares_utf8(body, content_type):
        return body, 0, False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("utf-8", "replace")
        return text.encode("utf-8"), text.count("\ufffd") - body.count("\ufffd".encode()), True
    return body, 0, True


def _short(reason: object) -> str:
    return str(reason).splitlines()[0][:200] if reason else ""


def _language_code(raw: str | None) -> str | None:
    if not raw or not raw.strip():
        return None
    return raw.strip().split("-")[0].split("_")[0].lower()[:3] or None


def _item_from_entry(
    entry: RawEntry, source: FeedSource, language: str | None, fetched_at: datetime,
    limits: TextLimits,
) -> Item | None:
    link = _first_text(entry.link)
    guid = _first_text(entry.guid)
    url = canonical_url(link) if link else None
    if url is None and guid and guid.startswith(("http://", "https://")):
        url = canonical_url(guid)  # RSS guid isPermaLink: the guid is the story's URL
    title, summary, item_id, content_hash = item_texts(
        _first_text(entry.title) or "", entry.summary_html, url, source.feed_id, guid,
        limits.max_title_chars, limits.max_summary_chars)
    if item_id is None:
        return None
    return Item(
        item_id=item_id, feed_id=source.feed_id, source=source.source, url=url, guid=guid,
        title=title, summary=summary, language=language,
        published_at=_entry_time(entry.times), fetched_at=fetched_at,
        content_hash=content_hash,
    )


def _first_text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _summary_html(entry: Any) -> str:
    summary = entry.get("summary")
    if isinstance(summary, str) and summary.strip():
        return summary
    for content in entry.get("content") or ():
        value = content.get("value") if isinstance(content, dict) else None
        if isinstance(value, str) and value.strip():
            return value
    return ""


def _entry_time(times: tuple[Any, ...]) -> datetime | None:
    for parsed in times:  # published, updated, created
        if parsed:
            # The instant timegm gives below, when the fields are a valid date (a quarter of
            # the time); timegm also reads fields out of range (a second 60...).
            year, month, day, hour, minute, second = parsed[:6]
            with contextlib.suppress(TypeError, ValueError):
                return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
            try:
                return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
            except (OverflowError, ValueError, OSError):
                continue
    return None

"""Pure helpers that turn raw feed fields into the Item contract's canonical forms.

Canonical URL, plain text from HTML, and the ids and hashes that make an item recognisable
across feeds and across re-issues.
"""

from __future__ import annotations

import contextlib
import hashlib
import html.entities
import importlib
import re
import unicodedata
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import ftfy

from monitor.feeds.html_text import bulk_text_pieces, html_to_text, simple_text_prefix

# Query parameters that only track the reader; removing them makes one story one URL.
_TRACKING_PREFIXES = ("utm_", "at_", "pk_", "mc_", "ns_")
_TRACKING_NAMES = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "yclid", "msclkid", "igshid", "mkt_tok",
    "_ga", "_gl", "_hsenc", "_hsmi", "ref_src", "cmpid", "ocid", "smid", "sr_share", "xtor",
    "wt_mc", "icid", "ito", "traffic_source",
})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in _TRACKING_NAMES or lowered.startswith(_TRACKING_PREFIXES)


# Most links: http(s), a plain host name, a path of printable ASCII, no port, user, query or
# fragment. For those urlsplit and urlunsplit only lower-case the scheme and host.
_PLAIN_URL = re.compile(r"(?i:(https?)://([a-z0-9.-]+))(/[!-\x22\x24-\x3e\x40-\x7e]*)?")


def canonical_url(url: str) -> str | None:
    """Scheme and host lower-cased, default port, tracking parameters and fragment dropped.

    Returns None for anything that is not an absolute http(s) URL.
    """
    plain = _PLAIN_URL.fullmatch(url)
    if plain is not None:
        scheme, host, path = plain.groups()
        return f"{scheme.lower()}://{host.lower()}{path or '/'}"
    return _split_canonical_url(url)


def _split_canonical_url(url: str) -> str | None:
    """``canonical_url`` for any URL, through urllib."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)]
    ) if parts.query else ""
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


_ASCII_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def _invisible_ranges() -> list[tuple[int, int]]:
    """Characters that carry no text but can hide or reorder it: controls, format marks (bidi
    overrides, zero-width joiners), private use, surrogates, as inclusive ranges of code
    points. Format marks live in the first two planes and plane 14 (tags); scanning only those
    keeps start-up fast."""
    scanned = [*range(0x20000), *range(0xE0000, 0xE1000)]
    points = [c for c in scanned if unicodedata.category(chr(c)) in ("Cc", "Cf", "Co", "Cs")]
    ranges, start, previous = [], points[0], points[0]
    for point in [*points[1:], -2]:
        if point != previous + 1:
            ranges.append((start, previous))
            start = point
        previous = point
    ranges.append((0xF0000, 0x10FFFF))  # private-use planes 15 and 16
    return ranges


_INVISIBLE_RANGES = _invisible_ranges()
_INVISIBLE = re.compile(
    "[" + "".join(f"\\U{start:08x}-\\U{end:08x}" for start, end in _INVISIBLE_RANGES) + "]")


def _drop_invisible(text: str) -> str:
    if text.isascii():
        return _ASCII_CONTROLS.sub(" ", text)
    return _INVISIBLE.sub(" ", text)


# Latin-1 letters followed by a continuation-looking character: the signature of UTF-8 bytes
# decoded as Latin-1/cp1252 (mojibake), as in feeds that encode their text twice.
_HINT_FIRST = "[\u00c2-\u00f4]"
_HINT_SECOND = "[\u0080-\u00bf\u0152-\u0178\u2013-\u203a]"
_MOJIBAKE_HINT = re.compile(_HINT_FIRST + _HINT_SECOND)
# The same in UTF-8: encoding a text and searching its bytes for the first letter's lead byte
# is two to three times quicker than the str pattern.
_HINT_FIRST_UTF8 = rb"\xc3[\x82-\xb4]"
_HINT_SECOND_UTF8 = rb"\xc2[\x80-\xbf]|\xc5[\x92-\xb8]|\xe2\x80[\x93-\xba]"
_MOJIBAKE_HINT_UTF8 = re.compile(_HINT_FIRST_UTF8 + b"(?:" + _HINT_SECOND_UTF8 + b")")


def _has_mojibake_hint(text: str) -> bool:
    return not text.isascii() and _MOJIBAKE_HINT_UTF8.search(
        text.encode("utf-8", "surrogatepass")) is not None


# plain_text compiled (native/, optional like html_text's): the same text, or None when
# unsure (the mojibake repair could apply, an HTML fragment the compiled reading passes on).
# Given this module's invisible characters, so that both readings use one table.
_native_plain_text: Callable[[str, int], str | None] | None = None
_native_item_texts: Callable[[str, str, str | None, str, str | None, int, int],
                             tuple[str, str, str | None, str] | None] | None = None
with contextlib.suppress(ImportError, AttributeError):  # not installed, or built before it
    _reader = importlib.import_module("monitor_native").PlainText(_INVISIBLE_RANGES)
    _native_plain_text, _native_item_texts = _reader.read, _reader.item_texts


def item_texts(title_html: str, summary_html: str, canonical: str | None, feed_id: str,
               guid: str | None, max_title: int, max_summary: int
               ) -> tuple[str, str, str | None, str]:
    """An entry's title and summary as plain text, its item id and its content hash, in one
    call (to the compiled reading when installed). Old feeds give neither link nor guid:
    the title is then the only identity there is."""
    if _native_item_texts is not None and (texts := _native_item_texts(
            title_html, summary_html, canonical, feed_id, guid, max_title, max_summary)) \
            is not None:
        return texts
    return python_item_texts(title_html, summary_html, canonical, feed_id, guid, max_title,
                             max_summary)


def python_item_texts(title_html: str, summary_html: str, canonical: str | None,
                      feed_id: str, guid: str | None, max_title: int, max_summary: int
                      ) -> tuple[str, str, str | None, str]:
    """``item_texts`` without the compiled reading."""
    title = plain_text(title_html, max_title)
    summary = plain_text(summary_html, max_summary)
    item_id = item_id_for(canonical, feed_id, guid or (f"title:{title}" if title else None))
    return title, summary, item_id, content_hash_for(title, summary)


def plain_text(value: str, max_chars: int) -> str:
    """HTML removed, entities decoded, mojibake repaired, invisible characters dropped,
    whitespace folded; cut at a word boundary with an ellipsis when longer than ``max_chars``.
    """
    if _native_plain_text is not None and (text := _native_plain_text(value, max_chars)) \
            is not None:
        return text
    return python_plain_text(value, max_chars)


def python_plain_text(value: str, max_chars: int) -> str:
    """``plain_text`` without the compiled reading."""
    enough = max_chars * 4  # bound the work on full-article bodies: the rest is cut anyway
    if "<" in value or "&" in value:
        text = None
        if len(value) > _HTML_PIECE_CHARS:
            kept, text = _html_until_decided(value, max_chars)
            if kept is not None:
                return kept
        value = html_to_text(value, enough) if text is None else text
    value = value[:enough]
    if _has_mojibake_hint(value):
        value = ftfy.fix_encoding(value)
    return truncate(_folded_past(value, max_chars), max_chars)


def _folded_past(text: str, max_chars: int) -> str:
    """``_visible_folded(text)``, or a prefix of it longer than ``max_chars``, which
    ``truncate`` cuts to the same text. Folding a prefix of a text gives a prefix of the
    folded whole, so most texts are folded only a little past ``max_chars`` (splitting into
    words is most of the cost of a long summary's folding)."""
    for size in (max_chars + max_chars // 8, max_chars * 2):
        if size >= len(text):
            break
        folded = _visible_folded(text[:size])
        if len(folded) > max_chars:
            return folded
    return _visible_folded(text)


# A long HTML summary is read in pieces of this size until its text decides what is kept:
# the 2,000 characters kept are most often in the first piece or two of a full article.
_HTML_PIECE_CHARS = 3000
# In HTML not yet read: a hint's first letter followed by what can put its second letter
# right after it in the text (the letter itself, a tag that is dropped, an entity)...
_HINT_IN_HTML = re.compile(_HINT_FIRST + _HINT_SECOND[:-1] + "<&]")
_HINT_IN_HTML_UTF8 = re.compile(_HINT_FIRST_UTF8 + b"(?:" + _HINT_SECOND_UTF8 + b"|[<&])")
# ... or an entity that writes the first letter (decimal, hexadecimal, or a name
# html.unescape reads, with ";" or without).
_HINT_FIRST_ENTITY = re.compile(
    "&(?:#0*(?:19[4-9]|2[0-3][0-9]|24[0-4])|#[xX]0*(?:[cC][2-9a-fA-F]|[dDeE][0-9a-fA-F]|[fF][0-4])"
    "|" + "|".join(sorted({name.rstrip(";") for name, text in html.entities.html5.items()
                           if re.search(_HINT_FIRST, text)}, key=len, reverse=True)) + ")")


def _html_until_decided(value: str, max_chars: int) -> tuple[str | None, str | None]:
    """``plain_text``'s reading of HTML, piece after piece: (the kept text, None) as soon as
    the text read decides it; else (None, the text, exact for at least its first
    ``max_chars * 4`` characters), or (None, None) to read it the whole-text way.

    The text read so far is a prefix of the whole's, so its folding is a prefix of the
    folded whole (``plain_text``): once longer than ``max_chars`` it decides the kept text,
    unless the mojibake repair could apply to the whole, which depends on all of it."""
    enough = max_chars * 4
    parts: list[str] = []
    chars, unsure = 0, False
    for piece, end in bulk_text_pieces(value, _HTML_PIECE_CHARS):
        if piece is None:  # a script, a style, a tag the regex passes do not read...
            return _tag_by_tag_until_decided(value, max_chars)
        parts.append(piece)
        chars += len(piece)
        if chars >= enough or end == len(value):
            break
        if not unsure and chars > max_chars:  # folding never lengthens a text
            text = "".join(parts)
            folded = _folded_past(text, max_chars)
            if len(folded) > max_chars:
                if not _mojibake_possible(text, value, end):
                    return truncate(folded, max_chars), None
                unsure = True  # read on to ``enough``, as the whole-text path does
    return None, "".join(parts)


def _tag_by_tag_until_decided(value: str, max_chars: int) -> tuple[str | None, str | None]:
    """``_html_until_decided`` with the tag-by-tag reading, over ``max_chars * 2``
    characters of text: (None, None) when those do not decide, to read the whole-text way."""
    read = simple_text_prefix(value, max_chars * 2)
    if read is None:
        return None, None
    text, end = read
    if end == len(value) or len(text) >= max_chars * 4:  # the whole text, or enough of it
        return None, text
    folded = _folded_past(text, max_chars)
    if len(folded) > max_chars and not _mojibake_possible(text, value, end):
        return truncate(folded, max_chars), None
    return None, None


def _mojibake_possible(text: str, value: str, end: int) -> bool:
    """Whether ``_MOJIBAKE_HINT`` can match the whole text of ``value``, knowing ``text``,
    the text of ``value[:end]`` (cut just before or after a tag): in ``text``, across its end, or
    in the text still unread. There, only a literal character or an entity writes a
    character into the text, and the one after a literal letter is the next literal one
    unless a tag or an entity follows."""
    if _has_mojibake_hint(text) or (text and "\u00c2" <= text[-1] <= "\u00f4"):
        return True
    if not value.isascii() and _HINT_IN_HTML_UTF8.search(
            value[end:].encode("utf-8", "surrogatepass")):
        return True
    return value.find("&", end) >= 0 and _HINT_FIRST_ENTITY.search(value, end) is not None


def _visible_folded(text: str) -> str:
    """``_folded(_drop_invisible(text))``. Most texts hold no invisible character but
    whitespace: str.isprintable (C) is False for every character ``_drop_invisible``
    replaces, and folding drops whitespace controls (\n, \t...) as it drops the spaces
    they would become, so a printable folded text is the answer without the regex pass."""
    folded = _folded(text)
    return folded if folded.isprintable() else _folded(_drop_invisible(text))


def _folded(text: str) -> str:
    """Whitespace runs as one space, none at the ends: str.split() splits on exactly the
    characters the regex \\s matches (str.isspace), in C."""
    return " ".join(text.split())


def truncate(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1]
    space = cut.rfind(" ")
    if space > max_chars // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def item_id_for(canonical: str | None, feed_id: str, guid: str | None) -> str | None:
    """From the canonical URL when there is one, else from feed id + guid; None if neither."""
    if canonical:
        return _digest("url", canonical)
    if guid:
        return _digest("guid", feed_id, guid)
    return None


def content_hash_for(title: str, summary: str) -> str:
    return _digest(title, summary)[:16]

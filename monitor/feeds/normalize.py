"""Pure helpers that turn raw feed fields into the Item contract's canonical forms.

Canonical URL, plain text from HTML, and the ids and hashes that make an item recognisable
across feeds and across re-issues.
"""

from __future__ import annotations

import hashlib
import html
import html.parser
import re
import unicodedata
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import ftfy

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


def canonical_url(url: str) -> str | None:
    """Scheme and host lower-cased, default port, tracking parameters and fragment dropped.

    Returns None for anything that is not an absolute http(s) URL.
    """
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
    )
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment, skipping scripts and styles."""

    _SKIP = frozenset({"script", "style", "noscript", "template"})
    _BREAKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.chars = 0
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BREAKS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BREAKS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)
            self.chars += len(data)


_WHITESPACE = re.compile(r"\s+")
_HTML_CHUNK_CHARS = 8192
_ASCII_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def _invisible_pattern() -> re.Pattern[str]:
    """Characters that carry no text but can hide or reorder it: controls, format marks (bidi
    overrides, zero-width joiners), private use, surrogates. Format marks live in the first two
    planes and plane 14 (tags); scanning only those keeps start-up fast."""
    scanned = [*range(0x20000), *range(0xE0000, 0xE1000)]
    points = [c for c in scanned if unicodedata.category(chr(c)) in ("Cc", "Cf", "Co", "Cs")]
    ranges, start, previous = [], points[0], points[0]
    for point in [*points[1:], -2]:
        if point != previous + 1:
            ranges.append(f"\\U{start:08x}-\\U{previous:08x}")
            start = point
        previous = point
    ranges.append("\\U000f0000-\\U0010ffff")  # private-use planes 15 and 16
    return re.compile("[" + "".join(ranges) + "]")


_INVISIBLE = _invisible_pattern()


def _drop_invisible(text: str) -> str:
    if text.isascii():
        return _ASCII_CONTROLS.sub(" ", text)
    return _INVISIBLE.sub(" ", text)


# Latin-1 letters followed by a continuation-looking character: the signature of UTF-8 bytes
# decoded as Latin-1/cp1252 (mojibake), as in feeds that encode their text twice.
_MOJIBAKE_HINT = re.compile("[\u00c2-\u00f4][\u0080-\u00bf\u0152-\u0178\u2013-\u203a]")


def plain_text(value: str, max_chars: int) -> str:
    """HTML removed, entities decoded, mojibake repaired, invisible characters dropped,
    whitespace folded; cut at a word boundary with an ellipsis when longer than ``max_chars``.
    """
    enough = max_chars * 4  # bound the work on full-article bodies: the rest is cut anyway
    if "<" in value or "&" in value:
        text = _simple_html_text(value, enough)
        value = _html_text(value, enough) if text is None else text
    value = value[:enough]
    if _MOJIBAKE_HINT.search(value):
        value = ftfy.fix_encoding(value)
    text = _WHITESPACE.sub(" ", _drop_invisible(value)).strip()
    return truncate(text, max_chars)


def _html_text(value: str, enough: int) -> str:
    """The reference: html.parser over the fragment, fed until it holds ``enough`` text."""
    extractor = _TextExtractor()
    for start in range(0, len(value), _HTML_CHUNK_CHARS):
        extractor.feed(value[start:start + _HTML_CHUNK_CHARS])
        if extractor.chars > enough:
            break
    extractor.close()
    return "".join(extractor.parts)


# html.parser's own patterns, so that a tag ends where it ends for html.parser; a Python
# whose html.parser lacks them (its rules changed) always takes the reference.
_START_TAG_END = getattr(html.parser, "locatestarttagend_tolerant", None)
_TAG_NAME = getattr(html.parser, "tagfind_tolerant", None)
_ATTRIBUTE = getattr(html.parser, "attrfind_tolerant", None)
_END_TAG = getattr(html.parser, "endtagfind", None)
_COMMENT_END = re.compile(r"--\s*>")


def _simple_html_text(value: str, enough: int) -> str | None:
    """What ``_html_text`` gives, for fragments made only of tags, end tags, comments and
    text, without scripts or styles (html.parser's raw-text elements); None for anything
    else (``<!DOCTYPE``, ``<?``, a lone ``<``, a tag cut short), which goes to the reference.

    html.parser's method calls per tag were a fifth of the parse path's time."""
    if _START_TAG_END is None or _TAG_NAME is None or _ATTRIBUTE is None or _END_TAG is None:
        return None
    parts: list[str] = []
    chars = skipping = position = 0
    while chars <= enough:
        bracket = value.find("<", position)
        text = value[position:] if bracket < 0 else value[position:bracket]
        if text and not skipping:
            parts.append(html.unescape(text) if "&" in text else text)
            chars += len(parts[-1])
        if bracket < 0:
            break
        tag = _tag_at(value, bracket)
        if tag is None:
            return None
        name, closing, position = tag
        if name in ("script", "style") and closing != "end":
            return None
        skipping = _apply_tag(parts, name, closing, skipping)
    return "".join(parts)


def _apply_tag(parts: list[str], name: str, closing: str, skipping: int) -> int:
    """``_TextExtractor``'s handling of one tag; returns the new skipping depth."""
    if closing != "end":  # a start tag, or <br/>: start, then end
        if name in _TextExtractor._SKIP:
            skipping += 1
        elif name in _TextExtractor._BREAKS:
            parts.append(" ")
    if closing != "start":
        if name in _TextExtractor._SKIP and skipping:
            skipping -= 1
        elif name in _TextExtractor._BREAKS:
            parts.append(" ")
    return skipping


def _tag_at(value: str, start: int) -> tuple[str, str, int] | None:
    """(lower-cased name, "start" | "end" | "both" | "comment", position after it) of the
    tag html.parser reads at ``start``, or None when it would not read a plain tag there."""
    assert _START_TAG_END and _TAG_NAME and _ATTRIBUTE and _END_TAG
    following = value[start + 1:start + 2]
    if following.isascii() and following.isalpha():
        found = _START_TAG_END.match(value, start)
        end = found.end() if found else start
        if value.startswith(">", end):
            end += 1
        elif value.startswith("/>", end):
            end += 2
        else:
            return None
        name = _TAG_NAME.match(value, start + 1)
        position = name.end()
        while position < end and (attribute := _ATTRIBUTE.match(value, position)):
            position = attribute.end()
        rest = value[position:end].strip()
        if rest not in (">", "/>"):
            return None
        return name.group(1).lower(), "both" if rest == "/>" else "start", end
    if following == "/":
        close = value.find(">", start + 1)
        found = _END_TAG.match(value, start, close + 1) if close > 0 else None
        return (found.group(1).lower(), "end", close + 1) if found else None
    if value.startswith("<!--", start):
        found = _COMMENT_END.search(value, start + 4)
        return ("", "comment", found.end()) if found else None
    return None


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

"""Documents well-formed but for three common faults, repaired to read as feedparser reads them.

feedparser's strict parser (expat) stops at the first fault and its loose parser reads the
whole document again. These faults are repaired so that the fast path reads the document as
that loose parser does:

- a ``<script ...></script>`` after the root element (a CDN's e-mail protection injected into
  every response): the loose parser finds nothing of a feed in it, so it is cut;
- an undefined entity such as ``&colon;`` (an HTML5 name written into XML): the loose parser
  keeps ``&name;`` as written wherever the name is not one of HTML 4's
  (``html.entities.name2codepoint``), in text and attribute values alike, as a strict parser
  reads ``&amp;name;``; exactly those are written as ``&amp;name;`` (not inside CDATA
  sections, comments or processing instructions, where nothing is an entity);
- a control character XML forbids (U+0000-U+001F but tab, newline, return): the loose parser
  keeps it in the text. Each is marked with a private-use character (U+F0000 plus its code,
  which XML allows in text but not in names) that ``unmarked`` turns back into it when the
  fast path reads an element's text, before anything else touches the text; a mark left in
  an attribute value is the caller's to refuse (``marks_in``).

``repaired`` also gives the warning feedparser reports: expat's error, found by expat itself
without feedparser's handlers. The fast path then reads the document; anything else wrong
with it still makes libxml2 refuse it. tests/feeds/test_parse_paths.py holds both paths to
the same Items (and warning) over these documents.
"""

from __future__ import annotations

import html.entities
import re
from typing import NamedTuple
from xml.parsers import expat

# The names sgmllib reads as an entity reference, ended by ";"; CDATA sections, comments and
# processing instructions are matched whole so that nothing inside them is changed.
_ENTITY = rb"&(?!(?:lt|gt|amp|quot|apos);)([a-zA-Z][-.a-zA-Z0-9]*);"
_ENTITY_OR_SKIPPED = re.compile(rb"<!\[CDATA\[.*?\]\]>|<!--.*?-->|<\?.*?\?>|" + _ENTITY, re.DOTALL)
# The same entities anywhere: none there, none to escape (a quicker pass than the one above,
# which calls back for every CDATA section).
_ANY_ENTITY = re.compile(_ENTITY)
# The root's end tag, then only empty script elements (their tail: at most a few KiB).
_TRAILING_SCRIPTS = re.compile(
    rb"(</(?:rss|feed|rdf:RDF)[ \t\r\n]*>)[ \t\r\n]*"
    rb"(?:<script\b[^<>]*>[ \t\r\n]*</script>[ \t\r\n]*)+\Z")
_TAIL_BYTES = 4096
_XML_DECLARATION = re.compile(rb"^<\?xml[^>]*?>")  # feedparser's RE_XML_DECLARATION
_UTF8_DECLARATION = b"<?xml version='1.0' encoding='utf-8'?>"



class Repair(NamedTuple):
    data: bytes
    warning: str  # feedparser's bozo_exception, first line
    marked: bool  # control characters marked: read texts through ``unmarked``


def repaired(data: bytes) -> Repair | None:
    """``data`` (UTF-8, as feedparser hands it to expat but for its XML declaration) with
    the faults repaired, and feedparser's warning; None when it holds none of them, an
    entity that feedparser does not keep as it is (an HTML 4 name), or marks already."""
    if b"<!DOCTYPE" in data:  # entities a DOCTYPE defines are not undefined
        return None
    tail = data[-_TAIL_BYTES:]
    cut = _TRAILING_SCRIPTS.sub(rb"\1", tail, count=1)
    escaped = _escaped_undefined_entities(data if cut == tail else data[:-_TAIL_BYTES] + cut)
    if escaped is None:
        return None
    # Deleting the bytes and comparing lengths: a few times quicker than the regex search.
    marked = len(escaped.translate(None, _CONTROL_BYTES)) != len(escaped)
    if marked:
        if _MARK_PREFIX in escaped:
            return None
        escaped = _CONTROL.sub(_mark, escaped)
    if escaped == data:
        return None
    warning = expat_warning(data)
    return None if warning is None else Repair(escaped, warning, marked)


_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_CONTROL_BYTES = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])  # the same bytes
_MARK_BASE = 0xF0000
_MARK_PREFIX = chr(_MARK_BASE).encode()[:3]  # U+F0000-U+F003F in UTF-8
_MARKS = re.compile(f"[{chr(_MARK_BASE)}-{chr(_MARK_BASE + 0x1F)}]")


def _mark(found: re.Match[bytes]) -> bytes:
    return chr(_MARK_BASE + found.group()[0]).encode()


def unmarked(text: str) -> str:
    """A text of a marked document with its control characters back."""
    return _MARKS.sub(lambda found: chr(ord(found.group()) - _MARK_BASE), text)


def marks_in(value: str) -> bool:
    return _MARKS.search(value) is not None


def _escaped_undefined_entities(data: bytes) -> bytes | None:
    """``data`` with its undefined entities escaped; None when one is an HTML 4 name."""
    if b"&" not in data or _ANY_ENTITY.search(data) is None:
        return data

    def escape(found: re.Match[bytes]) -> bytes:
        name = found.group(1)
        if name is None:
            return found.group(0)
        if name.decode("ascii") in html.entities.name2codepoint:
            raise _HtmlEntity  # feedparser's loose parser decodes those
        return b"&amp;" + found.group(0)[1:]

    try:
        return _ENTITY_OR_SKIPPED.sub(escape, data)
    except _HtmlEntity:
        return None


class _HtmlEntity(Exception):
    pass


def expat_warning(data: bytes) -> str | None:
    """The first line of the error feedparser's strict parser reports on ``data``, or None
    when expat reads it whole. feedparser gives expat the document with its XML declaration
    replaced by one naming UTF-8 (``encodings.convert_to_utf8``), namespaces on."""
    if _XML_DECLARATION.search(data):
        data = _XML_DECLARATION.sub(_UTF8_DECLARATION, data, count=1)
    else:
        data = _UTF8_DECLARATION + b"\n" + data
    parser = expat.ParserCreate(None, " ")
    try:
        parser.Parse(data, True)
    except expat.ExpatError as error:
        # xml.sax's SAXParseException as str(): "<unknown>:line:column: message"
        return f"<unknown>:{error.lineno}:{error.offset}: {expat.ErrorString(error.code)}"
    return None

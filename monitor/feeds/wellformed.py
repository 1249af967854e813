"""The fast parse path: well-formed RSS 2.0, RSS 1.0 (RDF) and Atom 1.0 read with lxml.

``read_wellformed`` returns the document's ``RawEntry``s exactly as feedparser would give
them, or None when it is not sure it can, and the caller then asks feedparser. It refuses:
bytes whose encoding it cannot decide as feedparser does (``xml_charset``), anything libxml2 does
not find well-formed (but for the faults ``loose_repair`` repairs as feedparser's loose
parser reads them: undefined entities, a script after the root, control characters), a
DOCTYPE other than a bare ``<!DOCTYPE name>`` that feedparser strips (entities, DTDs: the
bomb and XXE cases), an unknown root, entries outside their usual
place, and entries holding an element that feedparser maps onto the fields read here in a
way this module does not copy (an image or a source with elements inside, unless a source
closes its entry; XHTML or base64 content, nested markup in a title...).

Where it accepts, it copies feedparser's rules (``feedparser/namespaces/_base.py`` and
``mixin.py``): which element wins when several give a title, link, id or summary (depth
and order); a permalink guid standing for a missing link; links resolved against xml:base;
strip, the UTF-8-read-as-Latin-1 repair and the cp1252 mapping applied to every text;
dates as feedparser's own date parser reads them (``feed_dates``). Element
names are feedparser's (namespace -> prefix from its own table, lower-cased), so a feed using
an unusual prefix is read the same way by both paths. tests/feeds/test_parse_paths.py holds
the two paths to the same entries over every document in ../shared/feeds.

The parser is hardened: no network, no DTD loading, entities never expanded, libxml2's
default size limits (no huge_tree), no recovery from errors.

When native/ is installed, its compiled copy of this reading (``FeedReader``, given this
module's tables) is tried first on the UTF-8 data decided here: the same entries, or None
when it is not sure (whatever libxml2 might read otherwise, a link under a base URI, markup
in a field...), and then lxml reads the document as before. tests/feeds/
test_native_wellformed.py holds the two readings equal, over the corpus and mutations of it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import re
import time
from dataclasses import dataclass, field
from typing import Any

from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urifixer, _urljoin, make_safe_absolute_uri
from lxml import etree

from monitor.feeds.entry import RawDocument, RawEntry
from monitor.feeds.feed_dates import parse_date
from monitor.feeds.loose_repair import marks_in, repaired, unmarked
from monitor.feeds.xml_charset import encoding_override, false_utf16, utf8_document

_ATOM = "{http://www.w3.org/2005/Atom}"
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_RDF_ABOUT = f"{_RDF}about"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"

_PREFIXES = {uri.lower(): prefix for uri, prefix in _FeedParserMixin.namespaces.items()}
_HANDLERS = frozenset(name.split("_", 2)[2] for name in dir(_FeedParserMixin)
                      if name.startswith(("_start_", "_end_")))

_TITLES = frozenset({"title", "dc_title"})
_SUMMARIES = frozenset({"description", "summary", "dc_description", "itunes_summary",
                        "media_description"})
_CONTENTS = frozenset({"content", "content_encoded", "fullitem"})
_TIMES = {  # feedparser's key for each date element: published, updated, created
    "published": 0, "pubdate": 0, "issued": 0, "dcterms_issued": 0,
    "updated": 1, "modified": 1, "lastbuilddate": 1, "dc_date": 1, "dcterms_modified": 1,
    "created": 2, "dcterms_created": 2,
}
# "image" and "textinput" in an entry: feedparser too forgets which title came first.
_RESETS = frozenset({"source", "image", "textinput"})
# Elements feedparser has a handler for that only write fields Items do not use.
_HARMLESS = frozenset({
    "author", "category", "cc_license", "cloud", "contributor", "copyright", "rights",
    "creativecommons_license", "dc_author", "dc_contributor", "dc_creator", "dc_publisher",
    "dc_rights", "dc_subject", "dcterms_valid", "email", "enclosure", "expirationdate",
    "homepage", "itunes_author", "itunes_category", "itunes_email", "itunes_image",
    "itunes_name", "itunes_owner", "itunes_subtitle", "subtitle", "keywords", "tags",
    "managingeditor", "webmaster", "media_category", "media_content", "media_credit",
    "media_group", "media_license", "media_player", "media_rating", "media_restriction",
    "media_thumbnail", "name", "uri", "url", "psc_chapter", "psc_chapters", "language",
    "dc_language", "info", "feedburner_browserfriendly", "newlocation", "height", "width",
    "generator", "where", "georssgeom", "media_keywords", "itunes_keywords", "itunes_block",
    "itunes_explicit", "tagline", "geom",
}) | frozenset(name for name in _HANDLERS if name.startswith(("georss_", "gml_")))
# Harmless elements feedparser reads as content: it serializes what they hold instead of
# reading it, so an element inside one (a title...) must not count; refused instead.
_CONTENT_LIKE = frozenset({"rights", "copyright", "dc_rights", "subtitle", "tagline",
                           "itunes_subtitle", "info", "feedburner_browserfriendly"})
# What the walk does with an element, by its name: one dict look-up per element. Names not
# here are passed over (their children walked).
_TITLE, _MEDIA_TITLE, _SUMMARY, _CONTENT, _LINK, _GUID, _RESET, _REFUSE, _TIME = range(9)
_ACTIONS: dict[str, int] = {
    **dict.fromkeys(_HANDLERS - _HARMLESS, _REFUSE),
    **dict.fromkeys(_TITLES, _TITLE), "media_title": _MEDIA_TITLE,
    **dict.fromkeys(_SUMMARIES, _SUMMARY), **dict.fromkeys(_CONTENTS, _CONTENT),
    **{name: _TIME + index for name, index in _TIMES.items()},  # _TIME + which date
    "link": _LINK, "guid": _GUID, "id": _GUID, **dict.fromkeys(_RESETS, _RESET),
}
_TEXT_TYPES = frozenset({"text", "html", "text/plain", "text/html", "plain"})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})
_LINK_AMP = re.compile("&([A-Za-z0-9_]+);")
_C1_CONTROLS = re.compile(b"\xc2[\x80-\x9f]")  # UTF-8 of what feedparser's cp1252 maps


class Refused(Exception):
    """The fast path is not sure it reads this document as feedparser would."""


def read_wellformed(body: bytes, content_type: str | None,
                    valid_utf8: bool = False, native: bool = True) -> RawDocument | None:
    """The document's entries as feedparser would read them, or None (ask feedparser).
    ``valid_utf8``: ``body`` is known to decode as UTF-8. ``native``: try the compiled
    reading first, when installed."""
    fixed = false_utf16(body, content_type)  # as the reference path re-reads it
    source = body if fixed is None else fixed
    decided = utf8_document(source, content_type, valid_utf8)
    warning: str | None = None
    if decided is None:
        override = encoding_override(source, content_type)
        if override is None:
            return None
        data, encoding, warning = override
    else:
        data, encoding = decided
    if b"<!DOCTYPE" in data[:4096]:
        stripped = _without_bare_doctype(data)
        if stripped is None:
            return None
        data = stripped
    document = _native_reading(data, encoding, warning) if native else None
    if document is not None:
        return document
    marked = False
    try:
        try:
            root = etree.fromstring(data, _parser())
        except etree.XMLSyntaxError:
            if warning is not None:  # feedparser's warning would be expat's error
                return None
            repair = repaired(data)  # read as feedparser's loose parser reads it
            if repair is None:
                return None
            data, warning, marked = repair
            root = etree.fromstring(data, _parser())
            if marked and _marked_attribute(root):
                return None
        if root.getroottree().docinfo.doctype:
            return None
        head, entries = _layout(root)
        # No element carries a base URI when no attribute named base can be in the bytes.
        bases = _BASE_ATTRIBUTE.search(data) is not None
        raw = tuple(_entry(element, bases, marked) for element in entries)
        return RawDocument(raw, _language(root, head, marked), encoding, warning)
    except (etree.XMLSyntaxError, Refused):
        return None


_BASE_ATTRIBUTE = re.compile(rb"base[ \t\r\n]*=")  # xml:base="..." or base="..."
_FIRST_ELEMENT = re.compile(rb"<\w")
_DOCTYPE = re.compile(rb"^\s*<!DOCTYPE([^>]*?)>", re.MULTILINE)  # feedparser's
_BARE_DOCTYPE = re.compile(rb"\s+[A-Za-z_][\w.:-]*\s*")


def _without_bare_doctype(data: bytes) -> bytes | None:
    """The document without its DOCTYPE when that is a bare ``<!DOCTYPE name>`` (no DTD, no
    entities: nothing to expand or load) that feedparser strips too (``replace_doctype``: a
    DOCTYPE at the start of a line before the root); None for any other DOCTYPE."""
    first = _FIRST_ELEMENT.search(data)
    if first is None:
        return None
    head = data[:first.start() + 1]
    found = _DOCTYPE.findall(head)
    if len(found) != 1 or not _BARE_DOCTYPE.fullmatch(found[0]) \
            or b"netscape" in found[0].lower() or b"<!ENTITY" in head:
        return None
    head = _DOCTYPE.sub(b"", head)
    return None if b"<!DOCTYPE" in head else head + data[first.start() + 1:]


def _parser() -> Any:
    # A parser per call: lxml parsers must not be shared between the poller's threads.
    return etree.XMLParser(
        encoding="utf-8", resolve_entities=False, no_network=True, load_dtd=False,
        huge_tree=False, recover=False, collect_ids=False, remove_blank_text=False)


def _layout(root: Any) -> tuple[Any, list[Any]]:
    """The element holding the feed-level fields, and the entries, or Refused."""
    kind = _name(root)
    if root.tag == f"{_ATOM}feed":
        head, entries = root, root.findall(f"{_ATOM}entry")
    elif kind in ("rss", "rdf_rdf"):
        channels = [child for child in root.iterchildren(etree.Element)
                    if _name(child) == "channel"]
        if len(channels) != 1:
            raise Refused
        head = channels[0]
        holder = head if kind == "rss" else root  # RSS 1.0 items sit beside the channel
        entries = [child for child in holder.iterchildren(etree.Element)
                   if _name(child) == "item"]
    else:
        raise Refused
    _check_outside(root, set(entries))
    return head, entries


def _check_outside(parent: Any, entries: set[Any]) -> None:
    """Refused when feedparser would find an entry, or content, outside the entries."""
    for child in parent.iterchildren(etree.Element):
        if child in entries:
            continue
        name = _name(child)
        if name in ("item", "entry") or name in _CONTENTS:
            raise Refused
        _check_outside(child, entries)


def _name(element: Any) -> str:
    """feedparser's name for an element: its namespace's prefix in feedparser's table (else
    the document's prefix), underscore, local name, lower-cased."""
    return _name_of_tag(element.tag) or _compute_name(element.tag, element.prefix)


# Bounded caches: a hostile feed may invent any number of element names.
@functools.lru_cache(maxsize=4096)
def _name_of_tag(tag: str) -> str | None:
    """The name when the tag alone decides it; None when the document's prefix does (a
    namespace feedparser does not know)."""
    namespace = _namespace(tag)
    if namespace and namespace not in _PREFIXES:
        return None
    return _compute_name(tag, None)


def _namespace(tag: str) -> str:
    namespace = tag[1:].rpartition("}")[0].lower() if tag.startswith("{") else ""
    return "http://backend.userland.com/rss" if "backend.userland.com/rss" in namespace \
        else namespace


@functools.lru_cache(maxsize=4096)
def _compute_name(tag: str, given: str | None) -> str:
    local = tag.rpartition("}")[2]
    prefix = _PREFIXES.get(_namespace(tag), given)
    return f"{prefix.lower()}_{local.lower()}" if prefix else local.lower()


def _text(element: Any, base: str | None = None, marked: bool = False) -> str:
    """An element's text as feedparser's ``pop`` leaves it (``base``: resolved as a URI;
    ``marked``: a document whose control characters ``loose_repair`` marked); Refused if it
    holds markup."""
    if len(element):  # child elements, comments or PIs: feedparser would serialize them
        raise Refused
    text = element.text or ""
    if marked and not text.isascii():
        text = unmarked(text)
    text = text.strip()
    if base is not None and text and (base or _has_extra_slashes(text)):
        text = _urljoin(base, text)
    if not text.isascii():
        # feedparser's repair of UTF-8 that someone read as Latin-1 and encoded again
        try:
            text = text.encode("iso-8859-1").decode("utf-8")
            as_read = False
        except (UnicodeEncodeError, UnicodeDecodeError):
            as_read = base is None and not marked  # the element's text, but stripped
        # str.translate with a dict is slow on long texts; searching the UTF-8 bytes (where
        # U+0080-U+009F are exactly C2 80-C2 9F) is three times quicker than the str. A long
        # text's bytes are quicker to have from libxml2 than to encode; they may hold more
        # (ends stripped), but translating a text without those characters changes nothing.
        if as_read and len(text) > _LONG_TEXT_CHARS:
            utf8 = etree.tostring(element, method="text", encoding="utf-8", with_tail=False)
        else:
            utf8 = text.encode("utf-8", "surrogatepass")
        if b"\xc2" in utf8 and _C1_CONTROLS.search(utf8):  # memchr first: most have none
            text = text.translate(_cp1252)
    return text


_LONG_TEXT_CHARS = 1000


def _has_extra_slashes(uri: str) -> bool:
    """Whether ``_urljoin("", uri)`` changes ``uri``: against no base, urllib returns it as
    it is, and feedparser only drops the slashes after "scheme://"."""
    if ":///" not in uri:  # the slashes it drops follow "://"
        return False
    found = _urifixer.match(uri)
    return found is not None and found.group(2) != ""


def _attributes(element: Any) -> dict[str, str]:
    if not len(element.attrib):
        return {}
    return {str(key).lower(): value for key, value in element.attrib.items()}


def _plain_text_element(element: Any) -> Any:
    """``element`` when its text is read as ``_text`` reads it (later, if at all: a summary
    that loses costs nothing); Refused for markup, base64, out-of-line or XHTML content."""
    if len(element):
        raise Refused
    if len(element.attrib):
        _check_type(element)
    return element


def _check_type(element: Any) -> None:
    attributes = _attributes(element)
    kind = attributes.get("type")
    if "mode" in attributes or "src" in attributes or (
            kind is not None and kind.lower() not in _TEXT_TYPES):
        raise Refused  # feedparser's own handling


def _text_of_type(element: Any, marked: bool) -> str:
    if len(element.attrib):
        _check_type(element)
    return _text(element, None, marked)  # Refused too if it holds markup


def _base(current: str, element: Any) -> str:
    """feedparser's base URI inside ``element`` (xml:base, or an attribute named base)."""
    given = element.get(_XML_BASE)
    if given is None:
        given = element.get("base")
    return _joined_base(current, given or current)


@functools.lru_cache(maxsize=4096)
def _joined_base(current: str, given: str) -> str:
    if current:
        return str(make_safe_absolute_uri(current, given) or current)
    return str(_urljoin(current, given))


def _has_base(element: Any) -> bool:
    return element.get(_XML_BASE) is not None or element.get("base") is not None


@dataclass(slots=True)
class _Entry:
    """One entry's fields while its elements are read in document order, with feedparser's
    rules for elements at different depths (media:title inside media:group...)."""

    link: str | None = None
    guid: str | None = None
    title: str | None = None
    title_depth: int = -1  # depth of the last non-empty title proper: later ones lose
    title_stored_at: int | None = None
    # Summary and contents are elements whose text is read only for the one kept.
    summary: Any = None
    summary_stored_at: int | None = None
    has_content: bool = False
    contents: list[Any] = field(default_factory=list)
    times: list[time.struct_time | None] = field(default_factory=lambda: [None, None, None])
    marked: bool = False  # texts hold control characters loose_repair marked

    def read(self, action: int, element: Any, depth: int, base: str) -> None:
        if action <= _MEDIA_TITLE:
            self._title(_text_of_type(element, self.marked), depth, proper=action == _TITLE)
        elif action == _SUMMARY:
            self._summary(_plain_text_element(element), depth)
        elif depth > 1:
            raise Refused
        elif action >= _TIME:
            self.times[action - _TIME] = parse_date(_text(element, None, self.marked))
        elif action == _CONTENT:
            self._content(_plain_text_element(element))
        elif action == _LINK:
            self._link(element, base)
        elif action == _RESET:  # feedparser forgets which title came first
            if len(element) and not _closing_source(element):
                raise Refused
            self.title_depth = -1
        else:  # guid, id
            self._guid(element, base)

    def _title(self, value: str, depth: int, proper: bool) -> None:
        if not -1 < self.title_depth <= depth and (
                self.title_stored_at is None or depth <= self.title_stored_at):
            self.title, self.title_stored_at = value, depth
        if proper and value:
            self.title_depth = depth

    def _summary(self, value: Any, depth: int) -> None:
        if self.summary is not None and not self.has_content:
            self._content(value)  # feedparser: a second description is content
        elif self.summary_stored_at is None or depth <= self.summary_stored_at:
            self.summary, self.summary_stored_at = value, depth

    def _content(self, value: Any) -> None:
        self.has_content = True
        self.contents.append(value)
        if self.summary is None:
            self.summary = value

    def _link(self, element: Any, base: str) -> None:
        attributes = _attributes(element)
        href = attributes.get("url", attributes.get("uri", attributes.get("href")))
        if not href and "href" not in attributes:  # feedparser: href="" is still an href
            text = _text(element, base, self.marked)
            if "&" in text:
                text = _LINK_AMP.sub(r"&\1", text.replace("&amp;", "&"))
            self.link = text
            return
        href = href or attributes["href"]
        rel = attributes.get("rel", "alternate").lower()
        kind = attributes.get("type", "application/atom+xml" if rel == "self" else "text/html")
        if rel == "alternate" and kind.lower() in _HTML_TYPES:
            self.link = str(_urljoin(base, href))

    def _guid(self, element: Any, base: str) -> None:
        permalink = _attributes(element).get("ispermalink", "true") == "true"
        self.guid = _text(element, base if permalink else None, self.marked)
        if permalink and self.link is None:
            self.link = self.guid

    def raw(self) -> RawEntry:
        summary = ""
        if self.summary is not None:
            for candidate in (self.summary, *self.contents):
                text = _text(candidate, None, self.marked)
                if text.strip():
                    summary = text
                    break
        return RawEntry(link=self.link, guid=self.guid, title=self.title,
                        summary_html=summary, times=tuple(self.times))


# What an Atom source (the feed an entry was copied from) holds, all written to feedparser's
# record of the source, none to the entry.
_SOURCE_PARTS = frozenset({"title", "link", "id", "updated", "published", "author", "name",
                           "uri", "email", "generator", "icon", "logo", "category", "subtitle",
                           "rights"})


def _closing_source(element: Any) -> bool:
    """A source with elements inside that ends its entry (planet aggregators): feedparser
    changes no field of the entry there, and nothing follows that its leftover state (which
    title came first, whether a guid is the link) could change."""
    tag = element.tag
    if (_name_of_tag(tag) or _compute_name(tag, element.prefix)) != "source" \
            or next(element.itersiblings(etree.Element), None) is not None:
        return False
    for inner in element.iterdescendants(etree.Element):
        tag = inner.tag
        if (_name_of_tag(tag) or _compute_name(tag, inner.prefix)) not in _SOURCE_PARTS:
            return False
    return True


def _entry(element: Any, bases: bool, marked: bool) -> RawEntry:
    if len(element.attrib) and (
            element.get("lastmod") is not None or element.get("href") is not None):
        raise Refused  # CDF attributes feedparser reads as a date and a link
    base = ""
    if bases:
        for holder in (*reversed(tuple(element.iterancestors())), element):
            base = _base(base, holder)
    entry = _Entry(guid=element.get(_RDF_ABOUT), marked=marked)
    _walk(entry, element, 1, base, bases)
    return entry.raw()


def _walk(entry: _Entry, parent: Any, depth: int, base: str, bases: bool) -> None:
    for child in parent.iterchildren(etree.Element):
        tag = child.tag
        name = _name_of_tag(tag) or _compute_name(tag, child.prefix)
        child_base = _base(base, child) if bases and (base or _has_base(child)) else base
        action = _ACTIONS.get(name)
        if action is not None:
            if action == _REFUSE:
                raise Refused
            entry.read(action, child, depth, child_base)
        elif len(child):
            if name in _CONTENT_LIKE:
                raise Refused
            _walk(entry, child, depth + 1, child_base, bases)


def _marked_attribute(root: Any) -> bool:
    """Whether an attribute value holds a marked control character (never unmarked)."""
    return any(marks_in(value) for element in root.iter() for value in element.attrib.values())


def _language(root: Any, head: Any, marked: bool) -> str | None:
    """feedparser's feed language: the last language element of the channel, else the
    root's xml:lang."""
    language = None
    for child in head.iterchildren(etree.Element):
        if _name(child) in ("language", "dc_language"):
            language = _text(child, None, marked)
    if language is not None:
        return language
    lang = root.get(_XML_LANG) or root.get("lang")
    return lang.replace("_", "-") if lang else None


# The reading above compiled (native/, Rust, optional like html_text's): for UTF-8 data without
# DOCTYPE it gives the same entries (dates as their texts), or None when unsure (anything
# libxml2 might read otherwise, a base URI, markup in a field...); then lxml reads it as before.
# It is given this module's tables so that the rules stay here.
_native_reader: Any = None
with contextlib.suppress(ImportError, AttributeError):  # not installed, or built before it
    _native_reader = importlib.import_module("monitor_native").FeedReader(
        _PREFIXES, _ACTIONS, _CONTENT_LIKE, _SOURCE_PARTS, _TEXT_TYPES, _HTML_TYPES, _cp1252)

NativeEntry = tuple[str | None, str | None, str | None, str,
                    tuple[str | None, str | None, str | None]]


def _native_reading(data: bytes, encoding: str, warning: str | None) -> RawDocument | None:
    read = None if _native_reader is None else _native_reader.read(data)
    return None if read is None else _native_document(read, encoding, warning)


def _native_document(read: tuple[list[NativeEntry], str | None], encoding: str,
                     warning: str | None) -> RawDocument:
    entries, language = read
    return RawDocument(
        tuple(RawEntry(link, guid, title, summary,
                       tuple(None if text is None else parse_date(text) for text in times))
              for link, guid, title, summary, times in entries),
        language, encoding, warning)

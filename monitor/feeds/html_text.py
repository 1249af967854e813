"""HTML fragment -> text, as html.parser reads it: tags dropped, block tags a space,
scripts, styles and noscript/template skipped, entities decoded.

``reference_text`` is the html.parser subclass this project has always used. Two quicker
readings give its output for the fragments they accept and None for the rest: a few regex
passes over fragments made only of plain tags, comments and text (most summaries), then a
tag-by-tag reading with html.parser's own patterns. ``html_to_text`` tries them in that
order, each after the compiled regex-pass reading of ``native/`` when it is installed
(optional: ``pip install ./native``). tests/feeds/test_html_text.py holds them to the
reference over every title and summary in ../shared/feeds and over awkward fragments.
"""

from __future__ import annotations

import html
import html.parser
import importlib
import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser

# The regex passes compiled (native/, Rust): the same text or None, in ~a third of their CPU
# time on feed summaries. Optional, so that the project installs without a Rust toolchain;
# imported by name so that mypy reads the same types whether it is installed or not.
_native_html_text: Callable[[str, int], str | None] | None = None
_native_bulk_html_text: Callable[[str], str | None] | None = None
try:
    _native = importlib.import_module("monitor_native")
    _native_html_text, _native_bulk_html_text = _native.html_to_text, _native.bulk_html_text
except ImportError:
    pass

_HTML_CHUNK_CHARS = 8192


def html_to_text(value: str, enough: int) -> str:
    """The text of ``value``; at least its first ``enough`` characters are exact."""
    text = None if _native_html_text is None else _native_html_text(value, enough)
    return python_html_text(value, enough) if text is None else text


def python_html_text(value: str, enough: int) -> str:
    """``html_to_text`` without the compiled reading."""
    text = _bulk_html_text_bounded(value, enough)
    if text is None:
        text = _simple_html_text(value, enough)
    return reference_text(value, enough) if text is None else text


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


def reference_text(value: str, enough: int) -> str:
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
    """What ``_html_text`` gives, for fragments made only of tags, end tags, comments,
    scripts and styles (html.parser's raw-text elements) and text; None for anything
    else (``<!DOCTYPE``, ``<?``, a lone ``<``, a tag cut short), which goes to the reference.

    html.parser's method calls per tag were a fifth of the parse path's time."""
    read = simple_text_prefix(value, enough)
    return None if read is None else read[0]


def simple_text_prefix(value: str, enough: int) -> tuple[str, int] | None:
    """``_simple_html_text``'s text and where it stopped reading ``value``: the text is that
    of ``value[:end]`` (cut just after a tag), longer than ``enough`` unless ``end`` is
    ``len(value)``."""
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
            position = len(value)
            break
        tag = _plain_tag_at(value, bracket) or _tag_at(value, bracket)
        if tag is None:
            return None
        name, closing, position = tag
        if closing == "start" and name in _RAW_TEXT_END:
            # html.parser's raw text: skipped up to the end tag its own pattern finds; with
            # none, the rest of the fragment is the element's (never shown)
            skipping = _apply_tag(parts, name, closing, skipping)
            end = _RAW_TEXT_END[name].search(value, position)
            if end is None:
                position = len(value)
                break
            closing, position = "end", end.end()
        skipping = _apply_tag(parts, name, closing, skipping)
    return "".join(parts), position


# html.parser's ``set_cdata_mode`` patterns for its raw-text elements.
_RAW_TEXT_END = {name: re.compile(rf"</\s*{name}\s*>", re.IGNORECASE)
                 for name in HTMLParser.CDATA_CONTENT_ELEMENTS}


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


# The common tags: a name of letters and digits, attributes with quoted values or none,
# separated by the whitespace html.parser separates names with. Read with one match where
# _tag_at needs five; anything else goes to _tag_at.
_TAG_REST = (r"""(?:[ \t\n\r\f]+[^\s"'<>/=]+(?:[ \t\n\r\f]*=[ \t\n\r\f]*(?:"[^"]*"|'[^']*'))?)*"""
             r"""[ \t\n\r\f]*""")
_PLAIN_TAG = re.compile(f"<([a-zA-Z][a-zA-Z0-9]*){_TAG_REST}(/?)>")
_PLAIN_END_TAG = re.compile("</([a-zA-Z][a-zA-Z0-9]*)[ \\t\\n\\r\\f]*>")


def _ascii_case_free(name: str) -> str:
    """A pattern for ``name`` in any ASCII case. Not re.IGNORECASE: that also matches the
    dotless i ("<dıv>" as "<div>"), the long s or the Kelvin sign, which html.parser's
    str.lower does not fold (and it is slower)."""
    return "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in name)


_BREAK_NAMES = "(?:" + "|".join(map(_ascii_case_free, ("br", "p", "div", "li", "tr"))) + \
    "|[hH][1-6])"
_BREAK_ALONE = re.compile(f"<{_BREAK_NAMES}{_TAG_REST}/>")  # <br/>: a start and an end
# End tags without attributes: html.parser ends those at the first ">", quotes or not. One
# "<" before the alternatives: the regex engine then looks for it alone, quicker.
_BREAK = re.compile(f"<(?:{_BREAK_NAMES}{_TAG_REST}>|/{_BREAK_NAMES}[ \\t\\n\\r\\f]*>)")
_OTHER_TAG = re.compile(f"<(?:[a-zA-Z][a-zA-Z0-9]*{_TAG_REST}/?>"
                        "|/[a-zA-Z][a-zA-Z0-9]*[ \\t\\n\\r\\f]*>|!--.*?--\\s*>)", re.DOTALL)
_SKIPPED = re.compile("<(?:" + "|".join(map(_ascii_case_free, sorted(_TextExtractor._SKIP))) + ")")


def _bulk_html_text_bounded(value: str, enough: int) -> str | None:
    """``_bulk_html_text`` over consecutive pieces (``bulk_text_pieces``) until the text is
    longer than ``enough``: a full article is not read to its end for the 2,000 characters
    kept, and no piece is read twice."""
    parts: list[str] = []
    chars = 0
    for text, _ in bulk_text_pieces(value, enough * 2):
        if text is None:
            return None
        parts.append(text)
        chars += len(text)
        if chars > enough:
            break
    return "".join(parts)


def bulk_text_pieces(value: str, piece_chars: int) -> Iterator[tuple[str | None, int]]:
    """(``_bulk_html_text`` of a piece, where the piece ends) for consecutive pieces of about
    ``piece_chars`` characters, each cut just before a ``<`` so that no tag or entity is cut
    and the pieces' texts join into the whole's. None for a piece that reading cannot read."""
    start = 0
    while start < len(value):
        end = value.rfind("<", start + 1, start + piece_chars)
        if end <= start or start + piece_chars >= len(value):
            end = len(value)
        yield _bulk_html_text(value[start:end]), end
        start = end


def _bulk_html_text(value: str) -> str | None:
    """``_simple_html_text`` in a few regex passes, for fragments whose every ``<`` opens a
    plain tag, a comment, or a script or style closed in the fragment (skipped, as
    html.parser skips their raw text); None otherwise.

    Tags that add nothing become a separator html.unescape cannot read across (a character
    the fragment lacks), so entities are decoded as html.parser decodes them, text run by
    text run; the separator is then dropped."""
    if _native_bulk_html_text is not None and (text := _native_bulk_html_text(value)) is not None:
        return text
    return python_bulk_html_text(value)


def python_bulk_html_text(value: str) -> str | None:
    """``_bulk_html_text`` without the compiled reading."""
    separator = "\f" if "\f" not in value else "\t" if "\t" not in value else None
    if separator is None:
        return None
    if _SKIPPED.search(value) is None:
        return _bulk_run_text(value, separator)
    texts = []
    for run in _runs_outside_raw_text(value) or (None,):
        text = None if run is None else _bulk_run_text(run, separator)
        if text is None:
            return None
        texts.append(text)
    return "".join(texts)


def _runs_outside_raw_text(value: str) -> list[str] | None:
    """``value`` cut around its script and style elements (each a plain start tag, not
    self-closing, and html.parser's end pattern), None when it holds a noscript, a template,
    or a raw-text element not closed in ``value``. Where a run before such an element is
    read as all tags and text (``_bulk_run_text``), the element starts in html.parser's data,
    not inside a tag or a comment: its "<" would be left over."""
    runs, position, search_from = [], 0, 0
    while (found := _SKIPPED.search(value, search_from)) is not None:
        tag = _PLAIN_TAG.match(value, found.start())
        if tag is None or tag.group(1).lower() not in _RAW_TEXT_END:
            return None
        if tag.group(2):  # <script/>: a start and an end tag, as any other
            search_from = tag.end()
            continue
        end = _RAW_TEXT_END[tag.group(1).lower()].search(value, tag.end())
        if end is None:
            return None
        runs.append(value[position:found.start()])
        position = search_from = end.end()
    runs.append(value[position:])
    return runs


def _bulk_run_text(value: str, separator: str) -> str | None:
    if "/>" in value:  # a pass fewer for most fragments
        value = _BREAK_ALONE.sub("  ", value)
    text = _BREAK.sub(" ", value)
    text = _OTHER_TAG.sub(separator, text)
    if "<" in text:
        return None
    if "&" in text:
        text = html.unescape(text)
    return text.replace(separator, "")


def _plain_tag_at(value: str, start: int) -> tuple[str, str, int] | None:
    found = _PLAIN_TAG.match(value, start) or _PLAIN_END_TAG.match(value, start)
    if found is None:
        return None
    if found.re is _PLAIN_END_TAG:
        return found.group(1).lower(), "end", found.end()
    name, self_closing = found.groups()
    return name.lower(), "both" if self_closing else "start", found.end()


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

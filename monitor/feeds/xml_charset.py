"""The character encoding of a feed document, decided the way feedparser decides it, or None.

Only the unambiguous cases are decided: no byte-order mark other than UTF-8's, and either no
Content-Type, an XML media type, or text/xml with a charset (or pure ASCII bytes). In those
cases feedparser (RFC 3023 rules, in ``feedparser.encodings.convert_to_utf8``) reads the
document in its first proposed encoding without complaint, and so does this module; anything
else (UTF-16/32, EBCDIC, text/html) answers None and the document goes to feedparser. When the
first proposed encoding does not decode the bytes (a document declared UTF-16 that is UTF-8),
``encoding_override`` follows feedparser's next candidates, chardet's guess among them.
"""

from __future__ import annotations

import codecs
import re

import chardet

_XML_PI_ENCODING = re.compile(rb"""^<\?.*encoding=['"](.*?)['"].*\?>""")  # feedparser's
_APPLICATION_XML = ("application/xml", "application/xml-dtd",
                    "application/xml-external-parsed-entity")
_TEXT_XML = ("text/xml", "text/xml-external-parsed-entity")


def _content_type(value: str) -> tuple[str, str]:
    """Media type (case kept, as feedparser compares it) and charset parameter."""
    chunks = value.split(";")
    charset = ""
    for chunk in chunks[1:]:
        key, _, param = chunk.partition("=")
        if key.strip().lower() == "charset":
            charset = param.strip().strip("\"'")
    return chunks[0].strip(), charset


def _declared(body: bytes) -> str:
    match = _XML_PI_ENCODING.match(body)
    return match.group(1).decode("utf-8", "replace").lower() if match else ""


def _proposed(body: bytes, content_type: str | None) -> str | None:
    xml_encoding = _declared(body)
    if not content_type:
        return xml_encoding or "utf-8"
    media, charset = _content_type(content_type)
    if media in _APPLICATION_XML or (media.startswith("application/") and media.endswith("+xml")):
        return charset or xml_encoding or "utf-8"
    if media in _TEXT_XML or (media.startswith("text/") and media.endswith("+xml")):
        return charset or ("us-ascii" if body.isascii() else None)
    return None  # text/html, text/plain, no media type...: feedparser complains (bozo)


_FALSE_UTF16 = re.compile(rb"""^(<\?xml[^>]{0,100}encoding=["'])utf-16(["'])""", re.IGNORECASE)


def declared_utf8(body: bytes) -> bytes | None:
    """A body that declares UTF-16 in its XML declaration, declared UTF-8 instead; None for
    any other body. Some servers declare UTF-16 and send UTF-8."""
    if _FALSE_UTF16.match(body) is None:
        return None
    return _FALSE_UTF16.sub(rb"\1utf-8\2", body, count=1)


def false_utf16(body: bytes, content_type: str | None) -> bytes | None:
    """``declared_utf8(body)`` when feedparser certainly finds no feed in the body as
    declared, so that the reference path (``parse._reference``) reads it declared UTF-8;
    else None.

    feedparser decodes such a body as UTF-16 first; a decoding that holds no "<" has no
    element, hence no feed. When that decoding fails, or holds a "<", what feedparser reads
    first is not certain."""
    fixed = declared_utf8(body)
    if fixed is None or _proposed(body, content_type) != "utf-16":
        return None
    try:
        return None if "<" in body.decode("utf-16") else fixed
    except UnicodeDecodeError:
        return None


def utf8_document(body: bytes, content_type: str | None,
                  valid_utf8: bool = False) -> tuple[bytes, str] | None:
    """The document as UTF-8 bytes (to be parsed as UTF-8 whatever it declares) and the
    encoding name feedparser would report; None when feedparser would have to guess, or
    would complain about the encoding. ``valid_utf8``: the caller has decoded ``body`` as
    UTF-8 already (a second check of a whole document costs as much as the first)."""
    if body.startswith(codecs.BOM_UTF8):
        body = body[3:]
        if _declared(body) not in ("", "utf-8"):
            return None
    elif body[:2] in (codecs.BOM_UTF16_BE, codecs.BOM_UTF16_LE) or body[:1] == b"\x00":
        return None  # UTF-16/32: rare, and feedparser's rules there are intricate
    encoding = _proposed(body, content_type)
    if encoding is None:
        return None
    if encoding.lower() == "gb2312":
        encoding = "gb18030"
    try:
        if codecs.lookup(encoding).name == "utf-8":
            if not valid_utf8:
                body.decode("utf-8")
            return body, encoding
        return body.decode(encoding).encode("utf-8"), encoding
    except (UnicodeDecodeError, LookupError):
        return None


# feedparser's signs of UTF-16/32 or EBCDIC without a byte-order mark (``encodings.py``).
_UNMARKED_WIDE = (b"\x4c\x6f\xa7\x94", b"\x00\x3c\x00\x3f", b"\x3c\x00\x3f\x00",
                  b"\x00\x00\x00\x3c", b"\x3c\x00\x00\x00")
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_BE, codecs.BOM_UTF16_LE)


def encoding_override(body: bytes, content_type: str | None) -> tuple[bytes, str, str] | None:
    """When the encoding feedparser proposes first does not decode ``body``: the document as
    UTF-8 bytes, the encoding feedparser reads it in instead and the warning it gives ("document
    declared as utf-16, but parsed as utf-8"); None in any other case.

    feedparser's next candidates, in its order, each tried once: the XML declaration's
    encoding, chardet's guess for the whole body (the same call on the same bytes), UTF-8,
    windows-1252, ISO-8859-2 (which decodes anything). Bodies with a byte-order mark or
    feedparser's other signs of a wide encoding are left to feedparser."""
    if body.startswith(_BOMS) or body[:4] in _UNMARKED_WIDE:
        return None
    first = _proposed(body, content_type)
    if first is None:
        return None
    if first.lower() == "gb2312":
        first = "gb18030"
    if _decodes(body, first):
        return None
    declared = _declared(body)
    if declared == "gb2312":
        declared = "gb18030"
    tried = [first]
    for candidate in (declared, _chardet_guess, "utf-8", "windows-1252", "iso-8859-2"):
        proposed = candidate(body) if callable(candidate) else candidate
        if not proposed or proposed in tried:
            continue
        tried.append(proposed)
        try:
            text = body.decode(proposed)
        except (UnicodeDecodeError, LookupError):
            continue
        warning = f"document declared as {first}, but parsed as {proposed}"
        return text.encode("utf-8"), proposed, warning
    return None


def _decodes(body: bytes, encoding: str) -> bool:
    try:
        body.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def _chardet_guess(body: bytes) -> str:
    return chardet.detect(body)["encoding"] or ""  # feedparser's lazy_chardet_encoding

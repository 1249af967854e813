"""The character encoding of a feed document, decided the way feedparser decides it, or None.

Only the unambiguous cases are decided: no byte-order mark other than UTF-8's, and either no
Content-Type, an XML media type, or text/xml with a charset (or pure ASCII bytes). In those
cases feedparser (RFC 3023 rules, in ``feedparser.encodings.convert_to_utf8``) reads the
document in its first proposed encoding without complaint, and so does this module; anything
else (UTF-16/32, EBCDIC, text/html, an encoding that does not decode the bytes) answers None
and the document goes to feedparser.
"""

from __future__ import annotations

import codecs
import re

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

"""How feed text and times leave the desk on a page, in JSON and in Atom.

Feed text is untrusted. The templates escape every value (autoescape); what escaping does not
cover is decided here: a link is followed only when it is plainly http(s), and characters XML
1.0 cannot carry are dropped, so a hostile title can neither add a ``javascript:`` link nor
make a feed reader reject the whole Atom document.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from markupsafe import Markup

# http(s), a host, and nothing a browser would strip or reinterpret (whitespace, controls,
# quotes, angle brackets): what passes is what the browser follows.
_PLAIN_LINK = re.compile(r"https?://[^\s\x00-\x1f\x7f<>\"'`\\]+", re.IGNORECASE)
# Characters outside XML 1.0's Char production (controls but tab/LF/CR, surrogates, FFFE/F).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def safe_link(url: str | None) -> str | None:
    """``url`` when it may be an href (http or https with a host), else None."""
    if url and _PLAIN_LINK.fullmatch(url):
        return url
    return None


def xml_text(value: object) -> object:
    """Jinja's finalize: None shows as nothing; strings lose what XML 1.0 cannot carry.
    Markup (a macro's output, made of values finalized already) passes as it is."""
    if value is None:
        return ""
    if isinstance(value, str) and not isinstance(value, Markup):
        return _NOT_XML.sub("", value)
    return value


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive time is taken as UTC (what the codecs write)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC with a ``Z`` (Atom's date construct, the API's times)."""
    return None if moment is None else utc(moment).isoformat().replace("+00:00", "Z")


def on_screen(moment: datetime | None) -> str:
    """A time as the pages show it: ``2026-11-25 12:00 UTC``."""
    return "-" if moment is None else utc(moment).strftime("%Y-%m-%d %H:%M UTC")

"""One redaction for URLs wherever they are shown: logs, errors, the state file, `monitor check`.

A feed URL may carry credentials (``https://user:password@host/feed``, or a ``?token=``
query parameter). They are needed for the request and nowhere else: every message that names a
URL shows it through :func:`redact_url`, and text that may quote a URL (a library's exception
message) goes through :func:`redact_urls_in`.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "***"

# Query parameters that commonly carry a credential (?apikey=..., ?access_token=..., &sig=...).
_SECRET_PARAM = re.compile(
    r"(?i)^(.*[-_])?(key|apikey|token|secret|password|passwd|pwd|pass|auth|sig|signature"
    r"|session|sessionid|credential|credentials)$"
)
# scheme://userinfo@ anywhere in free text; userinfo stops at the first character that cannot
# be in it, so "see http://a@b and c@d" redacts only the URL's part.
_USERINFO_IN_TEXT = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@]*@")
_URL_IN_TEXT = re.compile(r"(?i)\bhttps?://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """``url`` without its credentials: userinfo and secret-looking query values become ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO_IN_TEXT.sub(rf"\1{REDACTED}@", url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAM.match(key) for key, _ in pairs):
            query = urlencode([(key, REDACTED if _SECRET_PARAM.match(key) else value)
                               for key, value in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_urls_in(text: str) -> str:
    """``text`` with every http(s) URL in it redacted, and any other scheme's userinfo too."""
    text = _URL_IN_TEXT.sub(_redact_match, text)
    return _USERINFO_IN_TEXT.sub(rf"\1{REDACTED}@", text)


def _redact_match(match: re.Match[str]) -> str:
    url = match.group(0)
    trailing = len(url) - len(url.rstrip(".,;:!?)]}"))  # sentence punctuation after a URL
    return redact_url(url[: len(url) - trailing]) + url[len(url) - trailing:]


class RedactingFilter(logging.Filter):
    """Redacts URL credentials in every record a handler emits, libraries' records included
    (httpx logs each request's full URL at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_urls_in(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True

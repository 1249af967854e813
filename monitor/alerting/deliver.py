"""Delivering one rendered message to one receiver URL: the result, the error, the registry.

A :class:`Channel` sends; :class:`Channels` picks one by URL scheme (``json``/``jsons`` webhooks
are ours, every other scheme goes to Apprise; see :mod:`monitor.alerting.channels`, whose
``build_channels`` is what the composition root calls). Retrying is not done here: the outbox
asks :mod:`monitor.retry` what a failed :class:`DeliveryResult` deserves.

Receiver URLs carry secrets (tokens in the host, path or query, passwords). Nothing produced
here -- result, exception, log record -- contains one: a URL is described by
:func:`describe_url` (the scheme, plus the host where the host is a real network host), and any
text that comes from a library is passed through :func:`redact` with :func:`secrets_of`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote

from monitor.alerting.render import Rendered
from monitor.errors import RecoverableError

log = logging.getLogger(__name__)

# Schemes whose "host" is a network host, so naming it discloses nothing. In the others
# (slack://TokenA/..., tgram://bottoken/..., discord://id/token ...) the host is a credential.
HOST_SCHEMES = frozenset({"json", "jsons", "form", "forms", "xml", "xmls", "mailto", "mailtos",
                          "matrix", "matrixs", "mmost", "mmosts", "rocket", "rockets", "ntfy",
                          "ntfys", "gotify", "gotifys", "zulip"})
# Query options whose values are Apprise settings, not credentials.
_OPTION_KEYS = frozenset({"format", "blocks", "mode", "method", "overflow", "emojis", "footer",
                          "image", "cto", "rto", "verify", "lang", "priority"})
_MIN_SECRET_CHARS = 3  # shorter fragments cannot be hidden without mangling every message
REDACTED = "***"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What one attempt to send one message to one URL came to.

    ``status`` is from a closed set (a metric label): ``sent``, ``rejected`` (HTTP 4xx),
    ``throttled`` (429/503), ``server-error`` (other 5xx), ``timeout``, ``unreachable``,
    ``transport-error``, ``failed`` (Apprise said no), ``invalid-url``. ``detail`` is for
    humans and never holds a secret.
    """

    ok: bool
    status: str
    retry_after_seconds: float | None = None
    permanent: bool = False
    detail: str = ""

    def error(self) -> DeliveryError:
        """This failed result as an exception, for callers that raise."""
        if self.ok:
            raise ValueError("deliver: a successful result is not an error")
        return DeliveryError(self.detail or self.status, status=self.status,
                             retry_after_seconds=self.retry_after_seconds,
                             permanent=self.permanent)


class DeliveryError(RecoverableError):
    """A message was not delivered.

    ``permanent`` means retrying the same message to the same URL cannot help (HTTP 4xx,
    a malformed URL); :func:`monitor.retry.is_retryable` honours it.
    ``retry_after_seconds`` carries the receiver's Retry-After when it sent one.
    """

    def __init__(self, message: str, *, status: str = "failed",
                 retry_after_seconds: float | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_seconds = retry_after_seconds
        self.permanent = permanent


class Channel(Protocol):
    """Sends one rendered message to one URL of its kind.

    ``send`` blocks on network I/O for at most about the channel's timeout per request (DNS,
    connect, TLS, the receiver's answer; Apprise plugins may make more than one request).
    Every delivery failure -- refused, timed out, rejected, a bad URL -- comes back as a
    result with ``ok=False``; ``send`` raises only on programming errors.
    """

    def send(self, rendered: Rendered, url: str) -> DeliveryResult: ...


class Channels:
    """The registry: a channel per URL scheme, and one for every other scheme."""

    def __init__(self, by_scheme: Mapping[str, Channel], fallback: Channel, *,
                 closers: Iterable[Callable[[], None]] = ()) -> None:
        self._by_scheme = {scheme.lower(): channel for scheme, channel in by_scheme.items()}
        self._fallback = fallback
        self._closers = tuple(closers)

    def close(self) -> None:
        """Release what the channels hold (HTTP connections, log filters)."""
        for close in self._closers:
            close()

    def for_url(self, url: str) -> Channel:
        return self._by_scheme.get(scheme_of(url), self._fallback)

    def send(self, rendered: Rendered, url: str) -> DeliveryResult:
        """Send with the channel for ``url``'s scheme (see :class:`Channel`)."""
        if not scheme_of(url):
            return DeliveryResult(False, "invalid-url", permanent=True,
                                  detail="deliver: receiver URL has no scheme")
        result = self.for_url(url).send(rendered, url)
        log.debug("%s (%s)", result.detail, result.status)
        return result


def scheme_of(url: str) -> str:
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", url)
    return match.group(1).lower() if match else ""


def _split(url: str) -> tuple[str, str, str, list[str], str]:
    """``scheme://userinfo@hostport/path?query`` the way Apprise reads it ('#' is path)."""
    scheme = scheme_of(url)
    rest = url.split("://", 1)[1] if scheme else url
    rest, _, query = rest.partition("?")
    authority, _, path = rest.partition("/")
    userinfo, _, hostport = authority.rpartition("@")
    return scheme, userinfo, hostport, [part for part in path.split("/") if part], query


def describe_url(url: str) -> str:
    """``scheme://host[:port]`` for network hosts, ``scheme://…`` otherwise: safe to log."""
    scheme, _, hostport, _, _ = _split(url)
    if not scheme:
        return "(url without scheme)"
    if scheme in HOST_SCHEMES and re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", hostport):
        return f"{scheme}://{hostport.lower()}"
    return f"{scheme}://…"


def secrets_of(url: str) -> frozenset[str]:
    """Every fragment of ``url`` that may be a credential, raw and percent-decoded."""
    scheme, userinfo, hostport, path, query = _split(url)
    found = [*userinfo.split(":", 1), *path]
    if scheme not in HOST_SCHEMES:
        found.append(hostport)
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key.lstrip("+-:").lower() not in _OPTION_KEYS:
            found.append(value)
    variants = {form for part in found for form in (part, unquote(part), part.lstrip("#@"))}
    return frozenset(part for part in variants if len(part) >= _MIN_SECRET_CHARS)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***``, longest first."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text

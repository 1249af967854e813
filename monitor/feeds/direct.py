"""A feed GET handed straight to the guarded connection pool, without httpx's Request and Response.

httpx's transport builds and validates an ``httpx.Request``, converts it to httpcore's, wraps
httpcore's response in an ``httpx.Response`` and every body chunk in an exception-mapping
context, and looks headers up by scanning them all: about a third of the CPU of a fetch
(bench/README.md, "sixth pass"), paid on every poll, a 304 included. What the fetcher reads of
a response is small: the status, a few headers by name and the raw body chunks
(:class:`Answer`), so this path gives just that (:class:`DirectResponse`), and what a URL's
requests share (its parsed URL, Host and Authorization) is worked out once (:class:`Targets`).

The guards are where they were: the pool is ``netguard``'s (addresses, deadlines), the body
bound and the decoding are the fetcher's. httpcore's exceptions reach the fetcher as they are
(httpx's transport would have re-raised them as httpx's), and it translates both kinds alike.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol, cast

import httpcore
import httpx

# httpcore's errors for a request that failed (TimeoutException apart: the fetcher tells it
# from the rest); what httpx's transport maps to httpx.TransportError.
CORE_ERRORS: tuple[type[Exception], ...] = (
    httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol,
    httpcore.ProxyError, httpcore.ConnectionNotAvailable,
)
# URLs kept parsed; past this many (feeds and redirect targets) the cache starts again.
_TARGETS = 50_000


class Answer(Protocol):
    """What the fetcher reads of a response: ``httpx.Response`` or :class:`DirectResponse`.
    Header names are looked up in lower case (httpx's headers ignore the case)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def iter_raw(self) -> Iterator[bytes]: ...


@dataclass(frozen=True, slots=True)
class Target:
    """A URL as its requests need it: as httpx writes it (the log, cookies), its origin (which
    connection pool), httpcore's URL, the Host header and the Authorization for the URL's own
    userinfo. No httpx.URL kept: with one a target took ~2.4 KB, without ~0.75 KB."""

    url: str
    origin: tuple[str, str, int | None]
    core_url: httpcore.URL
    host: bytes
    authorization: bytes | None


class Targets:
    """Targets by URL string, each parsed once (a bounded cache; safe from many threads)."""

    def __init__(self, limit: int = _TARGETS) -> None:
        self._limit = limit
        self._targets: dict[str, Target] = {}

    def get(self, url: str) -> Target:
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) >= self._limit:
                self._targets.clear()
            target = self._targets[url] = _target(url)
        return target


def _target(url: str) -> Target:
    parsed = httpx.URL(url)
    core_url = httpcore.URL(scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port,
                            target=parsed.raw_path)
    authorization = basic_auth(parsed)
    return Target(str(parsed), (parsed.scheme, parsed.host, parsed.port), core_url,
                  parsed.netloc, None if authorization is None else authorization.encode("ascii"))


def basic_auth(url: httpx.URL) -> str | None:
    """The Authorization header for a URL's own userinfo, as httpx's client builds it."""
    if not (url.username or url.password):
        return None
    userpass = f"{url.username}:{url.password}".encode()
    return f"Basic {base64.b64encode(userpass).decode('ascii')}"


class DirectResponse:
    """httpcore's response as the fetcher reads it (:class:`Answer`); ``close`` gives the
    connection back to the pool (or closes it when the body was not read to its end)."""

    def __init__(self, response: httpcore.Response) -> None:
        self._response = response
        self.status_code = response.status
        self.headers = _headers(response.headers)

    def iter_raw(self) -> Iterator[bytes]:
        yield from cast(Iterable[bytes], self._response.stream)  # the sync pool's

    def close(self) -> None:
        self._response.close()

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        return self._response.headers

    @property
    def http_version(self) -> str:
        version = self._response.extensions.get("http_version", b"HTTP/1.1")
        return bytes(version).decode("ascii", errors="ignore")

    @property
    def reason_phrase(self) -> str:
        reason = self._response.extensions.get("reason_phrase", b"")
        return bytes(reason).decode("ascii", errors="ignore")


def _headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Lower-case name -> value; a repeated header's values joined by ", " (httpx's ``get``);
    values read as UTF-8, as Latin-1 where they are not (never an error)."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def encoded(value: str) -> bytes:
    """A request header value from a stored validator (ASCII, UTF-8 where it is not)."""
    return value.encode("utf-8")

"""HTTP fetching of feeds, as a good citizen and a wary one. The only module that talks to httpx.

Every request is conditional (If-None-Match / If-Modified-Since), carries an honest User-Agent,
follows at most ``max_redirects`` redirects (noting a permanent one so ops can update
feeds.yaml), and waits its turn: at most ``per_host_concurrency`` requests run against one host
at a time. Against a hostile server:

- ``timeout_seconds`` is a total deadline: connecting, headers and the whole body of every hop
  of one fetch together (time spent waiting for the host's turn is not counted); when it passes
  the request is abandoned, the host's turn freed, and FetchError raised (``netguard``).
- the body, after decoding gzip/deflate, is at most ``max_body_bytes`` (``inflate``);
- the feed URL and every redirect are connected only to public addresses unless
  ``allowed_networks`` says otherwise (``netguard``); userinfo in a redirect's Location is
  dropped, never sent as credentials;
- URLs in messages are shown without credentials (``monitor.redact``).

``Fetcher.fetch`` blocks on the network and on the per-host limit; it raises FetchError, whose
message names the URL and what went wrong, and never returns a partial body. ``Fetcher.stop``
makes every fetch in progress end within a grace period (shutdown).

Requests go straight to the guarded connection pool as httpcore's requests, not through
``httpx.Client`` nor httpx's Request and Response (``direct.py``): the client's per-request work
(merging defaults, auth and cookie flows, building the request twice) was a third of the CPU of
a 304 poll, and httpx's wrapping of httpcore a third of what was left. What the client did that
matters is kept here: the configured URL's own userinfo is sent as Basic auth, cookies are kept
in one jar (read only when a response sets one), and httpx's request line is logged as httpx
logs it. A client given to the constructor (tests: ``httpx.MockTransport``) is used as it is.

Connections are kept in several pools, each origin (scheme, host, port) always in the same one
(:class:`OriginPools`), so a host's polls still share its kept-alive connections. One pool for
every feed was where a busy poller waited most: httpcore holds a pool's lock while it checks
each of the pool's idle connections with a system call, and every such call gives up the GIL,
so at 10,000 feeds a minute the poll threads queued on that one lock.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpcore
import httpx

from monitor.errors import FetchError
from monitor.feeds.direct import CORE_ERRORS, Answer, DirectResponse, Target, Targets, encoded
from monitor.feeds.inflate import BoundedInflater, DecompressionError
from monitor.feeds.netguard import (
    AddressPolicy,
    AddressRefused,
    Deadlines,
    GuardedBackend,
    GuardedTransport,
    IPNetwork,
    Resolver,
)
from monitor.feeds.schedule import parse_max_age
from monitor.redact import redact_url, redact_urls_in
from monitor.retry import parse_retry_after

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_ACCEPT = ("application/rss+xml, application/atom+xml, application/rdf+xml, "
           "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")
# Only what inflate.py decodes with a bound; httpx would also offer br/zstd when installed.
_ACCEPT_ENCODING = "gzip, deflate"
_SLOT_POLL_SECONDS = 0.5
_POOLS = 8
_KEEPALIVE_PER_POOL = 8  # idle connections a pool keeps (httpx's one pool: 20)
# A request that failed, on either path (httpx's client, or httpcore's pool directly).
_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, *CORE_ERRORS)
_httpx_log = logging.getLogger("httpx")  # the request line httpx's client would log


@dataclass(frozen=True, slots=True)
class Validators:
    """What the server gave us to make the next request conditional."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    not_modified: bool
    body: bytes
    content_type: str | None
    validators: Validators
    final_url: str
    permanent_redirect: str | None  # where a 301/308 pointed, for ops to update feeds.yaml
    max_age_seconds: float | None
    retry_after_seconds: float | None


@dataclass(frozen=True, slots=True)
class FetchLimits:
    user_agent: str
    timeout_seconds: float = 20.0  # total, per fetch: connect + headers + body, every hop
    max_body_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    per_host_concurrency: int = 1
    allowed_networks: tuple[IPNetwork, ...] = ()  # beyond public addresses; empty: none


class FetchCancelled(FetchError):
    """The fetcher is stopping; the feed was not (completely) fetched."""


class HostLimiter:
    """At most ``limit`` concurrent requests per host; callers block until it is their turn."""

    def __init__(self, limit: int) -> None:
        self._lock = threading.Lock()
        self._slots: defaultdict[str, threading.BoundedSemaphore] = defaultdict(
            lambda: threading.BoundedSemaphore(limit)
        )

    def slot(self, host: str) -> threading.BoundedSemaphore:
        with self._lock:
            return self._slots[host]


class OriginPools:
    """``_POOLS`` guarded transports (connection pools); an origin always maps to the same."""

    def __init__(self, backend: GuardedBackend) -> None:
        ssl_context = httpx.create_ssl_context()  # ~20 ms to build: one for all the pools
        self._pools = [GuardedTransport(backend, ssl_context, _KEEPALIVE_PER_POOL)
                       for _ in range(_POOLS)]

    def for_origin(self, origin: tuple[str, str, int | None]) -> GuardedTransport:
        """The pool of an origin (scheme, host, port)."""
        return self._pools[hash(origin) % len(self._pools)]

    def close(self) -> None:
        for pool in self._pools:
            pool.close()


class Fetcher:
    """Conditional GET of feed URLs over one shared httpx client (thread-safe)."""

    def __init__(self, limits: FetchLimits, client: httpx.Client | None = None, *,
                 resolver: Resolver = socket.getaddrinfo) -> None:
        self._limits = limits
        self._deadlines = Deadlines()
        self._client = client
        # No proxy from the environment either: it would bypass the address guard.
        self._transports = OriginPools(GuardedBackend(
            AddressPolicy(limits.allowed_networks), self._deadlines, resolver))
        self._cookies = httpx.Cookies()
        self._extensions = {"timeout": httpx.Timeout(limits.timeout_seconds).as_dict()}
        self._targets = Targets()
        self._base_headers = [
            (b"User-Agent", limits.user_agent.encode()), (b"Accept", _ACCEPT.encode()),
            (b"Accept-Encoding", _ACCEPT_ENCODING.encode()), (b"Connection", b"keep-alive")]
        self._hosts = HostLimiter(limits.per_host_concurrency)

    def stop(self, grace_seconds: float = 2.0) -> None:
        """Make fetches in progress end within ``grace_seconds`` and new ones fail at once."""
        self._deadlines.stop(grace_seconds)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._transports.close()

    def fetch(self, url: str, validators: Validators, now: datetime) -> FetchResult:
        permanent: str | None = None
        all_permanent = True  # only a chain of permanent hops from the configured URL counts
        current = url
        budget = [self._limits.timeout_seconds]  # request time left, shared by every hop
        for _hop in range(self._limits.max_redirects + 1):
            response, body = self._request(current, validators, budget)
            if response.status_code in _REDIRECTS:
                target = _redirect_target(current, response)
                all_permanent = all_permanent and response.status_code in _PERMANENT
                if all_permanent:
                    permanent = target
                current = target
                continue
            return _result(current, response, body, validators, permanent, now)
        raise FetchError(f"more than {self._limits.max_redirects} redirects from {redact_url(url)}")

    def _request(self, url: str, validators: Validators, budget: list[float]
                 ) -> tuple[Answer, bytes]:
        if budget[0] <= 0:
            raise self._timed_out(url)
        with self._turn(urlsplit(url).hostname or "", url):
            started = time.monotonic()
            try:
                with self._deadlines.request(budget[0]):
                    return self._stream(url, validators)
            except (httpx.TimeoutException, httpcore.TimeoutException) as exc:
                if self._deadlines.stopping:
                    raise FetchCancelled(f"fetch of {redact_url(url)} abandoned: stopping") from exc
                raise self._timed_out(url) from exc
            except _ERRORS as exc:
                raise _translate(url, exc) from exc
            finally:
                budget[0] -= time.monotonic() - started

    @contextmanager
    def _turn(self, host: str, url: str) -> Iterator[None]:
        """Hold one of the host's slots; waiting gives up when the fetcher is stopping."""
        slot = self._hosts.slot(host)
        while not slot.acquire(timeout=_SLOT_POLL_SECONDS):
            if self._deadlines.stopping:
                raise FetchCancelled(f"fetch of {redact_url(url)} not started: stopping")
        try:
            yield
        finally:
            slot.release()

    def _timed_out(self, url: str) -> FetchError:
        return FetchError(
            f"timed out: no complete response within {self._limits.timeout_seconds:g} s "
            f"(MONITOR_POLL__TIMEOUT_SECONDS) from {redact_url(url)}"
        )

    def _stream(self, url: str, validators: Validators) -> tuple[Answer, bytes]:
        response = (self._send_direct(url, validators) if self._client is None
                    else self._send_client(url, validators))
        try:
            return response, self._read_body(url, response)
        finally:
            response.close()

    def _send_client(self, url: str, validators: Validators) -> httpx.Response:
        """Through the client given to the constructor (tests: ``httpx.MockTransport``)."""
        headers = {"User-Agent": self._limits.user_agent, "Accept": _ACCEPT,
                   "Accept-Encoding": _ACCEPT_ENCODING, "Connection": "keep-alive"}
        if validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        request = httpx.Request("GET", url, headers=headers, extensions=self._extensions)
        assert self._client is not None
        return self._client.send(request, stream=True, follow_redirects=False)

    def _send_direct(self, url: str, validators: Validators) -> DirectResponse:
        """What httpx.Client.send did for us (Host, the URL's own userinfo as Basic auth,
        cookies, httpx's request line in the log), on httpcore's request and response."""
        target = self._targets.get(url)
        headers = [(b"Host", target.host), *self._base_headers]
        if validators.etag:
            headers.append((b"If-None-Match", encoded(validators.etag)))
        if validators.last_modified:
            headers.append((b"If-Modified-Since", encoded(validators.last_modified)))
        if target.authorization:
            headers.append((b"Authorization", target.authorization))
        if len(self._cookies.jar):
            headers.extend(self._cookie_header(target))
        request = httpcore.Request(b"GET", target.core_url, headers=headers,
                                   extensions=self._extensions)
        response = DirectResponse(self._transports.for_origin(target.origin).handle_core(request))
        if "set-cookie" in response.headers:
            self._cookies.extract_cookies(httpx.Response(
                response.status_code, headers=response.raw_headers,
                request=httpx.Request("GET", target.url)))
        if _httpx_log.isEnabledFor(logging.INFO):
            _httpx_log.info('HTTP Request: GET %s "%s %d %s"', target.url,
                            response.http_version, response.status_code,
                            response.reason_phrase)
        return response

    def _cookie_header(self, target: Target) -> list[tuple[bytes, bytes]]:
        """The Cookie header the jar holds for this URL (httpx's rules), if any."""
        request = httpx.Request("GET", target.url)
        self._cookies.set_cookie_header(request)
        cookie = request.headers.get("Cookie")
        return [(b"Cookie", cookie.encode("latin-1"))] if cookie else []

    def _read_body(self, url: str, response: Answer) -> bytes:
        limit = self._limits.max_body_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise FetchError(f"body of {declared} bytes exceeds the {limit}-byte limit "
                             f"(MONITOR_POLL__MAX_BODY_BYTES): {redact_url(url)}")
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        inflater = None if encoding in ("", "identity") else BoundedInflater(encoding, limit)
        chunks, size = [], 0
        try:
            for raw in response.iter_raw():
                chunk = inflater.feed(raw) if inflater else raw
                size += len(chunk)
                if size > limit:
                    raise FetchError(f"body exceeds the {limit}-byte limit "
                                     f"(MONITOR_POLL__MAX_BODY_BYTES): {redact_url(url)}")
                chunks.append(chunk)
            if inflater:
                chunks.append(inflater.finish())
        except DecompressionError as exc:
            raise FetchError(f"{exc}: {redact_url(url)}") from exc
        return b"".join(chunks)


def _translate(url: str, exc: Exception) -> FetchError:
    """httpx's or httpcore's error -> FetchError naming the URL (without credentials) and the
    cause."""
    cause = exc if isinstance(exc, AddressRefused) else exc.__cause__
    if isinstance(cause, AddressRefused):
        return FetchError(f"{redact_url(url)}: {cause}")
    return FetchError(
        f"{type(exc).__name__} fetching {redact_url(url)}: {redact_urls_in(str(exc))}")


def _redirect_target(url: str, response: Answer) -> str:
    location = response.headers.get("location")
    if not location:
        raise FetchError(f"HTTP {response.status_code} without a Location header from "
                         f"{redact_url(url)}")
    # Credentials offered by a redirect are never used (nor shown): only the configured URL's
    # own userinfo is sent, and a relative redirect keeps it on the same host.
    target = urljoin(url, _without_userinfo(str(location)))
    if urlsplit(target).scheme not in ("http", "https"):
        raise FetchError(
            f"redirect to a non-HTTP URL {redact_url(target)!r} from {redact_url(url)}")
    return target


def _without_userinfo(location: str) -> str:
    parts = urlsplit(location)
    if "@" not in parts.netloc:
        return location
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _result(
    url: str, response: Answer, body: bytes, old: Validators, permanent: str | None,
    now: datetime,
) -> FetchResult:
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("retry-after"), now)
    if status >= 400 or status not in (200, 203, 304):
        raise FetchError(f"HTTP {status} from {redact_url(url)}", retry_after_seconds=retry_after)
    fresh = Validators(response.headers.get("etag"), response.headers.get("last-modified"))
    return FetchResult(
        not_modified=status == 304,
        body=b"" if status == 304 else body,
        content_type=response.headers.get("content-type"),
        # A 304 may omit validators; the old ones still describe what we hold.
        validators=Validators(fresh.etag or old.etag, fresh.last_modified or old.last_modified)
        if status == 304 else fresh,
        final_url=url,
        permanent_redirect=permanent,
        max_age_seconds=parse_max_age(response.headers.get("cache-control")),
        retry_after_seconds=retry_after,
    )

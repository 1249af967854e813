"""HTTP fetching of feeds, as a good citizen. The only module that talks to httpx.

Every request is conditional (If-None-Match / If-Modified-Since), carries an honest User-Agent,
has a timeout and a body-size limit, follows at most ``max_redirects`` redirects (noting a
permanent one so ops can update feeds.yaml), and waits its turn: at most
``per_host_concurrency`` requests run against one host at a time.

``Fetcher.fetch`` blocks on the network and on the per-host limit; it raises FetchError, whose
message names the URL and what went wrong, and never returns a partial body.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urljoin, urlsplit

import httpx

from monitor.errors import FetchError
from monitor.feeds.schedule import parse_max_age, parse_retry_after

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_ACCEPT = ("application/rss+xml, application/atom+xml, application/rdf+xml, "
           "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")


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
    timeout_seconds: float = 20.0
    max_body_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    per_host_concurrency: int = 1


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


class Fetcher:
    """Conditional GET of feed URLs over one shared httpx client (thread-safe)."""

    def __init__(self, limits: FetchLimits, client: httpx.Client | None = None) -> None:
        self._limits = limits
        self._client = client or httpx.Client(http2=False)
        self._hosts = HostLimiter(limits.per_host_concurrency)

    def close(self) -> None:
        self._client.close()

    def fetch(self, url: str, validators: Validators, now: datetime) -> FetchResult:
        permanent: str | None = None
        all_permanent = True  # only a chain of permanent hops from the configured URL counts
        current = url
        for _hop in range(self._limits.max_redirects + 1):
            response, body = self._request(current, validators)
            if response.status_code in _REDIRECTS:
                target = _redirect_target(current, response)
                all_permanent = all_permanent and response.status_code in _PERMANENT
                if all_permanent:
                    permanent = target
                current = target
                continue
            return _result(current, response, body, validators, permanent, now)
        raise FetchError(f"more than {self._limits.max_redirects} redirects from {url}")

    def _request(self, url: str, validators: Validators) -> tuple[httpx.Response, bytes]:
        host = urlsplit(url).hostname or ""
        with self._hosts.slot(host):
            try:
                return self._stream(url, validators)
            except httpx.TimeoutException as exc:
                raise FetchError(
                    f"timed out after {self._limits.timeout_seconds:g} s fetching {url}"
                ) from exc
            except httpx.HTTPError as exc:
                raise FetchError(f"{type(exc).__name__} fetching {url}: {exc}") from exc

    def _stream(self, url: str, validators: Validators) -> tuple[httpx.Response, bytes]:
        headers = {"User-Agent": self._limits.user_agent, "Accept": _ACCEPT}
        if validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        limit = self._limits.max_body_bytes
        with self._client.stream(
            "GET", url, headers=headers, timeout=self._limits.timeout_seconds,
            follow_redirects=False,
        ) as response:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise FetchError(f"body of {declared} bytes exceeds the {limit}-byte limit: {url}")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise FetchError(f"body exceeds the {limit}-byte limit: {url}")
                chunks.append(chunk)
        return response, b"".join(chunks)


def _redirect_target(url: str, response: httpx.Response) -> str:
    location = response.headers.get("Location")
    if not location:
        raise FetchError(f"HTTP {response.status_code} without a Location header from {url}")
    target = urljoin(url, str(location))
    if urlsplit(target).scheme not in ("http", "https"):
        raise FetchError(f"redirect to a non-HTTP URL {target!r} from {url}")
    return target


def _result(
    url: str, response: httpx.Response, body: bytes, old: Validators, permanent: str | None,
    now: datetime,
) -> FetchResult:
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
    if status >= 400 or status not in (200, 203, 304):
        raise FetchError(
            f"HTTP {status} from {url}", retry_after_seconds=retry_after
        )
    fresh = Validators(response.headers.get("ETag"), response.headers.get("Last-Modified"))
    return FetchResult(
        not_modified=status == 304,
        body=b"" if status == 304 else body,
        content_type=response.headers.get("Content-Type"),
        # A 304 may omit validators; the old ones still describe what we hold.
        validators=Validators(fresh.etag or old.etag, fresh.last_modified or old.last_modified)
        if status == 304 else fresh,
        final_url=url,
        permanent_redirect=permanent,
        max_age_seconds=parse_max_age(response.headers.get("Cache-Control")),
        retry_after_seconds=retry_after,
    )

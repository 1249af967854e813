"""monitor/feeds/fetch.py over httpx.MockTransport: conditional GET, limits, redirects, errors."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import httpx
import pytest

from monitor.errors import FetchError
from monitor.feeds.fetch import Fetcher, FetchLimits, HostLimiter, Validators

NOW = datetime(2024, 4, 30, 12, 0, tzinfo=UTC)
URL = "https://tass.ru/rss/v2.xml"
Handler = Callable[[httpx.Request], httpx.Response]


def fetcher(handler: Handler, **limits: int) -> Fetcher:
    def streamed(request: httpx.Request) -> httpx.Response:
        # As from the network: the body still to be read (the fetcher reads it raw, bounded).
        response = handler(request)
        if not hasattr(response, "_content"):  # already a stream
            return response
        return httpx.Response(response.status_code, headers=response.headers,
                              stream=httpx.ByteStream(response.content))

    client = httpx.Client(transport=httpx.MockTransport(streamed))
    return Fetcher(FetchLimits(user_agent="claim-monitor-test/1", **limits), client)


def fetch_error(handler: Handler, url: str = URL, **limits: int) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetcher(handler, **limits).fetch(url, Validators(), NOW)
    return info.value


@pytest.mark.parametrize(
    ("old", "expected"),
    [
        # RFC 9110 13.1.1 / 13.1.3: a conditional GET with the validators of the last 200.
        pytest.param(Validators('W/"abc"', "Mon, 29 Apr 2024 10:00:00 GMT"),
                     {"If-None-Match": 'W/"abc"',
                      "If-Modified-Since": "Mon, 29 Apr 2024 10:00:00 GMT"}, id="both"),
        pytest.param(Validators(etag='"e"'), {"If-None-Match": '"e"'}, id="etag-only"),
        pytest.param(Validators(), {}, id="first-request-unconditional"),
    ],
)
def test_request_headers(old: Validators, expected: dict[str, str]) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(304)

    fetcher(handler).fetch(URL, old, NOW)
    (request,) = seen
    assert request.headers["User-Agent"] == "claim-monitor-test/1"
    assert "rss+xml" in request.headers["Accept"]
    conditional = {k: v for k, v in request.headers.items() if k.lower().startswith("if-")}
    assert {k.lower(): v for k, v in expected.items()} == conditional


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({}, Validators('"e1"', "Mon, 29 Apr 2024 10:00:00 GMT"), id="kept"),
        # RFC 9110 15.4.5: a 304 may send a fresher ETag; use it.
        pytest.param({"ETag": '"e2"'}, Validators('"e2"', "Mon, 29 Apr 2024 10:00:00 GMT"),
                     id="etag-updated"),
    ],
)
def test_not_modified(headers: dict[str, str], expected: Validators) -> None:
    result = fetcher(lambda _: httpx.Response(304, headers=headers)).fetch(
        URL, Validators('"e1"', "Mon, 29 Apr 2024 10:00:00 GMT"), NOW)
    assert result.not_modified
    assert result.body == b""
    assert result.validators == expected


def test_ok_returns_body_type_validators_and_max_age() -> None:
    headers = {"Content-Type": "application/rss+xml; charset=utf-8", "ETag": '"new"',
               "Last-Modified": "Tue, 30 Apr 2024 11:00:00 GMT", "Cache-Control": "max-age=300"}
    result = fetcher(lambda _: httpx.Response(200, content=b"<rss>1</rss>", headers=headers)
                     ).fetch(URL, Validators('"old"', "x"), NOW)
    assert not result.not_modified
    assert result.body == b"<rss>1</rss>"
    assert result.content_type == "application/rss+xml; charset=utf-8"
    assert result.validators == Validators('"new"', "Tue, 30 Apr 2024 11:00:00 GMT")
    assert result.max_age_seconds == 300.0  # RFC 9111 5.2.2.1
    assert (result.final_url, result.permanent_redirect) == (URL, None)


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(lambda: httpx.Response(200, content=b"x" * 1001), id="content-length"),
        # Chunked transfer: no Content-Length, so the limit is counted while reading.
        pytest.param(lambda: httpx.Response(200, content=(b"x" * 100 for _ in range(20))),
                     id="streamed"),
    ],
)
def test_body_over_limit(response: Callable[[], httpx.Response]) -> None:
    error = fetch_error(lambda _: response(), max_body_bytes=1000)
    assert "1000-byte limit" in str(error) and URL in str(error)


def test_body_at_limit_is_fine() -> None:
    result = fetcher(lambda _: httpx.Response(200, content=(b"x" * 100 for _ in range(10))),
                     max_body_bytes=1000).fetch(URL, Validators(), NOW)
    assert len(result.body) == 1000


def redirects(chain: Mapping[str, tuple[int, str | None]]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        status, location = chain.get(str(request.url), (200, None))
        headers = {"Location": location} if location else {}
        return httpx.Response(status, headers=headers, content=b"<rss/>")
    return handler


COM = "https://tass.com/rss/v2.xml"


@pytest.mark.parametrize(
    ("chain", "final", "permanent"),
    [
        # RFC 9110 15.4.2 / 15.4.9: 301 and 308 mean "update your link"; 302/303/307 do not.
        pytest.param({URL: (301, COM)}, COM, COM, id="301"),
        pytest.param({URL: (308, COM)}, COM, COM, id="308"),
        pytest.param({URL: (302, COM)}, COM, None, id="302"),
        pytest.param({URL: (307, COM)}, COM, None, id="307"),
        pytest.param({URL: (301, "/v3.xml")}, "https://tass.ru/v3.xml",
                     "https://tass.ru/v3.xml", id="relative-location"),
        # The configured URL moved for good; where it lands after that may still change.
        pytest.param({URL: (301, COM), COM: (302, "https://cdn.tass.com/x")},
                     "https://cdn.tass.com/x", COM, id="301-then-302"),
    ],
)
def test_redirect_followed(
    chain: dict[str, tuple[int, str]], final: str, permanent: str | None
) -> None:
    result = fetcher(redirects(chain)).fetch(URL, Validators(), NOW)
    assert (result.final_url, result.permanent_redirect) == (final, permanent)
    assert result.body == b"<rss/>"


def test_permanent_after_temporary_is_not_reported() -> None:
    # The configured URL itself only moved temporarily; feeds.yaml should keep it.
    chain = {URL: (302, "https://tass.ru/tmp"), "https://tass.ru/tmp": (301, "https://x.ru/")}
    assert fetcher(redirects(chain)).fetch(URL, Validators(), NOW).permanent_redirect is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"Location": "/again"}, "more than 2 redirects from", id="loop"),
        pytest.param({}, "without a Location header", id="no-location"),
        pytest.param({"Location": "ftp://tass.ru/x"}, "non-HTTP URL", id="to-ftp"),
    ],
)
def test_bad_redirect(headers: dict[str, str], expected: str) -> None:
    error = fetch_error(lambda _: httpx.Response(302, headers=headers), max_redirects=2)
    assert expected in str(error) and URL in str(error)


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [
        # RFC 9110 10.2.3: 503 and 429 carry Retry-After.
        pytest.param(503, {"Retry-After": "120"}, 120.0, id="503-retry-after"),
        pytest.param(429, {"Retry-After": "Tue, 30 Apr 2024 12:05:00 GMT"}, 300.0, id="429-date"),
        pytest.param(404, {}, None, id="404"),
        pytest.param(500, {}, None, id="500"),
        pytest.param(204, {}, None, id="204-no-body"),
    ],
)
def test_http_errors(status: int, headers: dict[str, str], retry_after: float | None) -> None:
    error = fetch_error(lambda _: httpx.Response(status, headers=headers))
    assert f"HTTP {status}" in str(error) and URL in str(error)
    assert error.retry_after_seconds == retry_after


def test_hostile_retry_after_is_still_a_fetch_error() -> None:
    fetch_error(lambda _: httpx.Response(503, headers=[(b"Retry-After", b"\xb2")]))


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(httpx.ReadTimeout, "no complete response within 20 s", id="read-timeout"),
        pytest.param(httpx.ConnectTimeout, "no complete response within", id="connect-timeout"),
        pytest.param(httpx.ConnectError, "ConnectError", id="connection-refused"),
        pytest.param(httpx.RemoteProtocolError, "RemoteProtocolError", id="protocol"),
    ],
)
def test_transport_errors(exc: type[httpx.TransportError], expected: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc("boom", request=request)

    error = fetch_error(handler)
    assert expected in str(error) and URL in str(error)
    assert isinstance(error.__cause__, exc)


class Gate:
    """A transport handler that holds every request until released and counts overlaps."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.inside = self.peak = self.entered = 0
        self.release = threading.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.cond:
            self.inside += 1
            self.entered += 1
            self.peak = max(self.peak, self.inside)
            self.cond.notify_all()
        self.release.wait(timeout=10)
        with self.cond:
            self.inside -= 1
        return httpx.Response(200, content=b"<rss/>")

    def wait_entered(self, count: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.entered >= count, timeout=timeout)


def run_two(gate: Gate, urls: tuple[str, str], concurrency: int, expect_overlap: bool) -> None:
    shared = fetcher(gate, per_host_concurrency=concurrency)
    threads = [threading.Thread(target=shared.fetch, args=(u, Validators(), NOW)) for u in urls]
    threads[0].start()
    assert gate.wait_entered(1, timeout=5)
    threads[1].start()
    # Proving a negative needs a window; a positive returns as soon as it happens.
    assert gate.wait_entered(2, timeout=5 if expect_overlap else 0.2) is expect_overlap
    gate.release.set()
    for thread in threads:
        thread.join(timeout=5)
    assert gate.entered == 2


@pytest.mark.parametrize(
    ("urls", "concurrency", "overlap"),
    [
        # Polite polling: one request at a time per host (hosts compare case-insensitively).
        pytest.param(("https://ria.ru/a.xml", "https://RIA.ru/b.xml"), 1, False, id="same-host"),
        pytest.param(("https://ria.ru/a.xml", "https://tass.ru/b.xml"), 1, True, id="other-host"),
        pytest.param(("https://ria.ru/a.xml", "https://ria.ru/b.xml"), 2, True, id="limit-two"),
    ],
)
def test_per_host_concurrency(urls: tuple[str, str], concurrency: int, overlap: bool) -> None:
    gate = Gate()
    run_two(gate, urls, concurrency, expect_overlap=overlap)
    assert gate.peak == (2 if overlap else 1)


def test_host_limiter_slots() -> None:
    limiter = HostLimiter(1)
    assert limiter.slot("ria.ru") is limiter.slot("ria.ru")
    assert limiter.slot("ria.ru") is not limiter.slot("tass.ru")
    with limiter.slot("ria.ru"):
        assert not limiter.slot("ria.ru").acquire(blocking=False)
        assert limiter.slot("tass.ru").acquire(blocking=False)

"""The real fetcher against a hostile server on loopback: every attack is bounded and explained.

Each test runs the fetch in a thread it can abandon, so that on code without the bound the test
fails at its own deadline instead of hanging the suite.
"""

from __future__ import annotations

import ipaddress
import threading
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.errors import FetchError, ParseError
from monitor.feeds.fetch import Fetcher, FetchLimits, FetchResult, Validators
from monitor.feeds.parse import FeedSource, TextLimits, parse_feed
from tests.support.hostile_server import HostileServer, rss

NOW = datetime(2026, 11, 29, tzinfo=UTC)
LOOPBACK_1 = (ipaddress.ip_network("127.0.0.1/32"),)


def make_fetcher(**limits: Any) -> Fetcher:
    limits.setdefault("allowed_networks", LOOPBACK_1)
    limits.setdefault("timeout_seconds", 2.0)
    return Fetcher(FetchLimits(user_agent="monitor-hostile-tests/1", **limits))


class Outcome:
    """A fetch run in a daemon thread: its result or error, and how long it took."""

    def __init__(self, fetch: Callable[[], FetchResult]) -> None:
        self.result: FetchResult | None = None
        self.error: BaseException | None = None
        self.seconds: float | None = None
        self._thread = threading.Thread(target=self._run, args=(fetch,), daemon=True)
        self._thread.start()

    def _run(self, fetch: Callable[[], FetchResult]) -> None:
        started = time.monotonic()
        try:
            self.result = fetch()
        except BaseException as exc:  # noqa: BLE001 - the test looks at whatever came
            self.error = exc
        self.seconds = time.monotonic() - started

    def wait(self, timeout_seconds: float) -> Outcome:
        self._thread.join(timeout_seconds)
        assert not self._thread.is_alive(), f"the fetch still runs after {timeout_seconds} s"
        return self


def fetch_in_thread(fetcher: Fetcher, url: str) -> Outcome:
    return Outcome(lambda: fetcher.fetch(url, Validators(), NOW))


@pytest.mark.parametrize("path", ["/slow-body", "/slow-headers"])
def test_a_server_dripping_one_byte_a_second_is_cut_off_at_the_total_deadline(
        hostile: HostileServer, path: str) -> None:
    outcome = fetch_in_thread(make_fetcher(timeout_seconds=2.0), hostile.url(path)).wait(6)
    assert isinstance(outcome.error, FetchError)
    assert "no complete response within 2 s (MONITOR_POLL__TIMEOUT_SECONDS)" in str(outcome.error)
    assert hostile.url(path) in str(outcome.error)
    assert outcome.seconds is not None and 1.9 < outcome.seconds < 3.5


def test_the_host_slot_is_freed_when_the_deadline_passes(hostile: HostileServer) -> None:
    # One request per host: a good feed queued behind a hanging one on the same host is
    # fetched once the hanging one's deadline frees the slot, not never.
    good = hostile.set("good", rss("fine"))
    fetcher = make_fetcher(timeout_seconds=2.0, per_host_concurrency=1)
    slow = fetch_in_thread(fetcher, hostile.url("/slow-body"))
    while not hostile.requests_to("/slow-body"):
        time.sleep(0.01)
    queued = fetch_in_thread(fetcher, good)
    queued.wait(6)
    slow.wait(1)
    assert queued.error is None and queued.result is not None
    assert b"fine" in queued.result.body
    assert isinstance(slow.error, FetchError)


def test_stop_ends_fetches_in_progress_and_waiting_within_the_grace(
        hostile: HostileServer) -> None:
    fetcher = make_fetcher(timeout_seconds=120.0, per_host_concurrency=1)
    hanging = fetch_in_thread(fetcher, hostile.url("/slow-body"))
    while not hostile.requests_to("/slow-body"):
        time.sleep(0.01)
    waiting = fetch_in_thread(fetcher, hostile.url("/slow-headers"))
    started = time.monotonic()
    fetcher.stop(grace_seconds=0.5)
    hanging.wait(3)
    waiting.wait(3)
    assert time.monotonic() - started < 2.5
    assert "stopping" in str(hanging.error) and "stopping" in str(waiting.error)
    assert not hostile.requests_to("/slow-headers")  # never started: it was waiting its turn


@pytest.mark.parametrize(("path", "error"), [
    pytest.param("/gzip-raw-bomb", ParseError, id="gzip-without-content-encoding"),
    pytest.param("/gzip-encoded-bomb", FetchError, id="content-encoding-gzip"),
    pytest.param("/deflate-bomb", FetchError, id="content-encoding-deflate"),
])
def test_compressed_bombs_are_refused_within_the_body_limit(
        hostile: HostileServer, path: str, error: type[Exception]) -> None:
    # 64 MiB of zeros in ~64 KiB; the limit is 1 MiB, so memory must stay near 1 MiB.
    limit = 1 << 20
    fetcher = make_fetcher(max_body_bytes=limit)

    def fetch_and_parse() -> None:
        fetched = fetcher.fetch(hostile.url(path), Validators(), NOW)
        parse_feed(fetched.body, fetched.content_type, FeedSource("bomb", "B", None), NOW,
                   TextLimits(max_inflated_bytes=limit))

    tracemalloc.start()
    try:
        with pytest.raises(error, match="inflates past the 1048576-byte limit"):
            fetch_and_parse()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 6 * limit, f"peak {peak / 2**20:.1f} MiB for a 1 MiB limit"


def test_a_redirect_loop_ends_after_max_redirects(hostile: HostileServer) -> None:
    outcome = fetch_in_thread(make_fetcher(max_redirects=5), hostile.url("/redirect-loop"))
    outcome.wait(5)
    assert "more than 5 redirects from" in str(outcome.error)
    assert len(hostile.requests_to("/redirect-loop")) == 6


def test_a_name_lookup_that_hangs_ends_at_the_deadline_too() -> None:
    # getaddrinfo cannot be interrupted; the fetch stops waiting for it at its deadline.
    release = threading.Event()

    def hanging_resolver(*_args: object, **_kwargs: object) -> list[tuple[object, ...]]:
        release.wait(30)
        raise OSError("released")

    fetcher = Fetcher(FetchLimits(user_agent="monitor-hostile-tests/1", timeout_seconds=1.0),
                      resolver=hanging_resolver)
    try:
        outcome = fetch_in_thread(fetcher, "http://wire.example/feed.xml").wait(4)
    finally:
        release.set()
    assert "no complete response within 1 s" in str(outcome.error)
    assert outcome.seconds is not None and outcome.seconds < 2

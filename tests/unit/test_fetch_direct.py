"""The fetcher's direct path to the connection pool (``monitor/feeds/direct.py``) against a real
server: what httpx's client did for it (cookies, headers read whatever their case, validators
sent back) still happens."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.feeds.fetch import Fetcher, FetchLimits, Validators
from tests.support.feed_server import LOOPBACK, FeedServer

NOW = datetime(2026, 12, 1, tzinfo=UTC)
BODY = b"<rss><channel><title>t</title></channel></rss>"


def fetcher() -> Fetcher:
    return Fetcher(FetchLimits(user_agent="monitor-tests/1", timeout_seconds=5,
                               allowed_networks=LOOPBACK))


def test_a_cookie_the_server_sets_is_sent_back(feed_server: FeedServer) -> None:
    feed_server.set("/c.xml", BODY, headers={"Set-Cookie": "session=abc; Path=/"})
    fetch = fetcher()
    fetch.fetch(feed_server.url("/c.xml"), Validators(), NOW)
    fetch.fetch(feed_server.url("/c.xml"), Validators(), NOW)
    first, second = feed_server.hits("/c.xml")
    assert "Cookie" not in first.headers
    assert second.headers["Cookie"] == "session=abc"


def test_validators_come_back_and_make_the_next_request_conditional(
        feed_server: FeedServer) -> None:
    route = feed_server.set("/v.xml", BODY, content_type="application/rss+xml")
    fetch = fetcher()
    first = fetch.fetch(feed_server.url("/v.xml"), Validators(), NOW)
    assert (first.body, first.content_type) == (BODY, "application/rss+xml")
    assert first.validators == Validators(route.etag, route.last_modified)
    second = fetch.fetch(feed_server.url("/v.xml"), first.validators, NOW)
    assert second.not_modified and second.body == b""
    assert feed_server.hits("/v.xml")[1].headers["If-None-Match"] == route.etag


def test_a_validator_that_is_not_ascii_is_sent_back_without_an_error(
        feed_server: FeedServer) -> None:
    # http.server sends header values as Latin-1: the ETag arrives as the byte 0xE9.
    feed_server.set("/e.xml", BODY)
    feed_server.change("/e.xml", etag='"caf\u00e9"')
    fetch = fetcher()
    first = fetch.fetch(feed_server.url("/e.xml"), Validators(), NOW)
    assert first.validators.etag == '"caf\u00e9"'
    second = fetch.fetch(feed_server.url("/e.xml"), first.validators, NOW)
    assert second.body == BODY  # sent as UTF-8, which this server reads as other text

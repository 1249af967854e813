"""Server-side request forgery and credentials: which addresses a feed may make us reach, and
what a redirect may make us send.

A second server on 127.0.0.2 plays the outside feed the operator allowed
(MONITOR_POLL__ALLOWED_NETWORKS=127.0.0.2/32); 127.0.0.1 plays the internal service it must not
reach (any loopback, private or link-local address is refused the same way).
"""

from __future__ import annotations

import io
import ipaddress
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitor.bus.embedded import EmbeddedItemLog
from monitor.config.feeds import FeedConfig
from monitor.errors import FetchError
from monitor.feeds.fetch import Fetcher, FetchLimits, Validators
from monitor.feeds.netguard import AddressPolicy
from monitor.feeds.parse import FeedSource, TextLimits, parse_feed
from monitor.feeds.poller import FeedPoller
from monitor.feeds.schedule import SchedulePolicy
from monitor.feeds.state import SQLitePollState
from monitor.logsetup import configure_logging
from monitor.metrics import Metrics
from monitor.store import Database
from tests.support.hostile_server import HostileServer, rss

NOW = datetime(2026, 11, 29, tzinfo=UTC)
OUTSIDE = (ipaddress.ip_network("127.0.0.2/32"),)


def fetcher(allowed: tuple[ipaddress.IPv4Network, ...] = OUTSIDE) -> Fetcher:
    return Fetcher(FetchLimits(user_agent="monitor-hostile-tests/1", timeout_seconds=5,
                               allowed_networks=allowed))


@pytest.mark.parametrize(("address", "kind"), [
    pytest.param("127.0.0.1", "loopback", id="loopback"),
    pytest.param("::1", "loopback", id="loopback-v6"),
    pytest.param("::ffff:127.0.0.1", "loopback", id="v4-mapped-loopback"),
    pytest.param("10.1.2.3", "private", id="rfc1918-10"),
    pytest.param("172.16.0.1", "private", id="rfc1918-172"),
    pytest.param("192.168.1.1", "private", id="rfc1918-192"),
    pytest.param("169.254.169.254", "link-local", id="cloud-metadata"),
    pytest.param("fe80::1", "link-local", id="link-local-v6"),
    pytest.param("fd00::1", "private", id="unique-local-v6"),
    pytest.param("0.0.0.0", "unspecified", id="unspecified"),
    pytest.param("224.0.0.1", "multicast", id="multicast"),
    pytest.param("240.0.0.1", "reserved", id="reserved"),
    pytest.param("100.64.0.1", "non-public", id="carrier-grade-nat"),
    pytest.param("93.184.215.14", None, id="public-v4"),
    pytest.param("2606:4700::1111", None, id="public-v6"),
])
def test_address_policy_refuses_everything_but_public_addresses(address: str,
                                                                kind: str | None) -> None:
    refusal = AddressPolicy().refusal(ipaddress.ip_address(address))
    assert (refusal is None) if kind is None else (f"a {kind} address" in (refusal or ""))


def test_allowed_networks_lift_the_refusal_for_exactly_those_networks() -> None:
    policy = AddressPolicy([ipaddress.ip_network("10.20.0.0/16")])
    assert policy.refusal(ipaddress.ip_address("10.20.3.4")) is None
    assert policy.refusal(ipaddress.ip_address("10.21.0.1")) is not None


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_feed_on_a_loopback_address_is_refused_by_default(hostile: HostileServer,
                                                            host: str) -> None:
    # "localhost" is a name resolving to loopback: the check is on the address, not the name.
    hostile.set("feed", rss("internal"))
    url = f"http://{host}:{hostile.port}/feed/feed"
    with pytest.raises(FetchError) as raised:
        fetcher(allowed=()).fetch(url, Validators(), NOW)
    message = str(raised.value)
    assert "refused to connect to" in message and "loopback address" in message
    assert "MONITOR_POLL__ALLOWED_NETWORKS" in message and url in message
    assert not hostile.seen  # not a single byte reached it


def test_a_redirect_from_an_allowed_feed_to_loopback_is_refused(
        hostile: HostileServer, outside: HostileServer) -> None:
    secret = hostile.set("admin", rss("internal secret"))
    with pytest.raises(FetchError) as raised:
        fetcher().fetch(outside.url(f"/redirect?to={secret}"), Validators(), NOW)
    assert "127.0.0.1 is a loopback address" in str(raised.value)
    assert outside.requests_to("/redirect") and not hostile.seen


def test_userinfo_in_a_redirect_is_never_sent_nor_shown(outside: HostileServer) -> None:
    target = outside.url("/auth-echo", userinfo="bank:hunter2")
    fetched = fetcher().fetch(outside.url(f"/redirect?to={target}"), Validators(), NOW)
    (item,) = parse_feed(fetched.body, fetched.content_type, FeedSource("f", "F", None),
                         NOW).items
    assert item.title == "authorization none"
    assert "Authorization" not in outside.requests_to("/auth-echo")[0].headers
    assert "hunter2" not in fetched.final_url


@pytest.fixture
def daemon_log() -> Iterator[io.StringIO]:
    """What the daemon's own logging set-up (handler, filters) writes, at debug; undone after."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("debug")
    logging.getLogger("httpx").setLevel(logging.DEBUG)  # as verbose as anyone could ask
    written = io.StringIO()
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(written)
    try:
        yield written
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def test_the_configured_urls_own_credentials_are_sent_but_never_shown(
        tmp_path: Path, outside: HostileServer, daemon_log: io.StringIO) -> None:
    # The operator's credentials: used for the request; absent from every log line (httpx's
    # own request line included), the state file's last_error and /metrics when it fails.
    ok = fetcher().fetch(outside.url("/auth-echo", userinfo="desk:hunter2"), Validators(), NOW)
    assert b"authorization Basic" in ok.body

    database = Database(tmp_path / "state.sqlite3")
    registry = CollectorRegistry()
    poller = FeedPoller(fetcher(), SQLitePollState(database), EmbeddedItemLog(database),
                        Metrics(registry), policy=SchedulePolicy(), text_limits=TextLimits(),
                        bus_name="embedded")
    feed = FeedConfig.model_validate(
        {"id": "private-wire", "source": "W",
         "url": outside.url("/status/503", userinfo="desk:hunter2") + "?apikey=k3y"})
    result = poller.poll(feed)
    logged = daemon_log.getvalue()
    assert "HTTP Request: GET http://***@127.0.0.2" in logged  # httpx's line, redacted
    assert result.error and "HTTP 503 from http://***@127.0.0.2" in result.error
    stored = SQLitePollState(database).load("private-wire").last_error or ""
    exposed = {"log": logged, "state": stored, "result": result.error,
               "metrics": generate_latest(registry).decode()}
    for where, text in exposed.items():
        assert "hunter2" not in text and "k3y" not in text, where
    assert "apikey=***" in stored
    database.close()

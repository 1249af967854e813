"""Parsing in worker processes (parse_pool.py): the same items as in-process, and a worker that
dies mid-parse costs that poll only (a clear error, nothing published, the next poll works)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.bus.embedded import EmbeddedItemLog
from monitor.config.feeds import FeedConfig
from monitor.errors import ParseError
from monitor.feeds.fetch import Fetcher, FetchLimits
from monitor.feeds.parse import FeedSource, ParsedFeed, TextLimits, parse_feed
from monitor.feeds.parse_pool import (
    POOL_FROM_FEEDS,
    InlineParser,
    ParsePool,
    build_parser,
    parse_processes_for,
)
from monitor.feeds.parse_worker import EncodedFeed, RemoteTraceback
from monitor.feeds.poller import FeedPoller
from monitor.feeds.schedule import SchedulePolicy
from monitor.feeds.state import SQLitePollState
from monitor.metrics import Metrics, PollOutcome
from monitor.model import encode_item
from monitor.store import Database
from tests.conftest import SHARED
from tests.support.feed_server import LOOPBACK, FeedServer
from tests.support.waiting import eventually

FETCHED = datetime(2026, 11, 30, tzinfo=UTC)
SOURCE = FeedSource("wire", "Test Wire", "ru")
DIE_MARK = b"<!-- die-once:"


def rss(*numbers: int, extra: str = "") -> bytes:
    items = "".join(
        f"<item><title>Story {n}</title><link>https://wire.example/{n}</link>"
        f"<description>&lt;p&gt;Text {n}&lt;/p&gt;</description>"
        f"<pubDate>Sat, 03 Dec 2022 16:43:00 +0300</pubDate></item>" for n in numbers)
    return (f'<?xml version="1.0" encoding="utf-8"?>{extra}<rss version="2.0"><channel>'
            f"<title>Wire</title>{items}</channel></rss>").encode()


def die_once(body: bytes, *args: object) -> ParsedFeed:
    """In a worker: SIGKILL itself while parsing a body that names a flag file that exists
    (the file is removed first, so the same body parses on the next try)."""
    start = body.find(DIE_MARK)
    if start >= 0:
        flag = Path(body[start + len(DIE_MARK):body.index(b" -->", start)].decode())
        if flag.exists():
            flag.unlink()
            os.kill(os.getpid(), signal.SIGKILL)
    return parse_feed(body, *args)  # type: ignore[arg-type]


def hang_or_fail(body: bytes, *args: object) -> ParsedFeed:
    """In a worker: hang on b"hang", take 6 s on b"slow", raise a bug's exception on b"bug",
    else parse."""
    if body == b"hang":
        time.sleep(60)
    if body == b"slow":
        time.sleep(6)
    if body == b"bug":
        raise KeyError("a bug in the parser")
    return parse_feed(body, *args)  # type: ignore[arg-type]


@pytest.fixture
def pool() -> Iterator[ParsePool]:
    parser = ParsePool(2)
    yield parser
    parser.close()


def _shared_documents() -> list[Path]:
    folders = [SHARED / "feeds" / "real", SHARED / "feeds" / "bench"]
    docs = [p for folder in folders if folder.is_dir() for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".") and p.suffix not in (".md", ".tsv")]
    return docs[::5]  # a fifth of them: equality is per document, not per corpus


def _both(pool: ParsePool, body: bytes, content_type: str | None
          ) -> tuple[ParsedFeed | str, ParsedFeed | str]:
    results: list[ParsedFeed | str] = []
    for parser in (InlineParser(), pool):
        try:
            results.append(parser.parse(body, content_type, SOURCE, FETCHED, TextLimits()))
        except ParseError as exc:
            results.append(f"ParseError: {exc}")
    return results[0], results[1]


@pytest.mark.parametrize(("body", "content_type"), [
    pytest.param(rss(1, 2, 3), "application/rss+xml", id="rss"),
    pytest.param(b'<!DOCTYPE rss>' + rss(4), None, id="feedparser-path"),
    pytest.param(b"not a feed at all", "text/plain", id="not-a-feed"),
])
def test_pooled_parse_equals_in_process(pool: ParsePool, body: bytes,
                                        content_type: str | None) -> None:
    inline, pooled = _both(pool, body, content_type)
    assert pooled == inline


def test_pooled_parse_equals_in_process_on_shared_documents(pool: ParsePool) -> None:
    docs = _shared_documents()
    if not docs:
        pytest.skip(f"feed documents not found under {SHARED / 'feeds'}")
    for doc in docs:
        inline, pooled = _both(pool, doc.read_bytes(), None)
        assert pooled == inline, doc.name


def test_backlog_items_come_back_marked_from_either_parser(pool: ParsePool) -> None:
    pooled = pool.parse(rss(1, 2), None, SOURCE, FETCHED, TextLimits(), backlog=True)
    inline = InlineParser().parse(rss(1, 2), None, SOURCE, FETCHED, TextLimits(), backlog=True)
    plain = InlineParser().parse(rss(1, 2), None, SOURCE, FETCHED, TextLimits())
    assert pooled == inline
    assert [item.backlog for item in pooled.items] == [True, True]
    assert [replace(item, backlog=False) for item in pooled.items] == list(plain.items)
    assert not any(item.backlog for item in plain.items)


@pytest.mark.parametrize("backlog", [False, True], ids=["news", "backlog"])
def test_workers_encode_the_items_as_the_item_log_would(pool: ParsePool, backlog: bool) -> None:
    encoded = pool.parse(rss(1, 2, 3), None, SOURCE, FETCHED, TextLimits(), backlog=backlog,
                         encode=True)
    inline = InlineParser().parse(rss(1, 2, 3), None, SOURCE, FETCHED, TextLimits(),
                                  backlog=backlog, encode=True)
    assert isinstance(encoded, EncodedFeed) and not isinstance(inline, EncodedFeed)
    assert encoded.items == inline.items
    assert encoded.payloads == tuple(encode_item(item) for item in inline.items)


def test_workers_encode_the_shared_documents_items_as_the_item_log_would(
        pool: ParsePool) -> None:
    docs = _shared_documents()
    if not docs:
        pytest.skip(f"feed documents not found under {SHARED / 'feeds'}")
    for doc in docs:
        try:
            encoded = pool.parse(doc.read_bytes(), None, SOURCE, FETCHED, TextLimits(),
                                 backlog=True, encode=True)
        except ParseError:
            continue
        assert isinstance(encoded, EncodedFeed)
        assert encoded.payloads == tuple(encode_item(item) for item in encoded.items), doc.name


def test_a_worker_killed_mid_parse_fails_that_parse_only(tmp_path: Path) -> None:
    flag = tmp_path / "die"
    flag.touch()
    pool = ParsePool(1, parse=die_once)
    try:
        body = rss(1, extra=f"<!-- die-once:{flag} -->")
        with pytest.raises(ParseError, match="ended while parsing the body of wire"):
            pool.parse(body, None, SOURCE, FETCHED, TextLimits())
        again = pool.parse(body, None, SOURCE, FETCHED, TextLimits())  # a new worker
        assert [item.title for item in again.items] == ["Story 1"]
        assert pool.restarts == 1
    finally:
        pool.close()


def test_a_poll_whose_worker_died_publishes_everything_on_its_next_poll(
        tmp_path: Path, feed_server: FeedServer) -> None:
    flag = tmp_path / "die"
    flag.touch()
    feed_server.set("/wire.xml", rss(1, 2, 3, extra=f"<!-- die-once:{flag} -->"))
    feed = FeedConfig.model_validate({"id": "wire", "url": feed_server.url("/wire.xml"),
                                      "source": "Test Wire", "interval": 60})
    database = Database(tmp_path / "state.sqlite3")
    item_log = EmbeddedItemLog(database)
    pool = ParsePool(1, parse=die_once)
    poller = FeedPoller(
        Fetcher(FetchLimits(user_agent="monitor-tests/1", timeout_seconds=5,
                            allowed_networks=LOOPBACK)),
        SQLitePollState(database), item_log, Metrics(CollectorRegistry()),
        policy=SchedulePolicy(), text_limits=TextLimits(), bus_name="embedded",
        rng=random.Random(1), parser=pool)
    try:
        failed = poller.poll(feed)
        assert failed.outcome is PollOutcome.PARSE_ERROR
        assert "ended while parsing the body of wire" in (failed.error or "")
        assert item_log.count() == 0
        state = SQLitePollState(database).load("wire")
        assert (state.etag, state.body_hash) == (None, None)  # nothing advanced
        retried = poller.poll(feed)
        assert (retried.outcome, retried.new_items) == (PollOutcome.NEW_ITEMS, 3)
        assert item_log.count() == 3
        # Logged as the workers encoded them: the bytes encode_item makes, backlog marked.
        logged = [(record.value, item) for record, (_, item)
                  in zip(item_log.log.read_all(), item_log.read_after(0), strict=True)]
        assert all(item.backlog and value == encode_item(item) for value, item in logged)
    finally:
        pool.close()
        database.close()


def test_the_pool_starts_only_with_many_feeds_unless_set() -> None:
    cores = os.cpu_count() or 1
    assert parse_processes_for(None, POOL_FROM_FEEDS - 1) == 0
    assert parse_processes_for(None, POOL_FROM_FEEDS) == cores
    assert parse_processes_for(0, 100_000) == 0
    assert parse_processes_for(3, 10) == 3
    assert isinstance(build_parser(0), InlineParser)
    pooled = build_parser(2)
    assert isinstance(pooled, ParsePool) and pooled.process_ids() == []  # not started yet
    pooled.close()


def test_a_closed_pool_refuses_to_parse() -> None:
    pool = ParsePool(1)
    pool.close()
    with pytest.raises(RuntimeError, match="after close"):
        pool.parse(rss(1), None, SOURCE, FETCHED, TextLimits())


def test_a_worker_that_does_not_answer_is_killed_and_its_parse_fails() -> None:
    # Long enough for a worker to start (it imports this module to find hang_or_fail).
    pool = ParsePool(1, parse=hang_or_fail, timeout_seconds=15.0)
    try:
        assert pool.parse(rss(1), None, SOURCE, FETCHED, TextLimits()).items  # started
        started = time.monotonic()
        with pytest.raises(ParseError, match="no answer within 15 s; worker killed"):
            pool.parse(b"hang", None, SOURCE, FETCHED, TextLimits())
        assert time.monotonic() - started < 45
        assert pool.parse(rss(2), None, SOURCE, FETCHED, TextLimits()).items
        assert pool.restarts == 1
    finally:
        pool.close()


def test_a_bug_in_a_worker_reaches_the_poll_with_the_workers_traceback() -> None:
    pool = ParsePool(1, parse=hang_or_fail)
    try:
        with pytest.raises(KeyError, match="a bug in the parser") as info:
            pool.parse(b"bug", None, SOURCE, FETCHED, TextLimits())
        assert isinstance(info.value.__cause__, RemoteTraceback)
        assert "hang_or_fail" in str(info.value.__cause__)
        assert pool.restarts == 0  # the worker lives on
    finally:
        pool.close()


def test_with_overflow_a_parse_runs_here_while_every_worker_is_busy() -> None:
    pool = ParsePool(1, parse=hang_or_fail, overflow=InlineParser(1))
    try:
        pool.parse(rss(1), None, SOURCE, FETCHED, TextLimits())  # the worker started
        busy = threading.Thread(target=lambda: pytest.raises(
            ParseError, pool.parse, b"slow", None, SOURCE, FETCHED, TextLimits()))
        busy.start()
        eventually(lambda: pool.busy_workers() == 1, what="the worker busy with b'slow'")
        parsed = pool.parse(rss(2), None, SOURCE, FETCHED, TextLimits())
        # Parsed while the one worker is still busy with b"slow" (6 s): it did not wait for
        # the worker. (A wall-clock bound here failed on a loaded machine.)
        assert pool.busy_workers() == 1 and busy.is_alive()
        assert parsed == InlineParser().parse(rss(2), None, SOURCE, FETCHED, TextLimits())
        busy.join(30)
    finally:
        pool.close()

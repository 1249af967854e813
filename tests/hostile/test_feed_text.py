"""Hostile and accidental documents through the real poller: encoding accidents, entity bombs,
external entities, invisible characters. What is published is the valid text, once."""

from __future__ import annotations

import ipaddress
import random
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.bus.embedded import EmbeddedItemLog
from monitor.config.feeds import FeedConfig
from monitor.feeds.fetch import Fetcher, FetchLimits
from monitor.feeds.parse import TextLimits
from monitor.feeds.poller import FeedPoller, PollResult
from monitor.feeds.schedule import SchedulePolicy
from monitor.feeds.state import SQLitePollState
from monitor.metrics import Metrics, PollOutcome
from monitor.model import Item
from monitor.store import Database
from tests.support.hostile_server import HostileServer, rss
from tests.support.waiting import eventually


class Rig:
    def __init__(self, tmp_path: Path, server: HostileServer) -> None:
        self.server = server
        self.database = Database(tmp_path / "state.sqlite3")
        self.log = EmbeddedItemLog(self.database)
        self.published: list[Item] = []
        limits = FetchLimits(user_agent="monitor-hostile-tests/1", timeout_seconds=5,
                             allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),))
        self.fetcher = Fetcher(limits)
        self.poller = FeedPoller(self.fetcher, SQLitePollState(self.database), self,
                                 Metrics(CollectorRegistry()), policy=SchedulePolicy(),
                                 text_limits=TextLimits(), bus_name="embedded",
                                 rng=random.Random(3))

    def publish(self, items: list[Item], payloads: Sequence[bytes] = ()) -> object:
        self.published.extend(items)  # ItemPublisher: record, then the real log
        return self.log.publish(items, payloads)

    def is_ready(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def poll(self, body: bytes) -> PollOutcome:
        url = self.server.set("doc", body)
        feed = FeedConfig.model_validate({"id": "wire", "source": "Wire", "url": url})
        return self.poller.poll(feed).outcome


@pytest.fixture
def rig(tmp_path: Path, hostile: HostileServer) -> Iterator[Rig]:
    rig = Rig(tmp_path, hostile)
    yield rig
    rig.database.close()


def test_one_invalid_byte_keeps_the_valid_text_and_makes_no_new_version(rig: Rig) -> None:
    # Seen on a real wire: one stray byte made feedparser read the whole UTF-8 document as
    # MacRoman and re-publish every item as a garbled new version.
    clean = rss("Лукашенко провёл переговоры", "Путин заявил о ценах на нефть")
    assert rig.poll(clean) is PollOutcome.NEW_ITEMS
    damaged = clean.replace("нефть".encode(), b"\xff" + "ефть".encode())
    outcome = rig.poll(damaged + b" ")  # a different body, so it is parsed again
    assert outcome is PollOutcome.NO_NEW_ITEMS
    assert [item.title for item in rig.published] == [
        "Лукашенко провёл переговоры", "Путин заявил о ценах на нефть"]

    # A new item in a damaged document is published, with its valid text kept.
    with_new = rss("Лукашенко провёл переговоры", "Путин заявил о ценах на нефть",
                   "Новая история")
    with_new = with_new.replace("нефть".encode(), b"\xff" + "ефть".encode()).replace(
        "Новая".encode(), "Нов".encode() + b"\xfe" + "ая".encode())
    assert rig.poll(with_new) is PollOutcome.NEW_ITEMS
    assert [item.title for item in rig.published[2:]] == ["Нов\ufffdая история"]


def test_an_entity_bomb_is_not_expanded(rig: Rig) -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
            + b"".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode()
                       for i in range(8))
            + b']><rss version="2.0"><channel><item><title>&i;</title>'
              b"<link>https://example.org/bomb</link></item></channel></rss>")
    started = time.process_time()  # CPU seconds: an expansion is work, whatever the load
    rig.poll(bomb)
    assert time.process_time() - started < 5
    assert all(len(item.title) <= 500 for item in rig.published)


def test_an_external_entity_is_never_read(rig: Rig, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET", encoding="utf-8")
    xxe = (f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
           '<rss version="2.0"><channel><item><title>leak &x;</title>'
           "<link>https://example.org/xxe</link></item></channel></rss>").encode()
    rig.poll(xxe)
    assert not any("TOPSECRET" in item.title + item.summary for item in rig.published)


def test_nul_and_bidi_characters_do_not_survive_into_items(rig: Rig) -> None:
    rig.poll(rss("Kyiv\u202e denies\u200b it", "nul&#0;here"))
    titles = [item.title for item in rig.published]
    assert not any(ch in title for title in titles for ch in "\u202e\u200b\x00")


def test_a_poll_ended_by_shutdown_is_not_recorded_as_the_feeds_failure(
        rig: Rig, hostile: HostileServer) -> None:
    feed = FeedConfig.model_validate({"id": "hanging", "source": "W",
                                      "url": hostile.url("/slow-body")})
    results: list[PollResult] = []
    thread = threading.Thread(target=lambda: results.append(rig.poller.poll(feed)), daemon=True)
    thread.start()
    eventually(lambda: hostile.requests_to("/slow-body"), 5, "the poll started")
    rig.fetcher.stop(grace_seconds=0.2)
    thread.join(5)
    assert results and "stopping" in (results[0].error or "")
    state = SQLitePollState(rig.database).load("hanging")
    assert state.consecutive_failures == 0 and state.last_error is None

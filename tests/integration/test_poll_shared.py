"""Several pollers share the feed list through a Kafka consumer group (``poll.shared``).

Three ``monitor poll`` processes against the real broker and a local feed server: in steady
state each feed is polled by exactly one of them; one is killed (SIGKILL, no goodbye) and its
feeds are taken over within the group's session timeout, continuing from the state it left
in the compacted state topic: no item lost, none published twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.support.feed_server import FeedServer
from tests.support.kafka_broker import LocalKafka, free_port
from tests.support.kafka_reader import read_items
from tests.test_cli import MONITOR

pytestmark = pytest.mark.kafka

FEEDS = [f"wire{n}" for n in range(9)]
SESSION_TIMEOUT_SECONDS = 6


def rss(feed_id: str, count: int) -> bytes:
    items = "".join(f"<item><title>{feed_id} story {n}</title>"
                    f"<link>https://{feed_id}.example/{n}</link></item>" for n in range(count))
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>{feed_id}</title>' \
           f"{items}</channel></rss>".encode()


class Poller:
    def __init__(self, env: dict[str, str], feeds: Path, tmp: Path, name: str) -> None:
        self.port = free_port()
        self.log = tmp / f"{name}.log"
        env = {**env, "MONITOR_HTTP__ADDRESS": f"127.0.0.1:{self.port}",
               "MONITOR_STATE_PATH": str(tmp / f"{name}.sqlite3")}
        with self.log.open("w") as log:
            self.process = subprocess.Popen([*MONITOR, "poll", "--feeds", str(feeds)],
                                            cwd=REPO, env=env, stdout=log, stderr=log)

    def polls(self) -> Counter[str]:
        """Polls so far per feed (all outcomes); empty while the process does not answer."""
        counts: Counter[str] = Counter()
        try:
            text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return counts
        for line in text.splitlines():
            if line.startswith("monitor_feed_polls_total{"):
                feed = line.split('feed="')[1].split('"')[0]
                counts[feed] += int(float(line.rsplit(" ", 1)[1]))
        return counts

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def pollers() -> Iterator[list[Poller]]:
    started: list[Poller] = []
    yield started
    for poller in started:
        poller.stop()


def pollers_of_each_feed(pollers: list[Poller], seconds: float = 4.0) -> dict[str, set[int]]:
    """Which pollers polled each feed during ``seconds`` (indexes into ``pollers``)."""
    before = [p.polls() for p in pollers]
    time.sleep(seconds)
    after = [p.polls() for p in pollers]
    return {feed: {n for n in range(len(pollers)) if after[n][feed] > before[n][feed]}
            for feed in FEEDS}


def wait_for_steady_state(pollers: list[Poller], timeout: float = 60) -> dict[str, set[int]]:
    deadline = time.monotonic() + timeout
    while True:
        owners = pollers_of_each_feed(pollers)
        if all(len(who) == 1 for who in owners.values()) or time.monotonic() > deadline:
            return owners


def test_three_pollers_share_the_feeds_and_take_over_from_a_killed_one(
        kafka_broker: LocalKafka, feed_server: FeedServer, tmp_path: Path,
        pollers: list[Poller]) -> None:
    for feed_id in FEEDS:
        feed_server.set(f"/{feed_id}.xml", rss(feed_id, 2))
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds:\n" + "".join(
        f"  - id: {feed_id}\n    source: {feed_id}\n    url: {feed_server.url(f'/{feed_id}.xml')}"
        "\n    interval: 1\n" for feed_id in FEEDS), encoding="utf-8")
    run = uuid.uuid4().hex[:8]
    items_topic = f"items.{run}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env.update({
        "MONITOR_KAFKA__BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
        "MONITOR_KAFKA__ITEMS_TOPIC": items_topic,
        "MONITOR_KAFKA__MATCHES_TOPIC": f"matches.{run}",
        "MONITOR_KAFKA__ALERTS_TOPIC": f"alerts.{run}", "MONITOR_KAFKA__DLQ_TOPIC": f"dlq.{run}",
        "MONITOR_KAFKA__POLL_GROUP": f"poll-{run}",
        "MONITOR_KAFKA__POLL_CONTROL_TOPIC": f"control.{run}",
        "MONITOR_KAFKA__FEED_STATE_TOPIC": f"feed-state.{run}",
        "MONITOR_KAFKA__SESSION_TIMEOUT_SECONDS": str(SESSION_TIMEOUT_SECONDS),
        "MONITOR_POLL__SHARED": "true", "MONITOR_POLL__JITTER_RATIO": "0",
    })
    pollers.extend(Poller(env, feeds, tmp_path, f"poller{n}") for n in range(3))

    first = read_items(kafka_broker.bootstrap, items_topic, expect=18, timeout_seconds=90)
    assert Counter(item.url for _, item in first).most_common(1)[0][1] == 1
    owners = wait_for_steady_state(pollers)
    assert all(len(who) == 1 for who in owners.values()), owners
    assert len({n for who in owners.values() for n in who}) >= 2  # the feeds are spread

    victim = next(iter(owners[FEEDS[0]]))
    taken_over = {feed for feed, who in owners.items() if who == {victim}}
    pollers[victim].process.kill()
    pollers[victim].process.wait()
    for feed_id in FEEDS:  # one new story everywhere, the victim's feeds included
        feed_server.set(f"/{feed_id}.xml", rss(feed_id, 3))

    records = read_items(kafka_broker.bootstrap, items_topic, expect=27,
                         timeout_seconds=SESSION_TIMEOUT_SECONDS + 60)
    counts = Counter(item.url for _, item in records)
    assert sorted(counts) == sorted(f"https://{f}.example/{n}" for f in FEEDS for n in range(3))
    assert set(counts.values()) == {1}, [url for url, n in counts.items() if n > 1]

    survivors = [p for n, p in enumerate(pollers) if n != victim]
    owners = wait_for_steady_state(survivors)
    assert all(len(who) == 1 for who in owners.values()), owners
    assert taken_over  # and they are polled again, by a survivor:
    assert all(owners[feed] for feed in taken_over)

"""Several pollers share the feed list through a Kafka consumer group (``poll.shared``).

Three ``monitor poll`` processes against the real broker and a local feed server: in steady
state each feed is polled by exactly one of them; one is killed (SIGKILL, no goodbye) and its
feeds are taken over within the group's session timeout, continuing from the state it left
in the compacted state topic: no item lost, none published twice. With two matchers and two
alerters in their groups downstream, every match is alerted exactly once.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from monitor.alerting.archive import KafkaArchive
from monitor.config.settings import KafkaSettings
from tests.conftest import REPO
from tests.integration.test_alert_kafka import alerted_ids, hook_routes
from tests.support.at_the_end import AtTheEnd, at_the_end  # noqa: F401 (a fixture)
from tests.support.feed_server import FeedServer
from tests.support.kafka_broker import LocalKafka, free_port
from tests.support.kafka_reader import consumed_to_the_end, read_items
from tests.support.receivers import WebhookReceiver
from tests.support.waiting import eventually
from tests.test_cli import MONITOR, monitor_env

pytestmark = pytest.mark.kafka

FEEDS = [f"wire{n}" for n in range(9)]
SESSION_TIMEOUT_SECONDS = 6


def rss(feed_id: str, count: int) -> bytes:
    items = "".join(f"<item><title>{feed_id} story {n}</title>"
                    f"<link>https://{feed_id}.example/{n}</link></item>" for n in range(count))
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>{feed_id}</title>' \
           f"{items}</channel></rss>".encode()


def shared_env(bootstrap: str) -> dict[str, str]:
    """The environment of every process of one test: its own topics and groups."""
    run = uuid.uuid4().hex[:8]
    env = monitor_env()  # the suite's own settings (loopback feeds allowed), no others
    env.update({
        "MONITOR_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "MONITOR_KAFKA__ITEMS_TOPIC": f"items.{run}",
        "MONITOR_KAFKA__MATCHES_TOPIC": f"matches.{run}",
        "MONITOR_KAFKA__ALERTS_TOPIC": f"alerts.{run}", "MONITOR_KAFKA__DLQ_TOPIC": f"dlq.{run}",
        "MONITOR_KAFKA__POLL_GROUP": f"poll-{run}", "MONITOR_KAFKA__MATCH_GROUP": f"match-{run}",
        "MONITOR_KAFKA__ALERT_GROUP": f"alert-{run}",
        "MONITOR_KAFKA__POLL_CONTROL_TOPIC": f"control.{run}",
        "MONITOR_KAFKA__FEED_STATE_TOPIC": f"feed-state.{run}",
        "MONITOR_KAFKA__SESSION_TIMEOUT_SECONDS": str(SESSION_TIMEOUT_SECONDS),
        "MONITOR_KAFKA__TOPIC_PARTITIONS": "4",
        "MONITOR_POLL__SHARED": "true", "MONITOR_POLL__JITTER_RATIO": "0",
    })
    return env


def write_feeds(path: Path, server: FeedServer) -> Path:
    path.write_text("feeds:\n" + "".join(
        f"  - id: {feed_id}\n    source: {feed_id}\n    url: {server.url(f'/{feed_id}.xml')}"
        "\n    interval: 1\n" for feed_id in FEEDS), encoding="utf-8")
    return path


class Poller:
    """A ``monitor`` process (``poll`` unless told otherwise) with its own port and state."""

    def __init__(self, env: dict[str, str], feeds: Path, tmp: Path, name: str,
                 command: tuple[str, ...] = (), state: str | None = None) -> None:
        self.port = free_port()
        self.log = tmp / f"{name}.log"
        env = {**env, "MONITOR_HTTP__ADDRESS": f"127.0.0.1:{self.port}",
               "MONITOR_STATE_PATH": str(tmp / f"{state or name}.sqlite3"),
               "MONITOR_KAFKA__TRANSACTIONAL_ID": f"match-{name}"}
        args = command or ("poll", "--feeds", str(feeds))
        with self.log.open("w") as log:
            self.process = subprocess.Popen([*MONITOR, *args], cwd=REPO, env=env, stdout=log,
                                            stderr=log)

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
def pollers(at_the_end: AtTheEnd) -> list[Poller]:  # noqa: F811
    return at_the_end([])


def pollers_of_each_feed(pollers: list[Poller], seconds: float = 4.0) -> dict[str, set[int]]:
    """Which pollers polled each feed during ``seconds`` (indexes into ``pollers``)."""
    before = [p.polls() for p in pollers]
    time.sleep(seconds)  # a window to watch: who polls a feed is what is being measured
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
    feeds = write_feeds(tmp_path / "feeds.yaml", feed_server)
    env = shared_env(kafka_broker.bootstrap)
    items_topic = env["MONITOR_KAFKA__ITEMS_TOPIC"]
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


def denials(feed_id: str, count: int) -> bytes:
    items = "".join(
        f"<item><title>Kyiv denies Lukashenko claim that Ukrainian generals asked him to broker "
        f"peace, {feed_id} report {n}</title><link>https://{feed_id}.example/{n}</link></item>"
        for n in range(count))
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>{feed_id}</title>' \
           f"<language>en</language>{items}</channel></rss>".encode()


def test_three_pollers_two_matchers_two_alerters_alert_every_match_once(
        kafka_broker: LocalKafka, feed_server: FeedServer, tmp_path: Path,
        pollers: list[Poller], hook: WebhookReceiver) -> None:
    for feed_id in FEEDS:  # empty at first: what a feed lists at its first poll is backlog
        feed_server.set(f"/{feed_id}.xml", denials(feed_id, 0))
    feeds = write_feeds(tmp_path / "feeds.yaml", feed_server)
    routes = hook_routes(tmp_path, hook, group_wait="0.5s")
    env = shared_env(kafka_broker.bootstrap)
    claims = str(REPO / "claims.yaml")
    pollers.extend(Poller(env, feeds, tmp_path, f"poller{n}") for n in range(3))
    pollers.extend(Poller(env, feeds, tmp_path, f"matcher{n}", ("match", "--claims", claims))
                   for n in range(2))
    pollers.extend(Poller(env, feeds, tmp_path, f"alerter{n}",
                          ("alert", "--claims", claims, "--alerts", str(routes)))
                   for n in range(2))

    settings = KafkaSettings(
        bootstrap_servers=(kafka_broker.bootstrap,), items_topic=env["MONITOR_KAFKA__ITEMS_TOPIC"],
        matches_topic=env["MONITOR_KAFKA__MATCHES_TOPIC"],
        alerts_topic=env["MONITOR_KAFKA__ALERTS_TOPIC"],
        match_group=env["MONITOR_KAFKA__MATCH_GROUP"],
        alert_group=env["MONITOR_KAFKA__ALERT_GROUP"])
    eventually(lambda: all(pollers_of_each_feed(pollers[:3], 2.0).values()), 90,
               "every feed polled (its first poll is past)")
    for feed_id in FEEDS:
        feed_server.set(f"/{feed_id}.xml", denials(feed_id, 1))

    def sent_match_ids() -> Counter[str]:
        """Match ids of every notification recorded as sent on monitor.alerts (a message
        lists a group's first matches and counts the rest, so the record is the ledger)."""
        return Counter(match_id for record in KafkaArchive(settings).records()
                       if record.event == "sent" for match_id in record.match_ids)

    eventually(lambda: len(sent_match_ids()) >= len(FEEDS), 120, "the first denials sent")
    owners = wait_for_steady_state(pollers[:3])
    victim = next(iter(owners[FEEDS[0]]))
    pollers[victim].process.kill()
    pollers[victim].process.wait()
    for feed_id in FEEDS:  # a second denial everywhere
        feed_server.set(f"/{feed_id}.xml", denials(feed_id, 2))

    eventually(lambda: len(sent_match_ids()) >= 2 * len(FEEDS), SESSION_TIMEOUT_SECONDS + 90,
               "the second denials sent")

    eventually(lambda: all_handled(settings), 60,
               "every item matched and every match alerted, all committed")
    counts = sent_match_ids()
    assert len(counts) == 2 * len(FEEDS)
    assert set(counts.values()) == {1}, [m for m, n in counts.items() if n > 1]
    sent = [r for r in KafkaArchive(settings).records() if r.event == "sent"]
    assert len(hook.accepted) == len(sent)  # one webhook message per notification, no repeat
    assert set(alerted_ids(hook).values()) == {1}


def all_handled(settings: KafkaSettings) -> bool:
    """Every item matched and every match's notification closed (sent or dead), all
    committed by the groups: nothing is left that could still be sent."""
    archived = KafkaArchive(settings).records()
    closed = {r.id for r in archived if r.event != "pending"}
    return ({r.id for r in archived if r.event == "pending"} <= closed
            and consumed_to_the_end(settings, settings.match_group, settings.items_topic)
            and consumed_to_the_end(settings, settings.alert_group, settings.matches_topic))


def test_sigterm_under_load_exits_0_and_the_restart_loses_and_repeats_nothing(
        kafka_broker: LocalKafka, feed_server: FeedServer, tmp_path: Path,
        pollers: list[Poller]) -> None:
    """A poller (state in its local file, the default) stopped while it publishes 30 feeds
    of 40 items: it finishes the polls in hand and exits 0; the next start publishes exactly
    what was missing."""
    feed_ids = [f"busy{n}" for n in range(30)]
    for feed_id in feed_ids:
        feed_server.set(f"/{feed_id}.xml", rss(feed_id, 40))
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds:\n" + "".join(
        f"  - id: {feed_id}\n    source: {feed_id}\n    url: {feed_server.url(f'/{feed_id}.xml')}"
        "\n    interval: 1\n" for feed_id in feed_ids), encoding="utf-8")
    env = {**shared_env(kafka_broker.bootstrap), "MONITOR_POLL__SHARED": "false"}
    first = Poller(env, feeds, tmp_path, "busy")
    pollers.append(first)

    def published() -> float:
        try:
            text = httpx.get(f"http://127.0.0.1:{first.port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return 0.0
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("monitor_items_published_total{"))

    eventually(lambda: published() >= 40, 60, "publishing under way")
    started, before = time.monotonic(), published()
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=30) == 0
    assert time.monotonic() - started < 30
    assert "poll: stopped" in first.log.read_text()
    assert before < 30 * 40  # stopped mid-way, not after the work

    pollers.append(Poller(env, feeds, tmp_path, "again", state="busy"))  # same state file
    records = read_items(kafka_broker.bootstrap, env["MONITOR_KAFKA__ITEMS_TOPIC"],
                         expect=30 * 40, timeout_seconds=90)
    counts = Counter(item.url for _, item in records)
    assert len(counts) == 30 * 40
    assert set(counts.values()) == {1}

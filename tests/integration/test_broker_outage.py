"""A broker outage as operators see it: three processes, a handful of lines, /readyz honest.

``monitor poll`` (shared pollers: ownership group and state topic), ``monitor match`` and
``monitor alert`` run against the real broker; the broker is stopped until every process's
/readyz has turned 503 (past the readiness grace), then started again. Issue 8 counted ~230
kafka-python ERROR lines for such an outage and /readyz 200 throughout; here each process
says "unreachable" once and "reachable again" once, writes at most a few WARNING+ lines (at
debug too: kafka-python's reconnect errors are DEBUG lines there), turns ready again, and every
item served before and during the outage reaches ``monitor.items``, ``monitor.matches`` and
the webhook.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.config.settings import KafkaSettings
from monitor.model import decode_match
from tests.conftest import REPO
from tests.integration.test_alert_kafka import hook_routes
from tests.integration.test_match_kafka import read_topic
from tests.integration.test_poll_shared import Poller
from tests.support.at_the_end import AtTheEnd, at_the_end  # noqa: F401 (a fixture)
from tests.support.feed_server import FeedServer
from tests.support.kafka_broker import LocalKafka
from tests.support.kafka_reader import read_items
from tests.support.receivers import WebhookReceiver
from tests.support.waiting import eventually

pytestmark = pytest.mark.kafka

GRACE_SECONDS = 4
MAX_WARNINGS_PER_PROCESS = 3  # the "unreachable" line and at most two more
UNREACHABLE, REACHABLE = "unreachable since", "reachable again after"
STORY = re.compile(r"https://wire\.example/\d+")


def rss(numbers: range) -> bytes:
    items = "".join(
        f"<item><title>Lukashenko says Ukrainian generals asked him to stop the war, "
        f"report {n}</title><link>https://wire.example/{n}</link></item>" for n in numbers)
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>W</title>{items}' \
           "</channel></rss>".encode()


class Process(Poller):
    """A ``monitor`` command (as test_poll_shared starts them) read through its endpoints and
    its JSON log."""

    def readyz(self) -> int | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code
        except httpx.HTTPError:
            return None

    def broker_ready(self) -> float | None:
        """monitor_ready{check="broker"} as scraped now."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return None
        for line in text.splitlines():
            if line.startswith('monitor_ready{check="broker"}'):
                return float(line.rsplit(" ", 1)[1])
        return None

    def records(self) -> list[dict[str, Any]]:
        lines = self.log.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.fixture
def processes(at_the_end: AtTheEnd) -> dict[str, Process]:  # noqa: F811
    return at_the_end({})


@pytest.fixture
def broker(kafka_broker: LocalKafka) -> Iterator[LocalKafka]:
    """The session's broker, which this test stops; running again afterwards, whatever
    happened (start keeps the data)."""
    yield kafka_broker
    if not kafka_broker.is_running():
        kafka_broker.start()


def env_for(bootstrap: str) -> dict[str, str]:
    run = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env.update({
        "MONITOR_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        **{f"MONITOR_KAFKA__{name}_TOPIC": f"{name.lower()}.{run}"
           for name in ("ITEMS", "MATCHES", "ALERTS", "DLQ", "POLL_CONTROL", "FEED_STATE")},
        **{f"MONITOR_KAFKA__{name}_GROUP": f"{name.lower()}-{run}"
           for name in ("POLL", "MATCH", "ALERT")},
        "MONITOR_KAFKA__SESSION_TIMEOUT_SECONDS": "6", "MONITOR_KAFKA__TOPIC_PARTITIONS": "3",
        "MONITOR_KAFKA__MAX_BLOCK_SECONDS": "5", "MONITOR_KAFKA__DELIVERY_TIMEOUT_SECONDS": "10",
        "MONITOR_POLL__SHARED": "true", "MONITOR_POLL__JITTER_RATIO": "0",
        "MONITOR_POLL__ALLOWED_NETWORKS": "127.0.0.0/8", "MONITOR_MATCH__SEMANTIC": "false",
        "MONITOR_HTTP__READINESS_GRACE_SECONDS": str(GRACE_SECONDS),
        "MONITOR_LOG_FORMAT": "json",
    })
    return env


def test_a_broker_outage_is_two_lines_a_process_readyz_503_and_nothing_lost(
        broker: LocalKafka, feed_server: FeedServer, hook: WebhookReceiver, tmp_path: Path,
        processes: dict[str, Process]) -> None:
    feed_server.set("/wire.xml", rss(range(0)))  # a feed's first poll is backlog: empty
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"feeds:\n  - id: wire\n    source: Wire\n    url: "
                     f"{feed_server.url('/wire.xml')}\n    interval: 1\n", encoding="utf-8")
    claims = str(REPO / "claims.yaml")
    # At debug, the loudest an operator can ask for: the libraries' reconnect errors and
    # APScheduler's skipped runs are in the log, as DEBUG lines; the outage is still two.
    env = {**env_for(broker.bootstrap), "MONITOR_LOG_LEVEL": "debug"}
    for name, args in {"poll": ("poll", "--feeds", str(feeds)),
                       "match": ("match", "--claims", claims),
                       "alert": ("alert", "--claims", claims,
                                 "--alerts", str(hook_routes(tmp_path, hook)))}.items():
        processes[name] = Process(env, feeds, tmp_path, name, args)
    eventually(lambda: all(p.readyz() == 200 for p in processes.values())
               and len(feed_server.hits("/wire.xml")) >= 2, 60, "ready and polling")
    feed_server.set("/wire.xml", rss(range(0, 3)))
    eventually(lambda: alerted_urls(hook), 60, "alerting before the outage")
    seen = {name: len(p.records()) for name, p in processes.items()}
    for name, topic in (("match", "ITEMS"), ("alert", "MATCHES")):  # one line, not one each
        assigned = f"partitions assigned: {env[f'MONITOR_KAFKA__{topic}_TOPIC']} [0, 1, 2]"
        assert any(assigned in r["message"] for r in processes[name].records()), name

    broker.stop()
    feed_server.set("/wire.xml", rss(range(0, 6)))  # three stories while the broker is away
    eventually(lambda: all(p.readyz() == 503 for p in processes.values()),
               GRACE_SECONDS + 30, "/readyz 503 in every process")
    # The gauge as a scrape reads it; a scrape can fail once under a loaded suite (None).
    eventually(lambda: all(p.broker_ready() == 0.0 for p in processes.values()), 10,
               'monitor_ready{check="broker"} 0 in every process')
    broker.start()
    feed_server.set("/wire.xml", rss(range(0, 9)))  # and three after

    eventually(lambda: all(p.readyz() == 200 for p in processes.values()), 60,
               "/readyz 200 again")
    eventually(lambda: {f"https://wire.example/{n}" for n in range(9)} <= alerted_urls(hook),
               60, "every story alerted")
    settings = KafkaSettings(bootstrap_servers=(broker.bootstrap,))
    items = read_items(broker.bootstrap, env["MONITOR_KAFKA__ITEMS_TOPIC"], expect=9)
    assert {item.url for _, item in items} == {f"https://wire.example/{n}" for n in range(9)}
    matches = [decode_match(r.value) for r in read_topic(
        settings, env["MONITOR_KAFKA__MATCHES_TOPIC"], expect=9, isolation="read_committed")]
    assert {m.item.url for m in matches} == {f"https://wire.example/{n}" for n in range(9)}

    for name, process in processes.items():
        during = process.records()[seen[name]:]
        loud = [r for r in during if r["level"] in ("WARNING", "ERROR", "CRITICAL")]
        said = [r["message"] for r in during if r["logger"] == "monitor.bus.connectivity"
                and r["level"] != "DEBUG"]
        assert len(loud) <= MAX_WARNINGS_PER_PROCESS, (name, [r["message"] for r in loud])
        assert [UNREACHABLE in m for m in said] == [True, False], (name, said)
        assert [REACHABLE in m for m in said] == [False, True], (name, said)
        assert f"kafka: broker {broker.bootstrap} unreachable since" in said[0]
        assert any(r["logger"].startswith("kafka.") for r in during), name  # demoted, not lost


def alerted_urls(hook: WebhookReceiver) -> set[str]:
    """The story URLs in the bodies the webhook accepted."""
    return {found for delivery in hook.accepted
            for found in STORY.findall(json.dumps(delivery.body))}

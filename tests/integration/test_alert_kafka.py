"""The alert stage through a real Apache Kafka broker, a real webhook and a real SMTP server.

Matches go in the way the matcher writes them (key = claim_id, on ``monitor.matches``); what
the alerter did is read back from ``monitor.alerts`` and ``monitor.dlq``. Nothing is mocked:
the crash test kills an alerter process between a channel accepting and the record.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from monitor.alerting.alert_log import decode_alert_record
from monitor.alerting.stage import AlertStage
from monitor.config.feeds import FeedConfig
from monitor.config.settings import KafkaSettings, Settings
from monitor.metrics import Metrics
from monitor.model import Match, decode_item, decode_match, encode_match
from monitor.retry import RetryPolicy
from monitor.runner import run_stage
from monitor.service import Service
from tests.alerting import make_match
from tests.conftest import REPO
from tests.integration.test_match_kafka import read_topic
from tests.support.crashing_alerter import CRASH_EXIT_CODE, build_stage
from tests.support.feed_server import FeedServer
from tests.support.kafka_broker import LocalKafka, isolated_kafka_settings
from tests.support.kafka_reader import consumed_to_the_end
from tests.support.receivers import SmtpReceiver, WebhookReceiver
from tests.support.waiting import eventually
from tests.test_alerts_e2e import CLAIM, DENIAL, LATER_DENIAL, with_items
from tests.test_alerts_e2e import write_routes as write_hook_and_email_routes
from tests.test_cli import RSS, monitor

pytestmark = pytest.mark.kafka

SESSION_TIMEOUT_SECONDS = 6.0  # the broker's minimum: a killed member leaves the group soon
CLAIMS = REPO / "claims.yaml"
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_seconds=0.2, max_delay_seconds=0.5,
                         jitter=False)
MATCH_ID = re.compile(r'"match_id": "([^"]+)"')


@pytest.fixture
def kafka_settings(kafka_broker: LocalKafka) -> KafkaSettings:
    return isolated_kafka_settings(kafka_broker.bootstrap,
                                   session_timeout_seconds=SESSION_TIMEOUT_SECONDS)


def hook_routes(tmp_path: Path, hook: WebhookReceiver, group_wait: str = "0.3s") -> Path:
    (tmp_path / "templates").symlink_to(REPO / "alerts" / "templates")
    path = tmp_path / "routes.yaml"
    path.write_text(
        f"receivers:\n  - name: desk-hook\n    urls: ['{hook.url('/alerts')}']\n"
        f"route:\n  receiver: desk-hook\n  group_by: [claim]\n  group_wait: {group_wait}\n"
        "  group_interval: 1s\n  repeat_interval: 1h\n", encoding="utf-8")
    return path


def match(n: int, claim_id: str = CLAIM, relation: str = "denial") -> Match:
    made = make_match(claim_id=claim_id, relation=relation, source=f"Wire {n}")
    return replace(made, match_id=f"mx-{n}", item=replace(made.item, item_id=f"mx-{n}",
                                                          url=f"https://wire.example/{n}"))


def produce(settings: KafkaSettings, matches: list[Match]) -> None:
    producer = KafkaProducer(bootstrap_servers=list(settings.bootstrap_servers), acks="all",
                             enable_idempotence=True)
    try:
        for future in [producer.send(settings.matches_topic, key=m.claim_id.encode(),
                                     value=encode_match(m)) for m in matches]:
            future.get(timeout=30)
    finally:
        producer.close(timeout=5)


def alerted_ids(hook: WebhookReceiver) -> Counter[str]:
    """Match ids in the bodies the webhook accepted, counted."""
    return Counter(found for delivery in hook.accepted
                   for found in MATCH_ID.findall(json.dumps(delivery.body)))


def settled(settings: KafkaSettings, *stages: AlertStage) -> Callable[[], bool]:
    """Every match on the topic committed by the alert group and nothing in the stages' hands:
    nothing more can be sent, now or after a rebalance (what a test asserts that on)."""
    return lambda: (all(stage.idle() for stage in stages)
                    and consumed_to_the_end(settings, settings.alert_group,
                                            settings.matches_topic))


class Running:
    """Alert stages, each in its own thread under the runner (which closes it when it
    stops), stopped at the end of the test."""

    def __init__(self) -> None:
        self.stages: list[tuple[AlertStage, threading.Event, threading.Thread]] = []

    def start(self, stage: AlertStage) -> AlertStage:
        stopping = threading.Event()
        thread = threading.Thread(target=run_stage, args=(stage, stopping), daemon=True)
        thread.start()
        self.stages.append((stage, stopping, thread))
        return stage

    def stop_all(self) -> None:
        for stage, stopping, thread in self.stages:
            stopping.set()
            thread.join(timeout=15)
            assert not thread.is_alive(), f"{stage.name} did not stop"
        self.stages = []


@pytest.fixture
def running() -> Iterator[Running]:
    made = Running()
    yield made
    made.stop_all()


def test_poll_match_alert_through_kafka_one_webhook_post_and_one_email(
        tmp_path: Path, kafka_settings: KafkaSettings, feed_server: FeedServer,
        hook: WebhookReceiver, smtp: SmtpReceiver) -> None:
    """``monitor run`` in Kafka mode: poller, matcher and alerter in one process."""
    feed_server.set("/wire.xml", RSS, content_type="application/rss+xml", conditional=False)
    routes = write_hook_and_email_routes(tmp_path, hook.url("/alerts"), smtp.apprise_url())
    registry = CollectorRegistry()
    service = kafka_run(tmp_path, kafka_settings, feed_server, registry, routes)
    service.start()
    try:
        eventually(lambda: published(registry) == 2, 40, "the feed's backlog published")
        feed_server.set("/wire.xml", with_items(DENIAL), content_type="application/rss+xml",
                        conditional=False)
        (post,) = hook.wait_for(1, timeout_seconds=60)
        (mail,) = smtp.wait_for(1, timeout_seconds=30)
        assert service.alert_stage is not None
        eventually(service.alert_stage.is_ready, 40, "the alert stage ready")
        ready = httpx.get(f"http://127.0.0.1:{service.health.port}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
    finally:
        service.close()
    assert CLAIM in json.dumps(post.body) and "wire.example/denial" in json.dumps(post.body)
    assert "DENIAL" in mail.subject
    assert len(hook.requests) == 1 and len(smtp.messages) == 1
    sample = registry.get_sample_value
    assert sample("monitor_alerts_total", {"receiver": "desk-hook", "outcome": "sent"}) == 1
    assert sample("monitor_alerts_total", {"receiver": "desk-email", "outcome": "sent"}) == 1
    assert sample("monitor_alert_outbox_size") == 0
    sent = [decode_alert_record(r.value) for r in
            read_topic(kafka_settings, kafka_settings.alerts_topic, expect=4,
                       isolation="read_committed", settle_seconds=0.5)]
    assert Counter(r.event for r in sent) == {"pending": 2, "sent": 2}


def kafka_run(tmp_path: Path, kafka_settings: KafkaSettings, feed_server: FeedServer,
              registry: CollectorRegistry, routes: Path) -> Service:
    """``monitor run`` in Kafka mode on the feed ``/wire.xml``, polled every second."""
    settings = Settings.model_validate({
        "kafka": kafka_settings.model_dump(mode="json"), "http": {"address": "127.0.0.1:0"},
        "state_path": tmp_path / "state.sqlite3", "log_level": "WARNING"})
    feed = FeedConfig.model_validate({"id": "wire", "url": feed_server.url("/wire.xml"),
                                      "source": "Test Wire", "interval": 1})
    return Service(settings, [feed], registry, claims_path=CLAIMS, alerts_path=routes)


def published(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("monitor_items_published_total", {"feed": "wire"}) or 0


def test_a_new_feeds_backlog_crosses_kafka_marked_and_is_not_alerted(
        tmp_path: Path, kafka_settings: KafkaSettings, feed_server: FeedServer,
        hook: WebhookReceiver) -> None:
    """The ``backlog`` mark of a first poll's items survives items -> matches -> alerter."""
    feed_server.set("/wire.xml", with_items(DENIAL), content_type="application/rss+xml",
                    conditional=False)
    routes = tmp_path / "routes.yaml"  # every match to the webhook, whatever its relation
    routes.write_text(f"receivers:\n  - name: desk-hook\n    urls: ['{hook.url('/alerts')}']\n"
                      "route:\n  receiver: desk-hook\n  group_wait: 0s\n", encoding="utf-8")
    registry = CollectorRegistry()
    service = kafka_run(tmp_path, kafka_settings, feed_server, registry, routes)

    def alerts(outcome: str) -> float:
        return registry.get_sample_value("monitor_alerts_total",
                                         {"receiver": "desk-hook", "outcome": outcome}) or 0

    service.start()
    try:
        eventually(lambda: alerts("suppressed_backlog") == 1, 60, "the backlog suppressed")
        feed_server.set("/wire.xml", with_items(DENIAL, LATER_DENIAL),
                        content_type="application/rss+xml", conditional=False)
        (post,) = hook.wait_for(1, timeout_seconds=60)
        assert service.alert_stage is not None
        # A backlog alert would come with it: every match handled shows whether it did.
        eventually(settled(kafka_settings, service.alert_stage), 40, "every match handled")
    finally:
        service.close()
    body = json.dumps(post.body, ensure_ascii=False)
    assert "wire.example/kyiv-again" in body and "wire.example/denial" not in body
    assert len(hook.requests) == 1
    assert (alerts("suppressed_backlog"), alerts("sent")) == (1, 1)
    items = read_topic(kafka_settings, kafka_settings.items_topic, expect=4,
                       isolation="read_committed")
    assert sorted((decode_item(r.value).url or "", decode_item(r.value).backlog)
                  for r in items) == [
        ("https://wire.example/1", True), ("https://wire.example/2", True),
        ("https://wire.example/denial", True), ("https://wire.example/kyiv-again", False)]
    matches = [decode_match(r.value) for r in read_topic(
        kafka_settings, kafka_settings.matches_topic, expect=2, isolation="read_committed")]
    assert sorted((m.item.url or "", m.item.backlog) for m in matches) == [
        ("https://wire.example/denial", True), ("https://wire.example/kyiv-again", False)]


def test_two_alerters_in_one_group_alert_every_match_once(
        tmp_path: Path, kafka_settings: KafkaSettings, hook: WebhookReceiver,
        running: Running) -> None:
    routes = hook_routes(tmp_path, hook)
    claims = [f"claim-{n}" for n in range(6)]  # spread over the three partitions
    first = [match(n, claims[n % 6]) for n in range(12)]
    second = [match(n, claims[n % 6]) for n in range(12, 24)]
    produce(kafka_settings, first)
    running.start(build_stage(kafka_settings, CLAIMS, routes, Metrics(CollectorRegistry()),
                              session_timeout_seconds=SESSION_TIMEOUT_SECONDS))
    eventually(lambda: len(alerted_ids(hook)) >= 4, 40, "the first alerts")
    # The second member joins mid-stream: partitions move while groups wait and alerts go out.
    running.start(build_stage(kafka_settings, CLAIMS, routes, Metrics(CollectorRegistry()),
                              session_timeout_seconds=SESSION_TIMEOUT_SECONDS))
    produce(kafka_settings, second)
    expected = {m.match_id for m in first + second}
    eventually(lambda: set(alerted_ids(hook)) >= expected, 60, "every match alerted")
    # A repeat would come from a match not yet committed or an alert still in hand.
    eventually(settled(kafka_settings, *(stage for stage, _, _ in running.stages)), 40,
               "every match handled and committed")
    # Counted by idempotency key: a partition that moves while one of its notifications is
    # in flight leaves that notification in doubt, and the new owner sends it again with the
    # same key (the documented window, monitor/alerting/stage.py); a receiver that reads the
    # key drops the repeat. Any other repeat has a new key and fails here. Counting bodies
    # failed twice on 2026-11-30 (fresh-clone CI of 6d46938: mx-13 and mx-19, logged as
    # "pending when its last owner stopped; sending it again with the same id").
    by_key = {delivery.headers.get("idempotency-key"): delivery for delivery in hook.accepted}
    assert None not in by_key
    assert Counter(found for delivery in by_key.values()
                   for found in MATCH_ID.findall(json.dumps(delivery.body))) == Counter(expected)
    eventually(lambda: all(stage.is_ready() for stage, _, _ in running.stages), 40,
               "both stages ready")


def test_an_alerter_killed_after_sending_resends_once_with_the_same_keys(
        tmp_path: Path, kafka_settings: KafkaSettings, hook: WebhookReceiver,
        smtp: SmtpReceiver, running: Running) -> None:
    """Killed between the channels accepting and the ``sent`` records: the restart finds the
    two notifications ``pending`` on monitor.alerts and sends each once more, with the same
    id. The webhook's repeat carries the same Idempotency-Key header, so the receiver can
    drop it. The e-mail arrives exactly once more (at most once more is the promise), with
    the same X-Idempotency-Key header but a new Message-ID: Apprise always makes its own
    Message-ID, so mail clients show the repeat unless a filter drops it by that header."""
    routes = write_hook_and_email_routes(tmp_path, hook.url("/alerts"), smtp.apprise_url())
    produce(kafka_settings, [match(1)])
    config = {"kafka": kafka_settings.model_dump(mode="json"), "claims": str(CLAIMS),
              "routes": str(routes), "session_timeout_seconds": SESSION_TIMEOUT_SECONDS}
    crashed = subprocess.run(
        [sys.executable, "-m", "tests.support.crashing_alerter", json.dumps(config)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr[-3000:]
    assert len(hook.accepted) == 1 and len(smtp.messages) == 1

    metrics = Metrics(CollectorRegistry())
    stage = running.start(build_stage(kafka_settings, CLAIMS, routes, metrics,
                                      session_timeout_seconds=SESSION_TIMEOUT_SECONDS))
    first, again = hook.wait_for(2, timeout_seconds=40)
    mails = smtp.wait_for(2, timeout_seconds=20)
    eventually(settled(kafka_settings, stage), 40, "every match handled and committed")
    assert len(hook.requests) == 2 and len(smtp.messages) == 2
    assert first.headers["idempotency-key"] == again.headers["idempotency-key"]
    keys = {str(mail.message["X-Idempotency-Key"]) for mail in mails}
    assert len(keys) == 1 and "None" not in keys
    sample = metrics.registry.get_sample_value
    assert sample("monitor_alerts_total", {"receiver": "desk-hook", "outcome": "sent"}) == 1


def test_a_failing_receiver_delays_then_gives_up_to_the_dlq_and_replays(
        tmp_path: Path, kafka_settings: KafkaSettings, hook: WebhookReceiver,
        running: Running) -> None:
    routes = hook_routes(tmp_path, hook, group_wait="0s")
    metrics = Metrics(CollectorRegistry())
    stage = running.start(build_stage(kafka_settings, CLAIMS, routes, metrics, retry=FAST_RETRY,
                                      session_timeout_seconds=SESSION_TIMEOUT_SECONDS))
    hook.fail(500, times=2)  # two 500s, then it recovers
    produce(kafka_settings, [match(1)])
    (delivered,) = hook.wait_for(1, timeout_seconds=40)
    assert [d.status for d in hook.requests] == [500, 500, 200]
    assert len({d.headers["idempotency-key"] for d in hook.requests}) == 1

    hook.fail(500)  # until further notice: three attempts, then the DLQ
    produce(kafka_settings, [match(2, claim_id="other-claim")])
    (dead,) = read_topic(kafka_settings, kafka_settings.dlq_topic, expect=1,
                         isolation="read_committed", settle_seconds=0.5)
    headers = {name: value.decode() for name, value in dead.headers}
    assert headers["stage"] == "alert" and "HTTP 500" in headers["error"]
    assert headers["receiver"] == "desk-hook" and headers["time"].endswith("Z")
    eventually(stage.idle, 40, "the stage idle")
    sample = metrics.registry.get_sample_value
    assert sample("monitor_alerts_total", {"receiver": "desk-hook", "outcome": "sent"}) == 1
    assert sample("monitor_alerts_total",
                  {"receiver": "desk-hook", "outcome": "dead_lettered"}) == 1

    hook.recover()
    env = {"MONITOR_KAFKA__BOOTSTRAP_SERVERS": ",".join(kafka_settings.bootstrap_servers),
           "MONITOR_KAFKA__DLQ_TOPIC": kafka_settings.dlq_topic,
           "MONITOR_KAFKA__ALERTS_TOPIC": kafka_settings.alerts_topic}
    listed = monitor("dlq", "list", env=env)
    assert listed.returncode == 0 and f"{headers['id']}\tdead" in listed.stdout, listed.stderr
    replayed = monitor("dlq", "replay", headers["id"], "--alerts", str(routes), "--claims",
                       str(CLAIMS), env=env)
    assert replayed.returncode == 0, replayed.stderr
    assert "mx-2" in json.dumps(hook.accepted[-1].body)
    listed = monitor("dlq", "list", env=env)
    assert f"{headers['id']}\treplayed" in listed.stdout
    history = monitor("alerts", "history", env=env)
    assert history.returncode == 0 and history.stdout.count("\tsent\t") == 2, history.stdout

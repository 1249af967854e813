"""Silences in Kafka mode: on the compacted silences topic, read by every alerter.

A silence added with ``monitor silence add`` (a separate process) is honoured by two alerters
of one group, each owning some of the partitions the silenced matches arrive on; a restarted
alerter reads it again before it alerts; ``monitor silence expire`` lets alerts flow again,
and the expired silence stays in ``monitor silence list --all``. The alerters are built by
the service, as ``monitor alert`` builds them; the broker, the webhook and the CLI are real.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka.partitioner.default import murmur2
from prometheus_client import CollectorRegistry

from monitor.config.settings import KafkaSettings, Settings
from monitor.service import Service
from tests.conftest import REPO
from tests.integration.test_alert_kafka import (
    SESSION_TIMEOUT_SECONDS,
    alerted_ids,
    hook_routes,
    match,
    produce,
    settled,
)
from tests.support.kafka_broker import LocalKafka, isolated_kafka_settings
from tests.support.receivers import WebhookReceiver
from tests.support.waiting import eventually
from tests.test_cli import monitor

pytestmark = pytest.mark.kafka

CLAIMS = REPO / "claims.yaml"
SILENCE = "claim =~ hushed-.*"


@pytest.fixture
def kafka_settings(kafka_broker: LocalKafka) -> KafkaSettings:
    return isolated_kafka_settings(kafka_broker.bootstrap,
                                   session_timeout_seconds=SESSION_TIMEOUT_SECONDS)


def one_claim_per_partition(prefix: str, partitions: int) -> list[str]:
    """Claim ids whose matches land on partitions 0..n-1 (the producer's murmur2 of the key)."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < partitions:
        claim = f"{prefix}-{n}"
        found.setdefault((murmur2(claim.encode()) & 0x7FFFFFFF) % partitions, claim)
        n += 1
    return [found[p] for p in range(partitions)]


class Alerters:
    """``monitor alert`` processes as the service builds them, closed at the end."""

    def __init__(self, tmp_path: Path, kafka: KafkaSettings, routes: Path) -> None:
        self._tmp, self._kafka, self._routes = tmp_path, kafka, routes
        self.running: list[Service] = []

    def start(self) -> Service:
        n = len(self.running)
        settings = Settings.model_validate({
            "kafka": self._kafka.model_dump(mode="json"), "http": {"address": "127.0.0.1:0"},
            "state_path": self._tmp / f"alerter-{n}.sqlite3", "log_level": "WARNING"})
        service = Service(settings, [], CollectorRegistry(), claims_path=CLAIMS,
                          alerts_path=self._routes, poll=False, match=False)
        service.start()
        self.running.append(service)
        return service

    def close_all(self) -> None:
        while self.running:
            self.running.pop().close()


@pytest.fixture
def alerters(tmp_path: Path, kafka_settings: KafkaSettings,
             hook: WebhookReceiver) -> Iterator[Alerters]:
    made = Alerters(tmp_path, kafka_settings, hook_routes(tmp_path, hook))
    yield made
    made.close_all()


def silenced(service: Service) -> float:
    return service.registry.get_sample_value(
        "monitor_alerts_total", {"receiver": "desk-hook", "outcome": "suppressed_silence"}) or 0


def cli_env(kafka: KafkaSettings) -> dict[str, str]:
    return {"MONITOR_KAFKA__BOOTSTRAP_SERVERS": ",".join(kafka.bootstrap_servers),
            "MONITOR_KAFKA__SILENCES_TOPIC": kafka.silences_topic}


def test_a_silence_added_once_holds_on_every_alerter_and_across_a_restart(
        kafka_settings: KafkaSettings, hook: WebhookReceiver, alerters: Alerters) -> None:
    env = cli_env(kafka_settings)
    added = monitor("silence", "add", "--match", SILENCE, "--for", "2h", "--reason",
                    "a story we already covered", "--by", "night-editor", env=env)
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.split("\t")[0]
    hushed = one_claim_per_partition("hushed", kafka_settings.topic_partitions)
    loud = one_claim_per_partition("loud", kafka_settings.topic_partitions)

    first, second = alerters.start(), alerters.start()
    stages = [s.alert_stage for s in (first, second)]
    assert stages[0] is not None and stages[1] is not None
    # Both own partitions before anything arrives: each meets a silenced match.
    eventually(lambda: all(stage.is_ready() for stage in stages), 60, "both alerters assigned")
    batch = [match(n, claim) for n, claim in enumerate(hushed + loud)]
    produce(kafka_settings, batch)
    eventually(lambda: {m.match_id for m in batch[len(hushed):]} <= set(alerted_ids(hook)), 60,
               "the matches no silence covers alerted")
    eventually(settled(kafka_settings, *stages), 40, "every match handled and committed")
    assert set(alerted_ids(hook)) == {m.match_id for m in batch[len(hushed):]}
    assert silenced(first) >= 1 and silenced(second) >= 1
    assert silenced(first) + silenced(second) == len(hushed)

    alerters.close_all()  # a restart: the new alerter has only the topic to go by
    restarted = alerters.start()
    assert restarted.alert_stage is not None
    later = [match(100 + n, claim) for n, claim in enumerate(hushed + loud)]
    produce(kafka_settings, later)
    eventually(lambda: {m.match_id for m in later[len(hushed):]} <= set(alerted_ids(hook)), 60,
               "the restarted alerter's alerts")
    eventually(settled(kafka_settings, restarted.alert_stage), 40, "every match handled")
    assert not {m.match_id for m in later[:len(hushed)]} & set(alerted_ids(hook))
    assert silenced(restarted) == len(hushed)

    expired = monitor("silence", "expire", silence_id, env=env)
    assert expired.returncode == 0 and "\texpired\t" in expired.stdout, expired.stderr
    again = [match(200 + n, claim) for n, claim in enumerate(hushed)]
    produce(kafka_settings, again)
    eventually(lambda: {m.match_id for m in again} <= set(alerted_ids(hook)), 60,
               "alerts of the claims once silenced")
    assert silenced(restarted) == len(hushed)

    listed = monitor("silence", "list", env=env)
    history = monitor("silence", "list", "--all", env=env)
    assert listed.returncode == 0 and listed.stdout == ""
    assert history.stdout.startswith(f"{silence_id}\texpired\t"), history.stdout
    assert "night-editor" in history.stdout


def test_silence_commands_refuse_in_kafka_mode_as_on_the_state_file(
        kafka_settings: KafkaSettings) -> None:
    env = cli_env(kafka_settings)
    assert monitor("silence", "expire", "nosuchsilence", env=env).returncode == 2
    bad = monitor("silence", "add", "--match", "score >= 50", "--reason", "r", env=env)
    assert bad.returncode == 2 and "not 'score'" in bad.stderr
    assert monitor("silence", "list", "--all", env=env).stdout == ""

"""A stage that starts while the broker is away waits for it (monitor/bus/startup.py).

The chaos test saw an alerter die in start-up: its topics were checked, then the broker went
down before its stage log was opened, and the first connection timeout (KafkaTimeoutError)
stopped the process. Here the broker is stopped between the two; each stage's log opens once
the broker is back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from monitor.bus.transport import KafkaTransport
from monitor.config.settings import Settings
from tests.integration.test_broker_outage import broker  # noqa: F401 (a fixture)
from tests.support.kafka_broker import LocalKafka, isolated_kafka_settings
from tests.support.waiting import eventually

pytestmark = pytest.mark.kafka


@pytest.fixture
def transport(broker: LocalKafka) -> Iterator[KafkaTransport]:  # noqa: F811
    kafka = isolated_kafka_settings(broker.bootstrap, startup_timeout_seconds=240,
                                    max_block_seconds=5, delivery_timeout_seconds=10)
    made = KafkaTransport(Settings.model_validate({"kafka": kafka.model_dump(mode="json")}))
    made.prepare()  # the topics are checked while the broker is there
    yield made
    made.close()


def test_stage_logs_opened_while_the_broker_is_down_wait_for_it(
        broker: LocalKafka, transport: KafkaTransport,  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="monitor.bus.startup")
    broker.stop()
    opened: dict[str, Any] = {}
    failed: list[BaseException] = []

    def open_log(stage: Any) -> None:
        try:
            opened[stage] = transport.stage_log(stage)
        except BaseException as exc:  # noqa: BLE001 (reported by the assertion below)
            failed.append(exc)

    threads = [threading.Thread(target=open_log, args=(stage,)) for stage in ("alert", "match")]
    for thread in threads:
        thread.start()
    # Both past kafka-python's first connection timeout (30 s), which stopped them before:
    # each has said it waits for the broker, and both are still waiting.
    eventually(lambda: waiting_said(caplog) == {"alert", "match"} or failed, 90,
               "both stages waiting for the broker")
    assert not failed and not opened
    assert all(thread.is_alive() for thread in threads)
    broker.start()
    for thread in threads:
        thread.join(180)
    try:
        assert not failed, failed
        assert set(opened) == {"alert", "match"}
        assert opened["alert"].poll(1.0) is not None  # it reads from the broker
    finally:
        for log in opened.values():
            log.close()


def waiting_said(caplog: pytest.LogCaptureFixture) -> set[str]:
    """The stages whose "waiting for the broker" line (monitor/bus/startup.py) was logged."""
    return {r.getMessage().split(":")[0] for r in caplog.records
            if r.name == "monitor.bus.startup" and "waiting for the broker" in r.getMessage()}

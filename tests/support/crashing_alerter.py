"""A Kafka-mode alert stage that dies after a channel accepted a message and before the outcome is
recorded on ``monitor.alerts``, for the crash test of the alerter.

    python -m tests.support.crashing_alerter '{"kafka": {...}, "claims": "claims.yaml",
                                                "routes": "routes.yaml"}'

It runs the real stage; the first time a delivery round has a ``sent`` outcome to write, it
calls ``os._exit(9)`` instead: no record, no commit, no close, no leave-group, like a SIGKILL
or a lost machine.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from monitor.alerting.channels import build_channels
from monitor.alerting.core import AlertCore
from monitor.alerting.stage import AlertStage, load_stage_config
from monitor.bus.kafka_log import KafkaStageLog
from monitor.config.claims import load_claims
from monitor.config.settings import KafkaSettings
from monitor.metrics import Metrics
from monitor.runner import run_stage

CRASH_EXIT_CODE = 9


def crash_before_recording_sent() -> None:
    """Make the first write of a ``sent`` outcome kill the process instead."""
    original = AlertStage._write

    def write(stage: Any) -> None:
        if any(outcome.record.event == "sent" for outcome in stage._unwritten):
            print("crashing before recording what was sent", file=sys.stderr, flush=True)
            os._exit(CRASH_EXIT_CODE)
        original(stage)

    AlertStage._write = write  # type: ignore[method-assign]


def build_stage(kafka: KafkaSettings, claims: Path, routes: Path, metrics: Metrics, *,
                retry: Any = None, session_timeout_seconds: float = 45.0) -> AlertStage:
    """The stage as the service builds it, with claims read once and no silences."""
    by_id = {claim.id: claim for claim in load_claims(claims)}
    core = AlertCore(load_stage_config(routes, {}), lambda: by_id,
                     build_channels(timeout_seconds=5.0), metrics, retry=retry)
    transport = KafkaStageLog(kafka, "alert", kafka.matches_topic, kafka.alert_group,
                              fenced_writes=True, session_timeout_seconds=session_timeout_seconds)
    return AlertStage(transport, core, lambda now: [], metrics)


def main(argv: list[str]) -> int:
    config = json.loads(argv[1])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    crash_before_recording_sent()
    stage = build_stage(KafkaSettings.model_validate(config["kafka"]), Path(config["claims"]),
                        Path(config["routes"]), Metrics(CollectorRegistry()),
                        session_timeout_seconds=float(config["session_timeout_seconds"]))
    run_stage(stage, threading.Event())  # only the crash ends it
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

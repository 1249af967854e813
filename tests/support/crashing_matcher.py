"""A Kafka match stage that dies between consume and commit, for the exactly-once crash test.

    python -m tests.support.crashing_matcher '{"kafka": {...}, "claims": "claims.yaml",
                                                "crash_at": 2, "batch_max": 3}'

It matches batches as the real stage does, and immediately before the ``crash_at``-th
transaction commit it flushes the transaction's records to the broker (so they are written
but never committed) and calls ``os._exit(9)``: no abort, no close, no leave-group, like a
SIGKILL or a lost machine.
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

from monitor.bus import kafka_log
from monitor.bus.kafka_log import KafkaStageLog
from monitor.config.settings import KafkaSettings
from monitor.match.registry import ClaimRegistry
from monitor.match.stage import MatchProcessor, MatchStage
from monitor.metrics import Metrics
from monitor.runner import run_stage

CRASH_EXIT_CODE = 9


def crash_before_commit(nth: int) -> None:
    """Make the ``nth`` transaction commit of the stage log in this process kill the process
    (the stage log ends its transactions through ``end_transaction``, with a deadline)."""
    original = kafka_log.end_transaction
    calls = 0

    def end_transaction(producer: Any, *, commit: bool, deadline_seconds: float) -> None:
        nonlocal calls
        if commit:
            calls += 1
            if calls == nth:
                producer.flush()  # the batch's matches and offsets reach the broker, uncommitted
                print(f"crashing before commit {nth}", file=sys.stderr, flush=True)
                os._exit(CRASH_EXIT_CODE)
        original(producer, commit=commit, deadline_seconds=deadline_seconds)

    kafka_log.end_transaction = end_transaction  # type: ignore[assignment]


def main(argv: list[str]) -> int:
    config = json.loads(argv[1])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    crash_before_commit(int(config["crash_at"]))
    metrics = Metrics(CollectorRegistry())
    processor = MatchProcessor(ClaimRegistry(Path(config["claims"])), metrics)
    settings = KafkaSettings.model_validate(config["kafka"])
    transport = KafkaStageLog(settings, "match", settings.items_topic, settings.match_group,
                              transactional_id=settings.transactional_id,
                              batch_max=int(config["batch_max"]),
                              session_timeout_seconds=float(config["session_timeout_seconds"]))
    run_stage(MatchStage(transport, processor, metrics), threading.Event())  # only the crash
    # ends it
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

"""Opening a stage's Kafka clients while the broker may be away.

A process that starts during a broker outage (or one that begins just after its topics were
checked: the chaos test saw an alerter die in start-up) waits for the broker as ``ensure_topics``
does, up to ``kafka.startup_timeout_seconds``, instead of dying at the first connection
timeout. Only known-transient errors are waited out (kafka-python marks them ``retriable``:
no broker answering, a coordinator not available yet); any other error stops start-up at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from kafka.errors import KafkaError

from monitor.clock import SYSTEM_CLOCK, Clock
from monitor.config.settings import KafkaSettings
from monitor.errors import MonitorError

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_SECONDS = 1.0


def transient(exc: KafkaError) -> bool:
    return bool(getattr(exc, "retriable", False))


def open_when_reachable(settings: KafkaSettings, what: str, open_: Callable[[], T], *,
                        clock: Clock = SYSTEM_CLOCK) -> T:
    """``open_()``, tried again while the broker cannot be reached, for up to
    ``startup_timeout_seconds``; then MonitorError naming ``what`` ("alert: open its log").
    ``open_`` closes what it opened before it raises."""
    deadline = clock.monotonic() + settings.startup_timeout_seconds
    waiting = False
    while True:
        try:
            opened = open_()
        except KafkaError as exc:
            if not transient(exc):
                raise MonitorError(f"{what}: {exc!r}") from exc
            if clock.monotonic() > deadline:
                raise MonitorError(
                    f"{what}: no broker reachable at {','.join(settings.bootstrap_servers)} "
                    f"after {settings.startup_timeout_seconds:g} s ({exc!r})") from exc
            if not waiting:  # once: the broker watch says the outage itself
                log.info("%s: waiting for the broker (%s)", what, type(exc).__name__)
                waiting = True
            clock.sleep(RETRY_SECONDS)
            continue
        if waiting:
            log.info("%s: done, the broker answers again", what)
        return opened

"""A stage's Kafka clients opened while the broker is away: waited for, within the start-up
timeout, on known-transient errors only (monitor/bus/startup.py)."""

from __future__ import annotations

import pytest
from kafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError

from monitor.bus.startup import RETRY_SECONDS, open_when_reachable
from monitor.config.settings import KafkaSettings
from monitor.errors import MonitorError
from tests.support.clock import ManualClock

SETTINGS = KafkaSettings(bootstrap_servers=("broker:9092",), startup_timeout_seconds=60)


class Opener:
    """Fails with ``errors`` one after the other, then opens."""

    def __init__(self, *errors: Exception, clock: ManualClock, attempt_seconds: float = 30):
        self.errors, self.clock, self.attempt_seconds = list(errors), clock, attempt_seconds
        self.attempts = 0

    def __call__(self) -> str:
        self.attempts += 1
        if self.errors:
            self.clock.advance(self.attempt_seconds)  # kafka-python's bootstrap timeout
            raise self.errors.pop(0)
        return "log"


def test_a_broker_away_at_start_up_is_waited_for_and_said_once(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    away = KafkaTimeoutError("Unable to bootstrap from ['broker:9092']")
    opener = Opener(away, KafkaTimeoutError("again"), clock=clock, attempt_seconds=20)
    with caplog.at_level("INFO", logger="monitor.bus.startup"):
        assert open_when_reachable(SETTINGS, "alert: open its log", opener, clock=clock) == "log"
    assert opener.attempts == 3 and clock.slept == [RETRY_SECONDS, RETRY_SECONDS]
    assert [r.getMessage() for r in caplog.records] == [
        "alert: open its log: waiting for the broker (KafkaTimeoutError)",
        "alert: open its log: done, the broker answers again"]


def test_a_broker_away_past_the_start_up_timeout_stops_start_up() -> None:
    clock = ManualClock()
    opener = Opener(*(KafkaTimeoutError("down") for _ in range(5)), clock=clock)
    with pytest.raises(MonitorError, match=r"alert: open its log: no broker reachable at "
                                           r"broker:9092 after 60 s"):
        open_when_reachable(SETTINGS, "alert: open its log", opener, clock=clock)
    assert opener.attempts == 2  # failed at 30 s, then at 61 s: past the deadline


def test_an_error_that_is_not_transient_stops_start_up_at_once() -> None:
    clock = ManualClock()
    opener = Opener(TopicAuthorizationFailedError("monitor.matches"), clock=clock)
    with pytest.raises(MonitorError, match="TopicAuthorizationFailed"):
        open_when_reachable(SETTINGS, "alert: open its log", opener, clock=clock)
    assert opener.attempts == 1 and clock.slept == []

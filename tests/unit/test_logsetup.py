"""Log output: JSON lines with stable keys when asked, readable text by default."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from monitor.logsetup import configure_logging


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def test_json_lines_carry_stable_keys_extras_and_tracebacks(
        capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    log = logging.getLogger("monitor.feeds.poller")
    log.warning('feed %s failing: "%s"', "ria", "HTTP 503", extra={"feed": "ria"})
    try:
        raise ValueError("bad\nline")
    except ValueError:
        log.exception("parse failed")
    log.debug("not shown at info")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["level"] == "WARNING" and first["logger"] == "monitor.feeds.poller"
    assert first["message"] == 'feed ria failing: "HTTP 503"' and first["feed"] == "ria"
    assert first["time"].endswith("+00:00")  # UTC, ISO-8601
    assert "ValueError: bad\nline" in second["exc_info"]


def test_text_is_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    logging.getLogger("monitor.x").info("hello")
    assert capsys.readouterr().err.rstrip().endswith("INFO    monitor.x: hello")


def test_library_noise_stays_below_the_operator_unless_debugging(
        capsys: pytest.CaptureFixture[str]) -> None:
    # A broker outage: kafka-python logs an ERROR per reconnect, APScheduler a WARNING per
    # skipped run; monitor.bus.connectivity says it once instead (issue 8).
    def outage() -> list[str]:
        logging.getLogger("kafka.net.manager").error("Connection failed: ECONNREFUSED")
        logging.getLogger("apscheduler.scheduler").warning(
            'Execution of job "poll wire" skipped: maximum number of running instances reached')
        logging.getLogger("httpx").info("HTTP Request: GET http://wire.example/ 200 OK")
        logging.getLogger("monitor.bus.connectivity").warning("kafka: broker b:9092 unreachable")
        return capsys.readouterr().err.splitlines()

    configure_logging("info")
    assert [line.split(": ", 1)[1] for line in outage()] == ["kafka: broker b:9092 unreachable"]
    configure_logging("debug")  # asked for: the libraries' warnings and errors come through,
    lines = outage()            # as DEBUG lines: one outage is still one WARNING (issue 13)
    assert len(lines) == 3
    assert [line.split()[2] for line in lines] == ["DEBUG", "DEBUG", "WARNING"]
    assert "kafka.net.manager: Connection failed" in lines[0]


@pytest.mark.parametrize("level", ["info", "debug"])
def test_a_job_that_raises_is_an_error_at_every_level(
        capsys: pytest.CaptureFixture[str], level: str) -> None:
    configure_logging(level)
    logging.getLogger("apscheduler.executors.default").error('Job "poll wire" raised an exception')
    logging.getLogger("kafka.producer").critical("fatal")
    assert [line.split()[2] for line in capsys.readouterr().err.splitlines()] == ["ERROR",
                                                                                 "CRITICAL"]

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

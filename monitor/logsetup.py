"""Logging configuration, made in one place: human-readable lines on stderr, or JSON.

JSON (``MONITOR_LOG_FORMAT=json``) has one object a line with stable keys: ``time`` (UTC,
ISO-8601), ``level``, ``logger``, ``message``, ``exc_info`` when there is a traceback, and any
``extra=`` fields a call passes. python-json-logger does the encoding (escaping, tracebacks).
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_json_formatter() if log_format == "json"
                         else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter (reconnects, metadata refreshes) is ours to summarise, not to repeat.
    for noisy in ("kafka", "apscheduler", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)


def _json_formatter() -> logging.Formatter:
    return JsonFormatter("{levelname}{name}{message}", style="{", timestamp="time",
                         rename_fields={"levelname": "level", "name": "logger"})

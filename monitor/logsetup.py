"""Logging configuration, made in one place: human-readable lines on stderr, or JSON.

JSON (``MONITOR_LOG_FORMAT=json``) has one object a line with stable keys: ``time`` (UTC,
ISO-8601), ``level``, ``logger``, ``message``, ``exc_info`` when there is a traceback, and any
``extra=`` fields a call passes. python-json-logger does the encoding (escaping, tracebacks).

Libraries are ours to summarise, not to repeat: kafka-python logs an ERROR for every failed
reconnect (about a hundred a process for a 40 s broker outage) and APScheduler a WARNING for
every run it skips while the previous poll still runs. The monitor says the same once
(``monitor.bus.connectivity``: one line when the broker goes, one when it is back), so below
``debug`` those loggers are held back (:data:`QUIET_LIBRARIES`). At ``debug`` the libraries'
warnings and errors come through too, but as DEBUG lines (:class:`DemoteLibraryNoise`): an
operator debugging a broker outage sees every reconnect, while whatever counts WARNING and ERROR
lines (alerting on the log, a person scanning it) still sees the outage once. Their own debug
chatter (a line per request) never comes through.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from monitor.redact import RedactingFilter

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Logger -> the least level it may log at unless the monitor's level is debug.
QUIET_LIBRARIES = {
    "kafka": logging.CRITICAL,  # reconnect errors: summarised by monitor.bus.connectivity
    "apscheduler": logging.ERROR,  # "maximum number of running instances reached", misfires
    "httpx": logging.WARNING,  # a line per request at INFO
    "httpcore": logging.WARNING,
}


class DemoteLibraryNoise(logging.Filter):
    """Shows a library's warnings and errors below its :data:`QUIET_LIBRARIES` level as DEBUG
    records (they only reach the handler when the monitor logs at debug). kafka-python's
    CRITICAL and APScheduler's ERROR ("job raised an exception") keep their level."""

    def filter(self, record: logging.LogRecord) -> bool:
        quiet = QUIET_LIBRARIES.get(record.name.partition(".")[0], logging.NOTSET)
        if logging.WARNING <= record.levelno < quiet:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def configure_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_json_formatter() if log_format == "json"
                         else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactingFilter())  # no URL credentials in any line, whoever logs it
    handler.addFilter(DemoteLibraryNoise())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    debugging = root.level <= logging.DEBUG
    for name, quiet in QUIET_LIBRARIES.items():
        logging.getLogger(name).setLevel(logging.WARNING if debugging else quiet)


def _json_formatter() -> logging.Formatter:
    return JsonFormatter("{levelname}{name}{message}", style="{", timestamp="time",
                         rename_fields={"levelname": "level", "name": "logger"})

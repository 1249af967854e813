"""What the alert stage left for the operator, in either mode: its alert records and the dead
letters, and a replay that records its outcome the way the stage does.

``monitor alerts history``, ``monitor dlq list`` and ``monitor dlq replay`` read through an
:class:`AlertArchive` and never ask which mode it is: :func:`open_archive` decides once, from
the settings. Embedded: the ``alert_log`` and ``dead_letters`` tables of the state file (the
dead letters of every stage); Kafka: ``monitor.alerts`` and ``monitor.dlq``, each read from
the start to its end.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol

from monitor.alerting.alert_log import AlertRecord, alert_output, decode_alert_record
from monitor.alerting.core import AlertCore, Attempt
from monitor.alerting.dead_letters import DeadLetter, dead_letters, replay
from monitor.bus.embedded import EmbeddedLog, read_dead_letters
from monitor.config.settings import KafkaSettings, Settings
from monitor.errors import InvalidInputError
from monitor.store import Database

log = logging.getLogger(__name__)


class AlertArchive(Protocol):
    """The alert log and the dead letters of one deployment. Reads block on the state file
    or the broker (Kafka: BusError when it cannot be read)."""

    def records(self) -> list[AlertRecord]:
        """Every readable alert record, in time order (an unreadable one is logged)."""
        ...

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""
        ...

    def write(self, partition: int, record: AlertRecord) -> None:
        """Add ``record`` to the alert log's ``partition`` and wait until it is stored."""
        ...


class EmbeddedArchive:
    def __init__(self, database: Database) -> None:
        self._db = database
        self._log = EmbeddedLog(database, "alerts")

    def records(self) -> list[AlertRecord]:
        return _decoded((f"{self._log.table}#{r.offset}", r.value) for r in self._log.read_all())

    def dead_letters(self) -> list[DeadLetter]:
        return dead_letters(read_dead_letters(self._db))

    def write(self, partition: int, record: AlertRecord) -> None:
        with self._db.transaction() as conn:
            self._log.append(conn, [alert_output(partition, record)], record.at)


class KafkaArchive:
    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings

    def records(self) -> list[AlertRecord]:
        from monitor.bus.alert_topics import read_topic

        topic = self._settings.alerts_topic
        return _decoded((f"{topic}/{r.partition}@{r.offset}", r.value)
                        for r in read_topic(self._settings, topic))

    def dead_letters(self) -> list[DeadLetter]:
        from monitor.bus.alert_topics import read_topic

        topic = self._settings.dlq_topic
        return dead_letters((f"{topic}/{r.partition}@{r.offset}", r.headers, r.value)
                            for r in read_topic(self._settings, topic))

    def write(self, partition: int, record: AlertRecord) -> None:
        from monitor.bus.alert_topics import write_record

        output = alert_output(partition, record)
        write_record(self._settings, self._settings.alerts_topic, partition, output.key,
                     output.value)


@contextmanager
def open_archive(settings: Settings) -> Iterator[AlertArchive]:
    """The deployment's archive: the state file when no Kafka is configured, else the topics."""
    if not settings.embedded:
        yield KafkaArchive(settings.kafka)
        return
    database = Database(settings.state_path)
    try:
        yield EmbeddedArchive(database)
    finally:
        database.close()


def letter_states(archive: AlertArchive) -> list[tuple[DeadLetter, str]]:
    """Every dead letter with ``dead``, or ``replayed`` once a ``sent`` record names it."""
    replayed = {r.id for r in archive.records() if r.event == "sent"}
    return [(letter, "replayed" if letter.stage == "alert" and letter.id in replayed else "dead")
            for letter in archive.dead_letters()]


def replay_letter(archive: AlertArchive, core: AlertCore, letter: DeadLetter,
                  now: float) -> Attempt:
    """Send ``letter`` once now; when it went, record ``sent`` on its partition."""
    outcome, record = replay(core, letter, now)
    if record is not None:
        archive.write(letter.partition, record)
    return outcome


def _decoded(found: Iterable[tuple[str, bytes]]) -> list[AlertRecord]:
    records = []
    for place, value in found:
        try:
            records.append(decode_alert_record(value))
        except InvalidInputError as exc:
            log.warning("alerts: %s unreadable: %s", place, exc)
    return sorted(records, key=lambda r: r.at)

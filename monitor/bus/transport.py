"""The mode, chosen once per process: where items go and what each stage's log is.

:func:`choose_transport` looks at the settings once (no bootstrap servers: embedded); from then on
nothing asks which mode it is. Constructing a transport does no I/O; :meth:`Transport.prepare`
(called when the service starts) starts the broker watch and creates the topics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal, Protocol

from monitor.bus import ItemPublisher
from monitor.bus.embedded import EmbeddedItemLog, EmbeddedLog, EmbeddedStageLog
from monitor.bus.follow import EmbeddedMatchFollower, MatchFollower
from monitor.bus.log import Record, StageLog
from monitor.bus.silences import SilenceBook, SilenceStore
from monitor.config.settings import Settings
from monitor.errors import MonitorError
from monitor.store import Database

if TYPE_CHECKING:  # kafka-python loads only in Kafka mode
    from monitor.bus.connectivity import BrokerWatch

log = logging.getLogger(__name__)

StageName = Literal["match", "alert"]
Check = Callable[[], bool]
Placed = tuple[str, Record]  # where a record was read ("match_log#7", "topic/2@15"), the record


class Transport(Protocol):
    name: str  # "embedded" | "kafka", as the start-up line and readiness checks say it

    def prepare(self) -> None: ...

    def publisher(self) -> ItemPublisher: ...

    def stage_log(self, stage: StageName) -> StageLog: ...

    def checks(self) -> Mapping[str, Check]:
        """Readiness checks of the transport itself (the broker)."""
        ...

    def read_matches(self) -> list[Placed]:
        """Every committed record of the match log, each with where it was read (for the log
        line of one that cannot be decoded). Blocks on the state file or the broker; Kafka:
        BusError when the broker cannot be read, MonitorError when the topic is not read to
        its end in time."""
        ...

    def match_follower(self, positions: Mapping[int, int]) -> MatchFollower:
        """A reader of the whole match log from ``positions`` on (the next offset per
        partition; the beginning of any partition not named), in no group: every desk reads
        everything. Kafka: BusError when the broker cannot be reached."""
        ...

    def silences(self) -> SilenceBook:
        """The deployment's silences: the state file's, or the silences topic's (created
        here when the transport was not prepared, as for ``monitor silence``)."""
        ...

    def publish_failure_level(self) -> Callable[[BaseException | None], int] | None: ...

    def close(self) -> None: ...


class EmbeddedTransport:
    """The pipeline's logs in the state file; stages of this process wake each other."""

    name = "embedded"

    def __init__(self, database: Database) -> None:
        self._db = database
        self._items = EmbeddedItemLog(database)
        self._logs = {"matches": EmbeddedLog(database, "matches"),
                      "alerts": EmbeddedLog(database, "alerts"),
                      "features": EmbeddedLog(database, "features")}

    def prepare(self) -> None:
        """Nothing to create: the state file has its tables."""

    def publisher(self) -> EmbeddedItemLog:
        return self._items

    def stage_log(self, stage: StageName) -> EmbeddedStageLog:
        if stage == "match":
            return EmbeddedStageLog(self._db, "match", self._items.log,
                                    {"matches": self._logs["matches"],
                                     "features": self._logs["features"]})
        return EmbeddedStageLog(self._db, "alert", self._logs["matches"],
                                {"alerts": self._logs["alerts"]})

    def checks(self) -> Mapping[str, Check]:
        return {}

    def read_matches(self) -> list[Placed]:
        matches = self._logs["matches"]
        return [(f"{matches.table}#{r.offset}", r) for r in matches.read_all()]

    def match_follower(self, positions: Mapping[int, int]) -> EmbeddedMatchFollower:
        return EmbeddedMatchFollower(self._logs["matches"], positions)

    def silences(self) -> SilenceStore:
        return SilenceStore(self._db)

    def publish_failure_level(self) -> None:
        return None

    def close(self) -> None:
        """The database is owned by the service, which closes it."""


class KafkaTransport:
    """The topics on the broker; one broker watch per process says an outage once."""

    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        from monitor.bus.connectivity import BrokerWatch

        self._settings = settings
        self.watch: BrokerWatch = BrokerWatch(settings.kafka)
        self._prepared = False

    def prepare(self) -> None:
        from monitor.bus.kafka import ensure_topics, item_topics, warn_if_checksums_in_python

        warn_if_checksums_in_python()
        self.watch.start()
        ensure_topics(self._settings.kafka, item_topics(self._settings.kafka))
        self._prepared = True

    def publisher(self) -> ItemPublisher:
        from monitor.bus.kafka import KafkaItemPublisher

        return KafkaItemPublisher(self._settings.kafka)

    def stage_log(self, stage: StageName) -> StageLog:
        """The stage's log, once the broker answers (a start during an outage waits)."""
        from monitor.bus.startup import open_when_reachable

        if not self._prepared:
            raise MonitorError("kafka: prepare() the transport before building stages")
        return open_when_reachable(self._settings.kafka, f"{stage}: open its log",
                                   lambda: self._open_stage_log(stage))

    def _open_stage_log(self, stage: StageName) -> StageLog:
        from monitor.bus.kafka import check_paired_partitions
        from monitor.bus.kafka_log import KafkaStageLog

        kafka = self._settings.kafka
        session = kafka.session_timeout_seconds
        if stage == "match":
            return KafkaStageLog(kafka, "match", kafka.items_topic, kafka.match_group,
                                 transactional_id=kafka.transactional_id,
                                 batch_max=kafka.match_batch_max,
                                 session_timeout_seconds=session, watch=self.watch)
        check_paired_partitions(kafka)  # partition p of alerts records partition p of matches
        return KafkaStageLog(kafka, "alert", kafka.matches_topic, kafka.alert_group,
                             fenced_writes=True, batch_max=kafka.alert_batch_max,
                             session_timeout_seconds=session, watch=self.watch)

    def checks(self) -> Mapping[str, Check]:
        grace = self._settings.http.readiness_grace_seconds
        return {"broker": lambda: self.watch.is_ready(grace)}

    def read_matches(self) -> list[Placed]:
        from monitor.bus.alert_topics import read_topic

        topic = self._settings.kafka.matches_topic
        return [(f"{topic}/{r.partition}@{r.offset}", Record(r.partition, r.offset, r.key, r.value))
                for r in read_topic(self._settings.kafka, topic)]

    def match_follower(self, positions: Mapping[int, int]) -> MatchFollower:
        from monitor.bus.kafka_follow import KafkaMatchFollower

        return KafkaMatchFollower(self._settings.kafka, positions, watch=self.watch)

    def silences(self) -> SilenceBook:
        from monitor.bus.kafka import ensure_topics, silence_topic
        from monitor.bus.kafka_silences import KafkaSilenceBook

        if not self._prepared:
            ensure_topics(self._settings.kafka, [silence_topic(self._settings.kafka)])
        return KafkaSilenceBook(self._settings.kafka)

    def publish_failure_level(self) -> Callable[[BaseException | None], int]:
        # An outage the broker watch has reported once is not repeated for every feed.
        return self.watch.level_for_failure

    def close(self) -> None:
        self.watch.close()


def choose_transport(settings: Settings, database: Callable[[], Database]
                     ) -> EmbeddedTransport | KafkaTransport:
    """Embedded when no bootstrap servers are set, else Kafka. ``database`` gives the state
    file and is called in embedded mode only: a Kafka-mode reader (``monitor claims
    timeline``) leaves no state file behind."""
    if settings.embedded:
        return EmbeddedTransport(database())
    return KafkaTransport(settings)

"""The stage contract: what a stage reads, writes and commits, whatever carries the records.

A stage (match, alert) is written once against :class:`StageLog`; the transport is chosen once,
at start: :class:`monitor.bus.embedded.EmbeddedStageLog` on the local state file, or
:class:`monitor.bus.kafka_log.KafkaStageLog` on the broker. After getsentry/arroyo's split of a
strategy from its broker: the stage sees records with positions, never a SQLite row or a Kafka
record.

The model is Kafka's, because it is the stricter one: a stage consumes one input log as a
member of a group; the log has partitions (the embedded logs have one, partition 0); each
record has an offset, and the stage's committed position per partition is "the next offset to
read". The two ways to move on:

- :meth:`StageLog.transact` -- outputs, dead letters and the new positions in ONE atomic step
  (the match stage). After a failure nothing of it is visible and the log is rewound to the
  committed positions, so the batch is read again.
- :meth:`StageLog.write` then :meth:`StageLog.commit` -- acknowledged writes, and positions
  committed separately and possibly behind what was read (the alert stage holds a position
  back while a match waits in a group).

Errors: a transport raises :class:`monitor.errors.BusError` for what is worth retrying (a broker
away, a busy state file) after rewinding to the committed positions, and a plain
:class:`monitor.errors.MonitorError` for what is not (another process took over the
transactional id). Anything else is a bug.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from monitor.metrics import Metrics

log = logging.getLogger(__name__)

LogName = Literal["items", "matches", "alerts", "features"]


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a stage's input log."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes

    @property
    def place(self) -> str:
        """``partition@offset``, for log lines and dead-letter headers."""
        return f"{self.partition}@{self.offset}"


@dataclass(frozen=True, slots=True)
class Output:
    """A record for one of the pipeline's logs.

    ``id`` names the record (a match_id, an alert record's id and event): the embedded log
    writes a given id once. ``partition`` None: chosen by key.
    """

    log: LogName
    key: bytes
    value: bytes
    id: str
    partition: int | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Bytes a stage sets aside, with why (``monitor.dlq`` / the ``dead_letters`` table).

    ``headers`` always name ``stage`` and ``error``; the transport adds ``time``.
    """

    key: bytes | None
    value: bytes
    headers: Mapping[str, str]

    @property
    def stage(self) -> str:
        return self.headers.get("stage", "?")

    @property
    def error(self) -> str:
        return self.headers.get("error", "")


def dead_letter(stage: str, record: Record, error: str, source: str) -> DeadLetter:
    """The dead letter of an input record that could not be read."""
    return DeadLetter(record.key, record.value,
                      {"stage": stage, "error": error, "source": f"{source}/{record.place}"})


def report_set_aside(metrics: Metrics, letters: Sequence[DeadLetter]) -> None:
    """Count and log input records a stage set aside, once they are written (every stage,
    both modes: nothing is dropped without a line and a count)."""
    for letter in letters:
        metrics.dead_letters.labels(letter.stage).inc()
        log.error("%s: record %s set aside as a dead letter: %s (%d bytes)", letter.stage,
                  letter.headers.get("source", "?"), letter.error, len(letter.value))


@dataclass(frozen=True, slots=True)
class Polled:
    """What one poll returned: records of partitions this member owns, oldest first per
    partition, and the partitions it gained or lost since the last poll (applied by the stage
    before it looks at the records)."""

    records: list[Record] = field(default_factory=list)
    assigned: frozenset[int] = frozenset()
    revoked: frozenset[int] = frozenset()


class StageLog(Protocol):
    """One stage's view of the pipeline's logs. Not thread-safe: the stage's thread uses it."""

    source: str  # the input log's name as ops know it: "monitor.items", "item_log"

    def poll(self, timeout_seconds: float, max_records: int | None = None) -> Polled:
        """The next records after the read position (which moves past them), at most
        ``max_records`` (else the log's batch size); waits up to ``timeout_seconds`` when
        there are none."""
        ...

    def begin(self, consumed: Sequence[Record]) -> None:
        """A head start for the :meth:`transact` that ends this step: ``consumed`` are its
        records so far (it may poll and add more). Kafka begins the transaction and sends
        the offsets now, while the stage works; embedded does nothing. Raises nothing: what
        fails is left to :meth:`transact`."""
        ...

    def transact(self, consumed: Sequence[Record], outputs: Sequence[Output],
                 dead: Sequence[DeadLetter]) -> None:
        """Write ``outputs`` and ``dead`` and commit the positions past ``consumed``, all or
        nothing."""
        ...

    def write(self, outputs: Sequence[Output], dead: Sequence[DeadLetter] = (),
              positions: Mapping[int, int] | None = None) -> None:
        """Write and wait until every record is acknowledged; with ``positions``, commit
        them in the same step (as :meth:`commit`; one SQLite or Kafka transaction where the
        log has them, so a stage that writes and commits pays for one). Outputs written again
        after a failed write are stored once (by ``Output.id``), also when the failed write
        was stored after all."""
        ...

    def commit(self, positions: Mapping[int, int]) -> None:
        """Commit the next offset to read, per partition of the input log."""
        ...

    def read_back(self, log: LogName, partitions: Sequence[int] | None) -> list[Record]:
        """Every committed record of ``log`` in ``partitions`` (None: all of them), from the
        start to the end as it is now."""
        ...

    def lag(self) -> int:
        """Records of the owned partitions not yet read and committed (a step that ends
        with ``transact`` leaves none read but uncommitted)."""
        ...

    def failure_level(self, error: BaseException) -> int:
        """The log level for a transient failure (an outage is said once, not per batch)."""
        ...

    def is_ready(self) -> bool: ...

    def close(self) -> None: ...

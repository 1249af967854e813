"""Following the match log as a reader of the whole of it: no group, no commits, every copy
reads everything (the claim desk keeps its own view, and its own positions, of the log).

:class:`MatchFollower` is what the desk sees; :meth:`monitor.bus.transport.Transport.
match_follower` makes one for the mode: :class:`EmbeddedMatchFollower` on the state file's
``match_log`` (one partition, 0; offsets are its sequence numbers), or
:class:`monitor.bus.kafka_follow.KafkaMatchFollower` on ``monitor.matches``, read_committed,
every partition assigned.

Positions are Kafka's: per partition, the next offset to read. A follower starts at the
positions it is given and at the beginning of any partition they do not name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

from monitor.bus.embedded import PARTITION, EmbeddedLog
from monitor.bus.log import Record
from monitor.errors import BusError, StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")


class MatchFollower(Protocol):
    """Reads the match log from given positions on. Not thread-safe: one thread drives it.

    Every call may block on the state file or the broker and raises
    :class:`monitor.errors.BusError` when it cannot be read for now (retry later: nothing was
    consumed); anything else is a bug."""

    source: str  # the log's name as ops know it: "match_log", "monitor.matches"

    def poll(self, timeout_seconds: float) -> list[Record]:
        """The next committed records, oldest first per partition; waits up to
        ``timeout_seconds`` when there are none."""
        ...

    def ends(self) -> dict[int, int]:
        """Per partition, the offset after the last committed record, as it is now."""
        ...

    def positions(self) -> dict[int, int]:
        """Per partition, the next offset this follower reads (past what it skipped, such as
        Kafka's transaction markers)."""
        ...

    def lag(self) -> int:
        """Committed records not read yet, as last measured."""
        ...

    def place(self, record: Record) -> str:
        """Where ``record`` was read, for a log line: ``match_log#7``, ``monitor.matches/2@15``."""
        ...

    def failure_level(self, error: BaseException) -> int: ...

    def close(self) -> None: ...


class EmbeddedMatchFollower:
    """:class:`MatchFollower` on the ``match_log`` table. It reads another process's writes
    too (``monitor desk`` beside ``monitor run``), so it looks again every ``timeout_seconds``
    rather than wait for this process's stages to wake it."""

    def __init__(self, matches: EmbeddedLog, positions: Mapping[int, int], *,
                 batch_max: int = 500, wait: Callable[[float], object] = time.sleep) -> None:
        self._log, self._batch_max, self._wait = matches, batch_max, wait
        self.source = matches.table
        self._next = positions.get(PARTITION, 1)  # sequence numbers start at 1
        self._last = 0

    def poll(self, timeout_seconds: float) -> list[Record]:
        records = self._read()
        if not records and timeout_seconds > 0:
            self._wait(timeout_seconds)
            records = self._read()
        if records:
            self._next = records[-1].offset + 1
        return records

    def ends(self) -> dict[int, int]:
        return {PARTITION: self._last_seq() + 1}

    def positions(self) -> dict[int, int]:
        return {PARTITION: self._next}

    def lag(self) -> int:
        return max(0, self._last - (self._next - 1))

    def place(self, record: Record) -> str:
        return f"{self.source}#{record.offset}"

    def failure_level(self, error: BaseException) -> int:
        return logging.WARNING

    def close(self) -> None:
        """The database is owned by the service, which closes it."""

    def _read(self) -> list[Record]:
        records = self._translated(lambda: self._log.read_after(self._next - 1,
                                                                self._batch_max))
        self._last = max(self._last_seq(), records[-1].offset if records else 0)
        return records

    def _last_seq(self) -> int:
        return self._translated(self._log.last_seq)

    def _translated(self, read: Callable[[], T]) -> T:
        """A busy or locked state file is worth another try."""
        try:
            return read()
        except StoreError as exc:
            raise BusError(f"desk: cannot read {self.source}: {exc}", exc) from exc

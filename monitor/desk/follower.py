"""The desk's follower: brings its view up to date from the match log, in both modes.

A step reads the next records through a :class:`monitor.bus.follow.MatchFollower` (the state
file's ``match_log``, or ``monitor.matches`` read by no group) and writes the readable ones
with the positions after them to the view in one transaction
(:meth:`monitor.desk.store.StoredDeskView.apply`). A record that cannot be decoded is left
out with one warning naming where it was, and counted; the positions move past it all the same.

The follower starts from the view's positions; an empty view, or one built from another log,
is rebuilt from the beginning; so is one whose positions lie beyond the end of the log (the
state file or the topic was made anew). A failure to read the log or write the view is a
:class:`monitor.errors.RecoverableError`: the follower is dropped, and the runner's next try
starts a new one from the positions the view stored, so nothing read and not written is lost.
Anything else is a bug and stops the process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence

from monitor.bus.follow import MatchFollower
from monitor.bus.log import Record
from monitor.desk.source import readable
from monitor.desk.store import Linked, StoredDeskView
from monitor.errors import RecoverableError
from monitor.metrics import Metrics

log = logging.getLogger(__name__)

STAGE = "desk"
POLL_SECONDS = 1.0  # how long an idle step waits for matches before it returns

Follow = Callable[[Mapping[int, int]], MatchFollower]  # Transport.match_follower


class DeskFollower:
    """``step()`` takes in one batch; :func:`monitor.runner.run_stage` loops it.
    ``caught_up`` (the desk's readiness) may be read from any thread."""

    name = STAGE

    def __init__(self, view: StoredDeskView, follow: Follow, metrics: Metrics) -> None:
        self._view, self._follow, self._metrics = view, follow, metrics
        self._follower: MatchFollower | None = None
        self._targets: dict[int, int] = {}  # the log's end when the desk started
        self._caught_up = threading.Event()

    def step(self) -> int:
        """Read and keep the next batch; how many records it read (0: none came)."""
        try:
            follower = self._follower or self._open()
            records = follower.poll(POLL_SECONDS)
            if records:
                self._keep(follower, records)
            self._metrics.consumer_lag.labels(STAGE).set(follower.lag())
            if not self._caught_up.is_set() and _reached(follower.positions(), self._targets):
                self._caught_up.set()
                log.info("desk: the view %s holds %s up to its end (%d matches)",
                         self._view.path, follower.source, self._view.count())
        except RecoverableError:
            self._drop()  # what it read and the view did not keep is read again
            raise
        return len(records)

    def caught_up(self) -> bool:
        """The view has held the whole log once since the desk started."""
        return self._caught_up.is_set()

    def failure_level(self, error: BaseException) -> int:
        follower = self._follower
        return logging.WARNING if follower is None else follower.failure_level(error)

    def close(self) -> None:
        self._drop()

    def _open(self) -> MatchFollower:
        """A follower from the view's positions, the view started over when they are not
        positions in this log."""
        follower = self._follow(self._view.positions())
        try:
            ends = follower.ends()
            if self._view.source() is None:  # a new view: built from the beginning
                self._view.start_over(follower.source)
            elif reason := self._unusable(follower.source, ends):
                log.warning("desk: the view %s %s; rebuilding it from %s", self._view.path,
                            reason, follower.source)
                self._view.start_over(follower.source)
                follower.close()
                follower = self._follow({})
        except BaseException:
            follower.close()
            raise
        if not self._targets:
            self._targets = ends
        self._follower = follower
        self._metrics.desk_matches.set(self._view.count())
        return follower

    def _unusable(self, source: str, ends: Mapping[int, int]) -> str | None:
        """Why the view's positions cannot be used in ``source``, or None when they can."""
        built_from = self._view.source()
        if built_from != source:
            return f"was built from {built_from}"
        beyond = sorted(p for p, offset in self._view.positions().items()
                        if offset > ends.get(p, 0))
        if beyond:
            return f"has read further than the end of partitions {beyond} (a new log?)"
        return None

    def _keep(self, follower: MatchFollower, records: Sequence[Record]) -> None:
        linked = []
        for record in records:
            match = readable(follower.place(record), record)
            if match is not None:
                linked.append(Linked(match, record.value))
        self._view.apply(linked, _after(records))
        skipped = len(records) - len(linked)
        if skipped:
            self._metrics.desk_skipped.inc(skipped)
        self._metrics.desk_matches.inc(len(linked))

    def _drop(self) -> None:
        follower, self._follower = self._follower, None
        if follower is not None:
            follower.close()


def _after(records: Sequence[Record]) -> dict[int, int]:
    """The next offset to read per partition after ``records``."""
    positions: dict[int, int] = {}
    for record in records:
        positions[record.partition] = max(positions.get(record.partition, 0), record.offset + 1)
    return positions


def _reached(positions: Mapping[int, int], targets: Mapping[int, int]) -> bool:
    return all(positions.get(partition, 0) >= end for partition, end in targets.items())

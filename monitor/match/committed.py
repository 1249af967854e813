"""The match ids already committed to the match log, so that no match is written twice.

An item version that reaches the match stage twice (the item log holds it twice: a poller that
crashed between the broker's acknowledgement and its state file, two feeds of one outlet polled
at the same moment) gives the same match_id (claim + item + content hash) both times. The
stage writes a match only when its id is not here, and adds ids only once the transaction that
wrote them committed, so an aborted batch writes its matches again.

Bounded: the ids are read back from the whole match log when the stage gets partitions
(``monitor.matches`` keeps a week: ``monitor.bus.kafka.item_topics``), then kept for
``window_seconds`` after they were learnt. Reading back on every assignment also learns what
another matcher committed for the partitions that moved here. A duplicate that arrives later
than the window after its first copy is matched again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable

from monitor.bus.log import Record

log = logging.getLogger(__name__)

WINDOW_SECONDS = 7 * 24 * 3600.0  # as long as monitor.matches keeps its records
PRUNE_EVERY_SECONDS = 3600.0


class CommittedMatches:
    """match_id -> when it was learnt; not thread-safe (the stage's thread uses it)."""

    def __init__(self, window_seconds: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self._window, self._clock = window_seconds, clock
        self._ids: dict[str, float] = {}
        self._pruned_at = clock()

    def __contains__(self, match_id: object) -> bool:
        return match_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def learn(self, records: Iterable[Record]) -> int:
        """Add the ids of match records read back from the log; returns how many records."""
        now, count = self._clock(), 0
        for record in records:
            match_id = _match_id(record.value)
            if match_id is not None:
                self._ids.setdefault(match_id, now)
            count += 1
        return count

    def add(self, match_ids: Iterable[str]) -> None:
        """Ids just committed."""
        now = self._clock()
        for match_id in match_ids:
            self._ids[match_id] = now
        if now - self._pruned_at > PRUNE_EVERY_SECONDS:
            self._pruned_at = now
            oldest = now - self._window
            self._ids = {mid: at for mid, at in self._ids.items() if at >= oldest}


def _match_id(value: bytes) -> str | None:
    """The id without decoding the whole match (a week of matches is read back at once); an
    unreadable record is the match log reader's to report, not ours."""
    try:
        raw = json.loads(value)
    except ValueError:
        return None
    match_id = raw.get("match_id") if isinstance(raw, dict) else None
    return match_id if isinstance(match_id, str) else None

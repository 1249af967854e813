"""The alert stage's bookkeeping between consuming a match and committing its position (pure).

:class:`CommitTracker` answers "up to where may partition p be committed?": up to the first
consumed offset that still holds something not yet written (a (match_id, receiver) pair not
yet on the alert log as "pending", or an unreadable record whose dead letter is not written),
or past the last consumed offset when none does. So ``group_wait`` holds a commit back but
never loses a match: after a crash or a rebalance the partition's next owner reads the held
matches again.

:class:`MemoryOutbox` holds the notifications being delivered or retried by this process, and
knows which of them are in flight (handed to the delivery pool, outcome not recorded yet).
It is a cache, not the record: every entry is also a "pending" record on the alert log, from
which the partition's next owner (or this stage after a restart) rebuilds it.

:class:`StepView` is what the last step left, for readers on other threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

Pair = tuple[str, str]  # (match_id, receiver)
WAIT_GAP_SECONDS = 5.0  # idle() calls further apart than this begin a new wait


class CommitTracker:
    """Per partition: consumed offsets still holding pairs, and the next offset to consume."""

    def __init__(self) -> None:
        self._next: dict[int, int] = {}
        self._held: dict[int, dict[int, set[Pair]]] = {}
        self._where: dict[Pair, set[tuple[int, int]]] = {}

    def consumed(self, partition: int, offset: int, pairs: Iterable[Pair]) -> None:
        """Record that ``offset`` was read and which of its pairs are still outstanding."""
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)
        outstanding = set(pairs)
        if not outstanding:
            return
        self._held.setdefault(partition, {}).setdefault(offset, set()).update(outstanding)
        for pair in outstanding:
            self._where.setdefault(pair, set()).add((partition, offset))

    def release(self, pairs: Iterable[Pair]) -> None:
        """These pairs are handled (pending on the ledger, or dropped): stop holding them."""
        for pair in pairs:
            for partition, offset in self._where.pop(pair, ()):
                at = self._held.get(partition, {})
                at.get(offset, set()).discard(pair)
                if offset in at and not at[offset]:
                    del at[offset]

    def positions(self) -> dict[int, int]:
        """The offset each partition may be committed at."""
        found = {}
        for partition, after_last in self._next.items():
            held = self._held.get(partition)
            found[partition] = min(held) if held else after_last
        return found

    def forget(self, partition: int) -> set[Pair]:
        """Stop tracking ``partition`` (revoked); returns the pairs it still held."""
        self._next.pop(partition, None)
        held = self._held.pop(partition, {})
        pairs = {pair for offsets in held.values() for pair in offsets}
        for pair in pairs:
            places = self._where.get(pair, set())
            places -= {(partition, offset) for offset in held}
            if not places:
                self._where.pop(pair, None)
        return pairs

    def held_count(self) -> int:
        return sum(len(offsets) for offsets in self._held.values())


@dataclass(frozen=True, slots=True)
class PendingAlert:
    """A notification part on its way (satisfies :class:`monitor.alerting.core.Queued`)."""

    id: str
    receiver: str
    payload: bytes
    partition: int
    claim_ids: tuple[str, ...]
    match_ids: tuple[str, ...]
    created_at: float
    next_attempt_at: float
    attempts: int = 0
    lane: str = ""  # its group: a group's notifications are sent in order ("": its own)

    @property
    def ordered_in(self) -> str:
        """The lane it is delivered in, one notification at a time."""
        return self.lane or f"{self.receiver}/{self.id}"


class MemoryOutbox:
    """Notifications this process is delivering or retrying, by id."""

    def __init__(self) -> None:
        self._entries: dict[str, PendingAlert] = {}
        self._in_flight: set[str] = set()

    def add(self, entry: PendingAlert) -> bool:
        """Queue ``entry``; False (nothing changed) when an entry with its id is queued."""
        if entry.id in self._entries:
            return False
        self._entries[entry.id] = entry
        return True

    def due(self, now: float, limit: int = 100) -> list[PendingAlert]:
        """Entries due at ``now`` and not in flight, in the order they became due."""
        ready = [e for e in self._entries.values()
                 if e.next_attempt_at <= now and e.id not in self._in_flight]
        return sorted(ready, key=lambda e: (e.next_attempt_at, e.created_at))[:limit]

    def start(self, entry: PendingAlert) -> None:
        """``entry`` is handed to the delivery pool: not due again until its outcome."""
        self._in_flight.add(entry.id)

    def awaits(self, entry: PendingAlert) -> bool:
        """True when ``entry`` (this very object) is in flight here: an outcome that comes
        back after its partition was revoked (or revoked and assigned again) is not."""
        return entry.id in self._in_flight and self._entries.get(entry.id) is entry

    def in_flight(self) -> int:
        return len(self._in_flight)

    def retry(self, entry: PendingAlert, next_attempt_at: float) -> None:
        self._in_flight.discard(entry.id)
        self._entries[entry.id] = replace(entry, attempts=entry.attempts + 1,
                                          next_attempt_at=next_attempt_at)

    def remove(self, entry_id: str) -> None:
        self._in_flight.discard(entry_id)
        self._entries.pop(entry_id, None)

    def forget(self, partition: int) -> int:
        """Drop the entries of a revoked partition (its next owner rebuilds them)."""
        gone = [key for key, e in self._entries.items() if e.partition == partition]
        for key in gone:
            del self._entries[key]
            self._in_flight.discard(key)
        return len(gone)

    def next_attempt_at(self) -> float | None:
        """When the next entry not in flight is due; None when there is none."""
        return min((e.next_attempt_at for e in self._entries.values()
                    if e.id not in self._in_flight), default=None)

    def size(self) -> int:
        return len(self._entries)

    def oldest_pending_age(self, now: float) -> float:
        oldest = min((e.created_at for e in self._entries.values()), default=None)
        return 0.0 if oldest is None else max(0.0, now - oldest)


@dataclass(frozen=True, slots=True)
class _Left:
    step: int = 0
    idle: bool = False
    pending: int = 0
    next_wakeup: float | None = None


class StepView:
    """What the stage's last step left (idle, alerts pending, next wakeup), safe to read from
    any thread while the stage's own thread steps. Never blocks."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._lock, self._monotonic = threading.Lock(), monotonic
        self._steps = 0
        self._left = _Left()
        self._asked: int | None = None  # the last step begun before the current wait
        self._asked_at = 0.0

    def begin(self) -> int:
        """A step begins; its number."""
        with self._lock:
            self._steps += 1
            return self._steps

    def left(self, step: int, idle: bool, pending: int, next_wakeup: float | None) -> None:
        """What step ``step`` left, as it ends."""
        with self._lock:
            self._left = _Left(step, idle, pending, next_wakeup)

    def idle(self) -> bool:
        """True once a step that began after this wait began found nothing left: a True is
        never left over from before new input came. A wait is calls less than
        ``WAIT_GAP_SECONDS`` apart, until one says True."""
        now = self._monotonic()
        with self._lock:
            if self._asked is None or now - self._asked_at > WAIT_GAP_SECONDS:
                self._asked = self._steps  # the step running now, or the last one
            self._asked_at = now
            if self._left.idle and self._left.step > self._asked:
                self._asked = None
                return True
            return False

    def pending(self) -> int:
        with self._lock:
            return self._left.pending

    def next_wakeup(self) -> float | None:
        with self._lock:
            return self._left.next_wakeup

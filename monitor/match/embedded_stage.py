"""Embedded mode's match stage: reads the local item log, writes the local match log.

Matches and the stage's read position are written in one SQLite transaction, so a crash
repeats or loses nothing: after a restart the stage continues from the last committed item, and
a match_id already in the log is not written twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from monitor.bus.embedded import EmbeddedItemLog
from monitor.errors import InvalidInputError
from monitor.match.stage import MatchProcessor
from monitor.metrics import Metrics
from monitor.model import Match, decode_item, encode_match
from monitor.store import Database

log = logging.getLogger(__name__)

STAGE = "match"


class EmbeddedMatchStage:
    """``run()`` = while not stopping: ``run_once()``; waits for ``wake`` when idle."""

    def __init__(self, items: EmbeddedItemLog, database: Database, processor: MatchProcessor,
                 metrics: Metrics, *, batch_size: int = 200) -> None:
        self._items, self._db, self._processor = items, database, processor
        self._metrics, self._batch_size = metrics, batch_size
        self.wake = threading.Event()
        self.on_matches: Callable[[], None] | None = None  # wakes the alert stage at once

    def position(self) -> int:
        with self._db.transaction() as conn:
            row = conn.execute("SELECT seq FROM stage_offsets WHERE stage = ?",
                               (STAGE,)).fetchone()
        return int(row[0]) if row else 0

    def run_once(self) -> int:
        """Match the next batch of items; returns how many items it handled."""
        self._processor.refresh_claims()
        start = self.position()
        batch = self._items.raw_after(start, self._batch_size)
        if not batch:
            self._metrics.consumer_lag.labels(STAGE).set(0)
            return 0
        matches: list[Match] = []
        dead: list[tuple[bytes, str]] = []
        for _seq, payload in batch:
            try:
                item = decode_item(payload)
            except InvalidInputError as exc:
                dead.append((payload, str(exc)))
                continue
            matches.extend(self._processor.process(item))
        self._commit(batch[-1][0], matches, dead)
        if matches and self.on_matches is not None:
            self.on_matches()
        self._metrics.consumer_lag.labels(STAGE).set(self._items.last_seq() - batch[-1][0])
        return len(batch)

    def _commit(self, seq: int, matches: list[Match], dead: list[tuple[bytes, str]]) -> None:
        now = time.time()
        with self._db.transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO match_log (match_id, claim_id, payload, logged_at) "
                "VALUES (?, ?, ?, ?)",
                [(m.match_id, m.claim_id, encode_match(m), now) for m in matches])
            conn.executemany(
                "INSERT INTO dead_letters (stage, payload, error, at) VALUES (?, ?, ?, ?)",
                [(STAGE, payload, error, now) for payload, error in dead])
            conn.execute(
                "INSERT INTO stage_offsets (stage, seq) VALUES (?, ?) "
                "ON CONFLICT (stage) DO UPDATE SET seq = excluded.seq", (STAGE, seq))
        for payload, error in dead:
            self._metrics.dead_letters.labels(STAGE).inc()
            log.error("match: item set aside as a dead letter: %s (%d bytes)", error,
                      len(payload))

    def run(self, stopping: threading.Event, idle_seconds: float = 1.0) -> None:
        while not stopping.is_set():
            try:
                handled = self.run_once()
            except Exception:  # a bug or a disk error: log it, back off, keep the stage alive
                log.exception("match: batch failed; retrying")
                handled = 0
                stopping.wait(5.0)
            if not handled:
                self.wake.wait(idle_seconds)
                self.wake.clear()

    def match_count(self) -> int:
        with self._db.transaction() as conn:
            (total,) = conn.execute("SELECT COUNT(*) FROM match_log").fetchone()
        return int(total)

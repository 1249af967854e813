"""Embedded mode's item log: items appended to the local SQLite file, for one process.

Not a Kafka imitation: one ordered log with a sequence number, read by in-process stages.
Appending is idempotent per (item_id, content_hash), so a crash between appending and marking
an item seen cannot put the same version in the log twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from monitor.bus import PublishReport
from monitor.model import Item, decode_item, encode_item
from monitor.store import Database

log = logging.getLogger(__name__)


class EmbeddedItemLog:
    """ItemPublisher on the local state file; ``read_after`` serves in-process consumers."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self.on_publish: Callable[[], None] | None = None  # wakes an in-process consumer

    def publish(self, items: Sequence[Item]) -> PublishReport:
        now = time.time()
        with self._db.transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO item_log (item_id, content_hash, payload, logged_at) "
                "VALUES (?, ?, ?, ?)",
                [(item.item_id, item.content_hash, encode_item(item), now) for item in items],
            )
        for item in items:
            log.info("item %s %s: %s", item.feed_id, item.item_id, item.title,
                     extra={"feed_id": item.feed_id, "item_id": item.item_id})
        if items and self.on_publish is not None:
            self.on_publish()
        return PublishReport(tuple(items))

    def read_after(self, seq: int, limit: int = 500) -> list[tuple[int, Item]]:
        """Items logged after sequence number ``seq``, oldest first."""
        return [(row_seq, decode_item(payload)) for row_seq, payload in self.raw_after(seq, limit)]

    def raw_after(self, seq: int, limit: int = 500) -> list[tuple[int, bytes]]:
        """The encoded items after ``seq``: a consumer decodes, and dead-letters what fails."""
        with self._db.transaction() as conn:
            rows = conn.execute(
                "SELECT seq, payload FROM item_log WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
        return [(int(row_seq), bytes(payload)) for row_seq, payload in rows]

    def last_seq(self) -> int:
        with self._db.transaction() as conn:
            (last,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM item_log").fetchone()
        return int(last)

    def count(self) -> int:
        with self._db.transaction() as conn:
            (total,) = conn.execute("SELECT COUNT(*) FROM item_log").fetchone()
        return int(total)

    def is_ready(self) -> bool:
        return True

    def close(self) -> None:
        """The database is owned by the service, which closes it."""

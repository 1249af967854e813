"""Per-feed poll state and seen items, kept so that a restart repeats nothing.

Validators and the body hash are written only after every new item of that body was
acknowledged by the bus: if publishing failed, the next poll fetches and parses the body again
and finds the unsent items, because their seen-marks were never written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from monitor.model import FeedState, Item
from monitor.store import Database


class PollStateStore(Protocol):
    """Durable poll state. Calls block on local disk only; they raise sqlite3 errors."""

    def load(self, feed_id: str) -> FeedState: ...

    def save(self, state: FeedState) -> None: ...

    def seen_hashes(self, item_ids: Sequence[str]) -> Mapping[str, str]: ...

    def mark_seen(self, items: Iterable[Item], now: float) -> None: ...

    def touch_seen(self, item_ids: Sequence[str], now: float) -> None: ...

    def prune_seen(self, older_than: float) -> int: ...


_FIELDS = ("etag", "last_modified", "body_hash", "consecutive_failures", "last_success_at",
           "last_error", "next_check_at")


class SQLitePollState:
    """PollStateStore on the local state file."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def load(self, feed_id: str) -> FeedState:
        with self._db.transaction() as conn:
            row = conn.execute(
                f"SELECT {', '.join(_FIELDS)} FROM feed_state WHERE feed_id = ?", (feed_id,)
            ).fetchone()
        return FeedState(feed_id, *row) if row else FeedState(feed_id)

    def load_all(self) -> list[FeedState]:
        with self._db.transaction() as conn:
            rows = conn.execute(f"SELECT feed_id, {', '.join(_FIELDS)} FROM feed_state").fetchall()
        return [FeedState(*row) for row in rows]

    def save(self, state: FeedState) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO feed_state (feed_id, {', '.join(_FIELDS)}) "
                f"VALUES (?, {', '.join('?' for _ in _FIELDS)})",
                (state.feed_id, *(getattr(state, name) for name in _FIELDS)),
            )

    def seen_hashes(self, item_ids: Sequence[str]) -> Mapping[str, str]:
        found: dict[str, str] = {}
        with self._db.transaction() as conn:
            for start in range(0, len(item_ids), 500):  # SQLite's bound-parameter limit
                chunk = item_ids[start:start + 500]
                found.update(conn.execute(
                    "SELECT item_id, content_hash FROM seen_items WHERE item_id IN "
                    f"({', '.join('?' for _ in chunk)})", chunk,
                ).fetchall())
        return found

    def mark_seen(self, items: Iterable[Item], now: float) -> None:
        with self._db.transaction() as conn:
            conn.executemany(
                "INSERT INTO seen_items (item_id, feed_id, content_hash, first_seen_at, "
                "last_seen_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (item_id) DO UPDATE SET "
                "content_hash = excluded.content_hash, last_seen_at = excluded.last_seen_at",
                [(item.item_id, item.feed_id, item.content_hash, now, now) for item in items],
            )

    def touch_seen(self, item_ids: Sequence[str], now: float) -> None:
        with self._db.transaction() as conn:
            conn.executemany(
                "UPDATE seen_items SET last_seen_at = ? WHERE item_id = ?",
                [(now, item_id) for item_id in item_ids],
            )

    def prune_seen(self, older_than: float) -> int:
        """Forget items no feed has listed since ``older_than``; returns how many."""
        with self._db.transaction() as conn:
            return conn.execute(
                "DELETE FROM seen_items WHERE last_seen_at < ?", (older_than,)
            ).rowcount

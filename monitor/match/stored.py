"""The items a backtest goes over, with their stored features, in either mode.

- Embedded: the ``item_features`` table, in the order the match stage wrote it, and the
  ``item_log`` for the texts of the few candidates. Items logged before features were kept
  (or never matched yet) get theirs computed once and stored, so the next backtest reads them;
  features kept by another version of them are computed afresh on every backtest.
- Kafka: :mod:`monitor.match.stored_kafka`.

:class:`StoredItems` is the contract :func:`monitor.match.cli_backtest.run_backtest` reads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Protocol

from monitor.bus.embedded import EmbeddedLog
from monitor.bus.log import Output
from monitor.match.features import (
    FEATURES_SCHEMA,
    FeatureChunk,
    ItemFeatures,
    encode_features,
    items_features,
)
from monitor.match.semantic import DIMENSIONS, Embedder
from monitor.model import Item, Match, decode_item, encode_match
from monitor.store import Database

CHUNK_ITEMS = 2_000  # a chunk's joined payloads (4 MB) stay in the cache: a third less CPU
_SCHEMA_BYTE = bytes([FEATURES_SCHEMA])
MMAP_BYTES = 1 << 34  # a quarter less CPU reading a million stored features than read()
EMBED_BATCH = 32


class StoredItems(Protocol):
    """Blocks on the state file or the broker; BusError when the broker cannot be read."""

    def count(self, since: float) -> int:
        """How many items ``chunks`` will go over (at most; for a progress bar)."""
        ...

    def chunks(self, since: float) -> Iterator[FeatureChunk]:
        """Features of the stored items seen since ``since`` (unix seconds) or a little
        before, computing those missing."""
        ...

    def items_of(self, features: Sequence[ItemFeatures]) -> Mapping[str, Item]:
        """feature_id -> item, for those still stored."""
        ...

    def refeature(self, items: Sequence[Item]) -> list[ItemFeatures]: ...

    def apply(self, matches: Sequence[Match]) -> int:
        """Record ``matches`` on the match log unless already there (by match id); how many
        were new."""
        ...

    def close(self) -> None: ...


class EmbeddedStoredItems:
    """See the module doc; the database is the caller's to close."""

    def __init__(self, database: Database, embedder: Embedder | None,
                 chunk_items: int = CHUNK_ITEMS) -> None:
        self._db, self._embedder, self._chunk = database, embedder, chunk_items
        self._features = EmbeddedLog(database, "features")
        self._matches = EmbeddedLog(database, "matches")
        self._missing_since: tuple[float, list[Item]] | None = None
        with database.transaction() as conn:  # features read through the OS page cache
            conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")

    def count(self, since: float) -> int:
        with self._db.transaction() as conn:
            (stored,) = conn.execute("SELECT COUNT(*) FROM item_features").fetchone()
        return int(stored) + len(self._missing(since))

    def chunks(self, since: float) -> Iterator[FeatureChunk]:
        last = self._features.last_seq()  # what is computed below is yielded from here
        yield from self._computed(self._missing(since))
        after = 0
        while after < last and (rows := self._features.payloads_after(after, self._chunk)):
            after = rows[-1][0]
            if after > last:
                rows = [row for row in rows if row[0] <= last]
            payloads = list(map(itemgetter(1), rows))
            firsts = b"".join(map(itemgetter(slice(0, 1)), payloads))  # each one's schema
            if firsts.count(FEATURES_SCHEMA) == len(payloads):  # all current: the common case
                current, stale = payloads, []
            else:
                current = [p for p in payloads if p[:1] == _SCHEMA_BYTE]
                stale = [seq for seq, p in rows if p[:1] != _SCHEMA_BYTE]
            if current:
                yield FeatureChunk.of(current, DIMENSIONS)
            if stale:  # kept by another version of the features: computed afresh
                yield from self._computed(self._items_at(stale))

    def items_of(self, features: Sequence[ItemFeatures]) -> dict[str, Item]:
        found: dict[str, Item] = {}
        with self._db.transaction() as conn:
            for wanted in features:
                row = conn.execute("SELECT payload FROM item_log WHERE item_id = ? AND "
                                   "content_hash = ?",
                                   (wanted.item_id, wanted.content_hash)).fetchone()
                if row is not None:
                    found[wanted.feature_id] = decode_item(bytes(row[0]))
        return found

    def refeature(self, items: Sequence[Item]) -> list[ItemFeatures]:
        return items_features(items, self._embedder)

    def apply(self, matches: Sequence[Match]) -> int:
        before = self._matches.count()
        with self._db.transaction() as conn:
            self._matches.append(conn, [Output("matches", m.claim_id.encode(), encode_match(m),
                                               m.match_id) for m in matches], time.time())
        self._matches.appended.set()
        return self._matches.count() - before

    def close(self) -> None:
        """The database is the caller's."""

    def _missing(self, since: float) -> list[Item]:
        """Items of the item log without features (logged before features were kept); read
        once per backtest."""
        if self._missing_since is None or self._missing_since[0] != since:
            with self._db.transaction() as conn:
                rows = conn.execute(
                    "SELECT i.payload FROM item_log i LEFT JOIN item_features f ON "
                    "f.feature_id = i.item_id || char(31) || i.content_hash "
                    "WHERE i.logged_at >= ? AND f.seq IS NULL ORDER BY i.seq",
                    (since,)).fetchall()
            self._missing_since = (since, [decode_item(bytes(p)) for (p,) in rows])
        return self._missing_since[1]

    def _items_at(self, seqs: Sequence[int]) -> list[Item]:
        """The items whose features are at these sequence numbers."""
        with self._db.transaction() as conn:
            rows = [conn.execute("SELECT i.payload FROM item_features f JOIN item_log i ON "
                                 "f.feature_id = i.item_id || char(31) || i.content_hash "
                                 "WHERE f.seq = ?", (seq,)).fetchone() for seq in seqs]
        return [decode_item(bytes(row[0])) for row in rows if row is not None]

    def _computed(self, items: Sequence[Item]) -> Iterator[FeatureChunk]:
        for start in range(0, len(items), EMBED_BATCH):
            features = self.refeature(items[start:start + EMBED_BATCH])
            outputs = [Output("features", f.item_id.encode(), encode_features(f), f.feature_id)
                       for f in features]
            with self._db.transaction() as conn:
                self._features.append(conn, outputs, time.time())
            yield FeatureChunk.of([o.value for o in outputs], DIMENSIONS)

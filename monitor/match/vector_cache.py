"""The per-machine store of sentence vectors, keyed by a digest of what the model read.

Claims (e5 "passage" texts) are kept without a bound: a claim set is embedded once per machine,
and its vectors must survive however many items pass. Items (e5 "query" texts) are kept up to
``items_kept``, the oldest written leaving first: a batch redelivered after a crash, a second
version of an item whose text did not change, a second matcher on the machine or a rematch then
reads the vector instead of running the model again. An item vector is 1.5 KiB (float32, as
the model gave it), so the default bound of 100,000 holds ~160 MB on disk.

The two roles live in two tables so that pruning items can never drop a claim's vector.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
ITEMS_KEPT = 100_000
_TABLES = {True: "vectors", False: "item_vectors"}  # passage (claims), query (items)
_CHUNK = 500  # digests per SELECT: under SQLite's bound on host parameters


class VectorStore:
    """Vectors by digest in one SQLite file, shared by the processes of a machine.

    Thread-safe; every call may block on the file (another process writing) for up to
    SQLite's busy timeout and raise ``sqlite3.Error`` when the file is unusable.
    """

    def __init__(self, path: Path, items_kept: int = ITEMS_KEPT) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._items_kept = items_kept
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False)
        with self._db:
            for table in _TABLES.values():
                self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} "
                                 "(digest BLOB PRIMARY KEY, vector BLOB NOT NULL)")

    def load(self, digests: Sequence[bytes], passage: bool) -> dict[bytes, Vectors]:
        """The stored vectors of those digests that are stored."""
        found = self._select(_TABLES[passage], digests)
        if not passage and len(found) < len(digests):
            # Item vectors written before items had their own table (evaluations cached
            # headlines with the claims): still theirs, the digest names the role.
            found.update(self._select(_TABLES[True], [d for d in digests if d not in found]))
        return found

    def _select(self, table: str, digests: Sequence[bytes]) -> dict[bytes, Vectors]:
        found: dict[bytes, Vectors] = {}
        with self._lock:
            for start in range(0, len(digests), _CHUNK):
                chunk = digests[start:start + _CHUNK]
                rows = self._db.execute(
                    f"SELECT digest, vector FROM {table} WHERE digest IN "
                    f"({','.join('?' * len(chunk))})", chunk).fetchall()
                for digest, blob in rows:
                    found[bytes(digest)] = np.frombuffer(blob, dtype=np.float32)
        return found

    def store(self, vectors: Mapping[bytes, Vectors], passage: bool) -> None:
        """Write the vectors; for items, then drop the oldest beyond ``items_kept``."""
        table = _TABLES[passage]
        with self._lock, self._db:
            self._db.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?)",
                                 [(d, v.astype(np.float32).tobytes())
                                  for d, v in vectors.items()])
            if not passage:
                # Row ids grow with every write (a replaced row gets a new one), so the
                # newest ``items_kept`` writes are the ids within that distance of the last.
                self._db.execute(f"DELETE FROM {table} WHERE rowid <= "
                                 f"(SELECT MAX(rowid) FROM {table}) - ?", (self._items_kept,))

    def count(self, passage: bool) -> int:
        with self._lock:
            row = self._db.execute(f"SELECT COUNT(*) FROM {_TABLES[passage]}").fetchone()
        return int(row[0])

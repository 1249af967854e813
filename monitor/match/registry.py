"""The live set of tracked claims: claims.yaml, re-read when it changes, never left broken.

A change to the file is picked up on the next ``refresh()`` (the stages call it between
batches). An invalid new version is logged once with the file, entry and field, and the claims
that were loaded before stay in force.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from monitor.config.claims import ClaimConfig, load_claims
from monitor.errors import ConfigError
from monitor.match.index import ClaimIndex
from monitor.match.semantic import Embedder

log = logging.getLogger(__name__)


class ClaimRegistry:
    """Holds the current ClaimIndex; ``index`` is safe to read from any thread."""

    def __init__(self, path: Path, embedder: Embedder | None = None) -> None:
        self.path = path
        self._embedder = embedder  # claims are embedded at each load (cached by text)
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()
        self._rejected_stamp: tuple[int, int] | None = None
        # At start an invalid file is fatal.
        self.index = ClaimIndex(load_claims(path), embedder)

    def _file_stamp(self) -> tuple[int, int]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return (0, 0)
        return (stat.st_mtime_ns, stat.st_size)

    def refresh(self) -> bool:
        """Reload if the file changed; True when new claims took effect."""
        stamp = self._file_stamp()
        if stamp == self._stamp or stamp == self._rejected_stamp:
            return False
        with self._lock:
            if self._file_stamp() == self._stamp:  # another stage of this process reloaded it
                return False
            try:
                index = ClaimIndex(load_claims(self.path), self._embedder)
            except ConfigError as exc:
                self._rejected_stamp = stamp
                log.error("claims: keeping the %d claims loaded before; the new file is "
                          "invalid: %s", len(self.index), exc)
                return False
            self.index, self._stamp, self._rejected_stamp = index, stamp, None
        log.info("claims: reloaded %s, %d claims", self.path, len(index))
        return True

    def current(self) -> dict[str, ClaimConfig]:
        """The current claims by id, reloaded first if the file changed (the alert stage
        renders and routes with them)."""
        self.refresh()
        return {prepared.claim.id: prepared.claim for prepared in self.index.claims}

    def tracked(self) -> int:
        return sum(1 for prepared in self.index.claims if prepared.claim.status == "tracking")

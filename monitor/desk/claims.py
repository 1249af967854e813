"""The claims a desk of its own (``monitor desk``) shows: claims.yaml, re-read when it changes.

The desk lists and renders claims; it does not match them, so it reads the file alone instead
of building the match stage's index (seconds: the word forms of every language). A process
that matches or alerts passes its :class:`monitor.match.registry.ClaimRegistry` instead.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from monitor.config.claims import ClaimConfig, load_claims
from monitor.errors import ConfigError

log = logging.getLogger(__name__)


class ClaimsOnFile:
    """``current()`` gives the claims by id; an invalid file stops start-up, an invalid new
    version later is logged once and the claims read before stay. Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp = _stamp(path)
        self._claims = _by_id(load_claims(path))

    def current(self) -> dict[str, ClaimConfig]:
        stamp = _stamp(self.path)
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:  # not re-read by another request meanwhile
                    self._reload(stamp)
        return dict(self._claims)

    def _reload(self, stamp: tuple[int, int]) -> None:
        self._stamp = stamp  # a version that is invalid is said once, not per request
        try:
            self._claims = _by_id(load_claims(self.path))
        except ConfigError as exc:
            log.error("desk: keeping the %d claims read before; the new file is invalid: %s",
                      len(self._claims), exc)
            return
        log.info("desk: reloaded %s, %d claims", self.path, len(self._claims))


def _stamp(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


def _by_id(claims: tuple[ClaimConfig, ...]) -> dict[str, ClaimConfig]:
    return {claim.id: claim for claim in claims}

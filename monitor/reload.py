"""Configuration reload on SIGHUP or when a file changes, never into a broken state.

``ConfigWatcher.check()`` (called about once a second by a service's main loop) runs the
service's ``reload`` when SIGHUP asked for it or when one of the watched files changed size or
modification time. ``reload`` validates every file before it applies anything and raises
ConfigError when one is invalid: the watcher logs that error (naming file, entry and field)
once and the configuration in force stays as it was.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from monitor.errors import ConfigError

log = logging.getLogger(__name__)

Stamp = tuple[int, int]


def _stamp(path: Path) -> Stamp:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


class ConfigWatcher:
    def __init__(self, paths: Sequence[Path], reload: Callable[[], None]) -> None:
        self._paths, self._reload = list(paths), reload
        self._stamps = [_stamp(path) for path in self._paths]
        self.requested = threading.Event()  # set by the SIGHUP handler

    def check(self) -> bool:
        """Reload if asked to or if a file changed; True when a new configuration took
        effect."""
        stamps = [_stamp(path) for path in self._paths]
        if not self.requested.is_set() and stamps == self._stamps:
            return False
        self.requested.clear()
        self._stamps = stamps  # an invalid version is reported once, not every second
        try:
            self._reload()
        except ConfigError as exc:
            log.error("reload: keeping the configuration in force; the new one is invalid: "
                      "%s", exc)
            return False
        return True

    def watch(self, stopping: threading.Event, every_seconds: float = 1.0) -> None:
        """``check`` until ``stopping``; for services whose main thread runs a stage."""
        while not stopping.wait(every_seconds):
            self.check()

"""Fakes of the project's Protocols, in one place (STYLE.md rule 19)."""

from __future__ import annotations

from collections.abc import Sequence

from monitor.bus import PublishReport
from monitor.model import Item


class FlakyPublisher:
    """An ItemPublisher that acknowledges at most ``accept`` items per call while ``failing``."""

    def __init__(self) -> None:
        self.failing = False
        self.accept = 0
        self.published: list[Item] = []

    def publish(self, items: Sequence[Item], payloads: Sequence[bytes] = ()) -> PublishReport:
        if not self.failing:
            self.published.extend(items)
            return PublishReport(tuple(items))
        taken = tuple(items[: self.accept])
        self.published.extend(taken)
        return PublishReport(taken, "fake bus: broker unavailable")

    def is_ready(self) -> bool:
        return not self.failing

    def close(self) -> None:
        pass

"""Where items go after the poller: Kafka (production) or the embedded item log (one process).

Nothing outside this package sees a Kafka record or a SQLite row of the item log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from monitor.model import Item


@dataclass(frozen=True, slots=True)
class PublishReport:
    """Which items the bus durably acknowledged; ``failure`` says why the rest were not.
    ``handed_over``: because the feed now belongs to another poller, or its partition's producer
    is being started again (not the feed's fault; said once where it happens)."""

    acknowledged: tuple[Item, ...]
    failure: str | None = None
    handed_over: bool = False


class ItemPublisher(Protocol):
    """Durable hand-off of items to the next stage.

    ``publish`` blocks until every item is acknowledged or has failed (bounded by the bus's
    delivery timeout). It does not raise for delivery failures: it reports them, so that the
    caller can mark exactly the acknowledged items as seen. ``payloads``: the items'
    ``encode_item`` bytes when they were made ahead (a parse process encodes a feed's first
    poll), else empty and the publisher encodes.
    """

    def publish(self, items: Sequence[Item], payloads: Sequence[bytes] = ()) -> PublishReport:
        ...

    def is_ready(self) -> bool: ...

    def close(self) -> None: ...

"""The match stage's core step, shared by embedded and Kafka mode: one item in, matches out,
counted and timed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, date, datetime

from monitor.match.matcher import match_item
from monitor.match.registry import ClaimRegistry
from monitor.match.reprints import ReprintTracker
from monitor.metrics import Metrics
from monitor.model import Item, Match

log = logging.getLogger(__name__)


def utc_today() -> date:
    return datetime.now(UTC).date()


class MatchProcessor:
    """Matches items against the registry's current claims, refreshing them between batches."""

    def __init__(self, registry: ClaimRegistry, metrics: Metrics,
                 today: Callable[[], date] = utc_today,
                 clock: Callable[[], float] = time.time) -> None:
        self._registry, self._metrics, self._today = registry, metrics, today
        self._clock = clock
        self._reprints = ReprintTracker()
        metrics.claims_tracked.set(registry.tracked())

    def refresh_claims(self) -> None:
        if self._registry.refresh():
            self._metrics.claims_tracked.set(self._registry.tracked())

    def process(self, item: Item) -> list[Match]:
        with self._metrics.match_duration.time():
            matches = match_item(item, self._registry.index, today=self._today())
        now = self._clock()
        matches = [self._reprints.mark(match, now) for match in matches]
        self._metrics.match_items.labels("matched" if matches else "unmatched").inc()
        for match in matches:
            self._metrics.matches.labels(match.relation).inc()
            self._metrics.claim_matches.labels(match.claim_id, match.relation).inc()
            reprint = match.evidence.reprint_of
            log.info("match %s %s (%.0f): %s [%s]%s", match.claim_id, match.relation,
                     match.score, item.title, match.evidence.relation_cue,
                     f" reprint of {reprint}" if reprint else "",
                     extra={"claim_id": match.claim_id, "item_id": item.item_id})
        return matches

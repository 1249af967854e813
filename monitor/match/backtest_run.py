"""``monitor claims backtest``: a claim over the stored items of this deployment, either mode.

Builds the claim index from claims.yaml as the match stage does (with the same embedder, so
claim vectors come from the per-machine cache), picks the stored items of the mode
(:mod:`monitor.match.stored`), and runs :func:`monitor.match.backtest.backtest`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from monitor.config.claims import load_claims
from monitor.config.settings import Settings
from monitor.errors import ConfigError
from monitor.match.backtest import Run, backtest, probe
from monitor.match.index import ClaimIndex
from monitor.match.semantic import build_embedder
from monitor.match.stored import EmbeddedStoredItems, StoredItems
from monitor.model import Match
from monitor.store import Database

_SPAN = re.compile(r"^(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
Progress = Callable[[int], Callable[[int], None]]  # total -> advance(n)


def parse_since(text: str, now: datetime) -> datetime:
    """``30d``, ``12h``, ``90m`` before ``now``, or an ISO date or time (UTC if no zone);
    ConfigError naming the option otherwise."""
    span = _SPAN.match(text.strip())
    if span:
        return now - timedelta(**{_UNITS[span.group(2)]: int(span.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ConfigError(f"--since {text!r}: not a span like 30d, 12h, 90m or an ISO date"
                          ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@contextmanager
def stored_items(settings: Settings, index: ClaimIndex) -> Iterator[StoredItems]:
    """The deployment's stored items: the state file (embedded) or the topics (Kafka)."""
    if settings.embedded:
        database = Database(settings.state_path)
        try:
            yield EmbeddedStoredItems(database, index.embedder)
        finally:
            database.close()
        return
    from monitor.match.stored_kafka import KafkaStoredItems

    stored = KafkaStoredItems(settings.kafka, index.embedder)
    try:
        yield stored
    finally:
        stored.close()


def claim_index(settings: Settings, claims_path: Path) -> ClaimIndex:
    """The index the match stage would build from ``claims_path``."""
    return ClaimIndex(load_claims(claims_path), build_embedder(settings.match))


def run_backtest(stored: StoredItems, index: ClaimIndex, claim_id: str, since: datetime,
                 progress: Progress, today: date | None = None) -> list[Match]:
    """What ``claim_id`` would have linked among the items seen since ``since``."""
    claim = probe(index, claim_id)
    start = since.timestamp()
    run = Run(index, claim, today or datetime.now(UTC).date(), start, stored.items_of,
              stored.refeature)
    advance = progress(stored.count(start))
    return backtest(run, stored.chunks(start), advance)

"""What the desk's pages, API and feeds read: the matches of every claim, kept in log order.

:class:`DeskView` is the contract between the view that follows the match log (the state
file's ``match_log`` in embedded mode, ``monitor.matches`` in Kafka mode) and what shows it.
:class:`MemoryDeskView` holds matches in memory: it is the reference for the contract and
serves one-off reads (``monitor claims timeline``) and tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from monitor.model import Match


@dataclass(frozen=True, slots=True)
class ClaimActivity:
    """What the list of claims shows of one claim without building its record.

    Counted over the latest version of each linked item (as the record shows it), news and
    background alike."""

    claim_id: str
    items: int
    by_relation: Mapping[str, int]  # relation -> linked items
    languages: frozenset[str]
    last_activity: datetime | None  # the latest item's published_at, else its fetched_at


class DeskView(Protocol):
    def matches_of(self, claim_id: str) -> list[Match]:
        """Every match of ``claim_id`` in log order (what :func:`build_record` takes)."""
        ...

    def activity(self) -> Mapping[str, ClaimActivity]:
        """claim id -> its activity, for every claim with at least one match."""
        ...


class MemoryDeskView:
    """A :class:`DeskView` over matches given in log order."""

    def __init__(self, matches: Iterable[Match] = ()) -> None:
        self._by_claim: dict[str, list[Match]] = {}
        for match in matches:
            self.add(match)

    def add(self, match: Match) -> None:
        self._by_claim.setdefault(match.claim_id, []).append(match)

    def matches_of(self, claim_id: str) -> list[Match]:
        return list(self._by_claim.get(claim_id, ()))

    def activity(self) -> dict[str, ClaimActivity]:
        return {claim_id: activity_of(claim_id, matches)
                for claim_id, matches in self._by_claim.items()}


def activity_of(claim_id: str, matches: Iterable[Match]) -> ClaimActivity:
    """The activity of one claim from its matches in log order."""
    latest: dict[str, Match] = {}
    for match in matches:
        latest[match.item.item_id] = match  # a later version replaces an earlier one
    by_relation: dict[str, int] = {}
    for match in latest.values():
        by_relation[match.relation] = by_relation.get(match.relation, 0) + 1
    moments = [m.item.published_at or m.item.fetched_at for m in latest.values()]
    return ClaimActivity(
        claim_id=claim_id, items=len(latest), by_relation=by_relation,
        languages=frozenset(m.item.language for m in latest.values() if m.item.language),
        last_activity=max(moments) if moments else None)

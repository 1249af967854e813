"""The record of one claim: what the wires linked to it, in time order. Pure: no I/O.

:func:`build_record` takes a claim and its matches in log order (as the match log holds them)
and returns a :class:`ClaimRecord`:

- one :class:`Entry` per linked item. An item re-issued with a new title or summary was
  matched again (match ids are per item version); the last version in log order is the one
  shown, because its relation is the matcher's latest word on the item.
- time order: the item's ``published_at``, else ``fetched_at`` (when the monitor saw it, a
  moment before the match was made); ties by match id, so the order is stable.
- reprints folded under their first carrier: ``Evidence.reprint_of`` names the item id of an
  earlier item of the same claim with a near-identical headline (:mod:`monitor.match.reprints`).
  A reprint of a reprint goes under the first carrier of the chain; a reprint whose carrier is
  not in the record (matched by another process, or its match lost) stands on its own.
- background apart from news: a carrier published before the claim was made
  (:meth:`ClaimConfig.predates`, the alerter's rule) and its reprints are background.
- about the news only: distinct outlets per relation (reprints count: each outlet carrying the
  story is one more outlet), the first report, the latest denial, the latest corroboration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from monitor.config.claims import ClaimConfig
from monitor.model import Match

RELATIONS = ("follow-up", "denial", "corroboration")


@dataclass(frozen=True, slots=True)
class Entry:
    """One linked item as the record shows it; ``reprints`` are the items that carried it
    after it, in time order (always empty on a reprint itself)."""

    match_id: str
    item_id: str
    at: datetime  # published_at, else fetched_at (then ``dated`` is False)
    dated: bool
    relation: str
    confidence: float
    uncertain: bool
    outlet: str
    language: str | None
    title: str
    link: str | None
    score: float
    quote: str
    speaker: str
    cue: str
    reprints: tuple[Entry, ...] = ()

    def with_reprints(self) -> tuple[Entry, ...]:
        return (self, *self.reprints)


@dataclass(frozen=True, slots=True)
class ClaimRecord:
    """A claim's record; ``news`` and ``background`` hold first carriers in time order."""

    claim: ClaimConfig
    news: tuple[Entry, ...]
    background: tuple[Entry, ...]
    outlets: Mapping[str, int]  # relation -> distinct outlets among the news, every relation
    first_report: Entry | None
    latest_denial: Entry | None
    latest_corroboration: Entry | None


def build_record(claim: ClaimConfig, matches: Iterable[Match]) -> ClaimRecord:
    """The record of ``claim`` from its matches in log order (other claims' are ignored)."""
    latest: dict[str, Match] = {}
    for match in matches:
        if match.claim_id == claim.id:
            latest[match.item.item_id] = match  # a later version replaces an earlier one
    carriers = _folded([entry_of(m) for m in latest.values()], _carrier_of(latest.values()))
    news = tuple(e for e in carriers if not _background(claim, latest[e.item_id]))
    background = tuple(e for e in carriers if _background(claim, latest[e.item_id]))
    reports = sorted((e for carrier in news for e in carrier.with_reprints()), key=_order)
    return ClaimRecord(
        claim=claim, news=news, background=background, outlets=_distinct_outlets(reports),
        first_report=reports[0] if reports else None,
        latest_denial=_latest(reports, "denial"),
        latest_corroboration=_latest(reports, "corroboration"))


def _background(claim: ClaimConfig, match: Match) -> bool:
    """Published before the claim was made, or linked after the fact by a backtest: the
    alerter's rule (:func:`monitor.alerting.core.is_background`)."""
    return match.evidence.backtest or claim.predates(_published(match))


def entry_of(match: Match) -> Entry:
    item, evidence = match.item, match.evidence
    return Entry(
        match_id=match.match_id, item_id=item.item_id,
        at=item.published_at or item.fetched_at, dated=item.published_at is not None,
        relation=match.relation, confidence=evidence.relation_confidence,
        uncertain=evidence.uncertain, outlet=item.source, language=item.language,
        title=item.title, link=item.url, score=match.score, quote=evidence.quote,
        speaker=evidence.speaker, cue=evidence.relation_cue)


def _published(match: Match) -> datetime | None:
    return match.item.published_at


def _order(entry: Entry) -> tuple[datetime, str]:
    return entry.at, entry.match_id


def _carrier_of(matches: Iterable[Match]) -> dict[str, str]:
    """item id -> the item id of its first carrier, for reprints whose chain ends in the
    record (followed to its start; a cycle, which the tracker never makes, is cut)."""
    pointed = {m.item.item_id: m.evidence.reprint_of for m in matches}
    roots: dict[str, str] = {}
    for item_id in pointed:
        chain, original = [item_id], pointed[item_id]
        while original is not None and original in pointed and original not in chain:
            chain.append(original)
            original = pointed[original]
        if original not in chain and len(chain) > 1:  # in a cycle, an item stands alone
            roots[item_id] = chain[-1]
    return roots


def _folded(entries: Sequence[Entry], carrier_of: Mapping[str, str]) -> list[Entry]:
    """First carriers in time order, each with its reprints in time order."""
    reprints: dict[str, list[Entry]] = {}
    for entry in entries:
        if entry.item_id in carrier_of:
            reprints.setdefault(carrier_of[entry.item_id], []).append(entry)
    return sorted((replace(e, reprints=tuple(sorted(reprints.get(e.item_id, ()), key=_order)))
                   for e in entries if e.item_id not in carrier_of), key=_order)


def _distinct_outlets(reports: Sequence[Entry]) -> dict[str, int]:
    outlets: dict[str, set[str]] = {relation: set() for relation in RELATIONS}
    for entry in reports:
        outlets.setdefault(entry.relation, set()).add(entry.outlet)
    return {relation: len(found) for relation, found in outlets.items()}


def _latest(reports: Sequence[Entry], relation: str) -> Entry | None:
    return next((e for e in reversed(reports) if e.relation == relation), None)

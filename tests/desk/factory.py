"""Matches of one claim as the match stage would write them, for the desk's tests."""

from __future__ import annotations

from datetime import UTC, date, datetime

from monitor.config.claims import ClaimConfig
from monitor.model import Evidence, Item, Match

CLAIM = ClaimConfig(id="generals-2022", text="Lukashenko says Ukrainian generals asked him",
                    made_at=date(2026, 11, 20))
FETCHED = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def match(item_id: str, *, outlet: str = "TASS", relation: str = "follow-up",
          published: datetime | None = None, title: str = "", reprint_of: str | None = None,
          uncertain: bool = False, version: str = "v1", claim_id: str = CLAIM.id,
          quote: str = "") -> Match:
    item = Item(item_id=item_id, feed_id=f"{outlet.lower()}-feed", source=outlet,
                url=f"https://{outlet.lower()}.example/{item_id}", guid=None,
                title=title or f"Story {item_id}", summary="", language="ru",
                published_at=published, fetched_at=FETCHED, content_hash=version)
    evidence = Evidence(matched_terms=("lukashenko",), compared_with="ru",
                        relation_cue="denies" if relation == "denial" else "",
                        relation_confidence=0.8, reprint_of=reprint_of, uncertain=uncertain,
                        quote=quote, speaker="Peskov" if quote else "")
    return Match(match_id=f"{claim_id}-{item_id}-{version}", claim_id=claim_id, item=item,
                 score=77.0, relation=relation, evidence=evidence, matcher_version="test")


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)

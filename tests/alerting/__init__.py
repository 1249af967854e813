"""Tests of monitor/alerting; ``make_match`` builds the match the alerting core looks at."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.model import Evidence, Item, Match


def make_match(claim_id: str = "lukashenko-generals-2022", relation: str = "follow-up",
               score: float = 75.0, source: str = "Reuters",
               language: str | None = "en") -> Match:
    moment = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
    item = Item(item_id="i1", feed_id="feed", source=source, url="https://example.org/a",
                guid=None, title="Title", summary="Summary", language=language,
                published_at=moment, fetched_at=moment, content_hash="h1")
    evidence = Evidence(("Lukashenko",), "en", "cue", 0.9)
    return Match(match_id="m1", claim_id=claim_id, item=item, score=score, relation=relation,
                 evidence=evidence, matcher_version="test")

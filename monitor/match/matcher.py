"""The matcher core: a pure function of (item, claims) -> matches.

Candidates come from the claim index, each is scored (keyword groups, excludes, text overlap),
those at or over their claim's threshold are linked, and each link gets a relation with the cue
that decided it. No Kafka, HTTP or clock here: ``today`` is passed in.
"""

from __future__ import annotations

import hashlib
from datetime import date

from monitor.match.index import ClaimIndex, PreparedClaim
from monitor.match.score import ItemText, Score, score_claim
from monitor.match.stance import decide_relation
from monitor.match.text import keys
from monitor.model import Evidence, Item, Match

MATCHER_VERSION = "match-0.1"


def item_text(item: Item) -> ItemText:
    title_keys = tuple(keys(item.title, item.language))
    return ItemText(title_keys, title_keys + tuple(keys(item.summary, item.language)),
                    item.language)


def match_id_for(claim_id: str, item: Item) -> str:
    """Stable per claim, item and version: the same version never makes two matches."""
    raw = f"{claim_id}\x1f{item.item_id}\x1f{item.content_hash}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def match_item(item: Item, index: ClaimIndex, *, today: date) -> list[Match]:
    """Every tracked claim the item is about, best score first."""
    text = item_text(item)
    scored: list[tuple[PreparedClaim, Score]] = []
    for position in index.candidates(text.all_keys):
        prepared = index.claims[position]
        if not prepared.claim.is_active(today):
            continue
        score = score_claim(prepared, text, index.weight)
        if score is not None and score.value >= prepared.claim.threshold:
            scored.append((prepared, score))
    scored.sort(key=lambda pair: (-pair[1].value, pair[0].claim.id))
    return [_link(item, prepared, score) for prepared, score in scored]


def _link(item: Item, prepared: PreparedClaim, score: Score) -> Match:
    claim = prepared.claim
    claim_text = claim.texts.get(item.language or "", claim.text)
    decision = decide_relation(claim_text, item.title, item.summary, language=item.language,
                               claim_speaker=claim.speaker)
    return Match(
        match_id=match_id_for(claim.id, item), claim_id=claim.id, item=item,
        score=score.value, relation=decision.relation,
        evidence=Evidence(
            matched_terms=score.matched_terms, compared_with=score.compared_with,
            relation_cue=decision.cue, relation_confidence=round(decision.confidence, 3),
        ),
        matcher_version=MATCHER_VERSION,
    )

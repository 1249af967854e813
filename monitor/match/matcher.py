"""The matcher core: a pure function of (item, claims) -> matches.

Candidates come from the claim index, each is scored (keyword groups, excludes, text overlap),
those at or over their claim's threshold are linked, and each link gets a relation with the cue
that decided it. No Kafka, HTTP or clock here: ``today`` is passed in.

When the index holds sentence vectors (``ClaimIndex(..., embedder)``), every item is embedded
once; its closest claims by meaning join the candidates (so a Russian item finds an English
claim it shares no word with) and every candidate's score becomes a blend of meaning and words
(see :func:`blend`). The model's time per item does not depend on the number of claims; it
is most of the matcher's time (bench/README.md has the figures; MONITOR_MATCH__SEMANTIC=false
matches on words alone at ~50-100x the throughput).
"""

from __future__ import annotations

import hashlib
from collections.abc import Container
from dataclasses import replace
from datetime import date
from urllib.parse import urlsplit

import numpy as np

from monitor.match.features import ItemFeatures, item_features, semantic_text
from monitor.match.index import ClaimIndex, PreparedClaim
from monitor.match.reach import reachable
from monitor.match.score import ItemText, Score, score_claim
from monitor.match.semantic import Cosines, Vectors
from monitor.match.stance import decide_relation
from monitor.match.text import keys, mostly_cyrillic
from monitor.model import Evidence, Item, Match

# 0.6: the onnx engine (int8, per-token scales) is the default; 0.7: its builder 6 (every
# product int8 but q/k/v, onnxruntime's attention op): vectors move by up to ~1e-3 in cosine.
MATCHER_VERSION = "match-0.7"

# Tuned on Emergent, ParaPhraser and FNC-1 together (bench/README.md): e5 query-passage
# cosines of an item and a claim about other things sit around 0.78-0.83, of one about the
# claim around 0.84-0.90; 0.76-0.91 is stretched over 0-100 and weighted about 2:1 against
# the words.
SEMANTIC_NEIGHBOURS = 5
MEANING_FLOOR, MEANING_FULL = 0.76, 0.91
LEXICAL_SHARE = 0.35


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
    embedder = index.embedder if index.vectors is not None else None
    return match_features(item, item_features(item, embedder), index, today=today)


def match_features(item: Item, features: ItemFeatures, index: ClaimIndex, *, today: date,
                   only: Container[int] | None = None, cosines: Cosines | None = None
                   ) -> list[Match]:
    """:func:`match_item` with the item's features already computed (the stage keeps them;
    a backtest reads them back). ``only``: the claim positions that may be linked; the
    others still count as the item's nearest claims, as they do in :func:`match_item`.
    ``cosines``: the features' vector against every claim, computed with its batch's
    (:class:`monitor.match.semantic.BatchCosines`)."""
    vector, meaning_text = None, ""  # what the model reads: only with vectors
    if index.vectors is not None:
        vector, meaning_text = features.vector32(), semantic_text(item.title, item.summary)
    scored = scored_candidates(index, features.text(item.language), meaning_text, today=today,
                               vector=vector, only=only, linkable_only=True, cosines=cosines)
    return [_link(item, index, index.claims[position], score, vector)
            for position, score in scored
            if score.value >= index.claims[position].claim.threshold]


def scored_candidates(index: ClaimIndex, text: ItemText, meaning_text: str,
                      today: date | None = None, vector: Vectors | None = None,
                      only: Container[int] | None = None, linkable_only: bool = False,
                      cosines: Cosines | None = None) -> list[tuple[int, Score]]:
    """(claim position, score) of every candidate that passes its keyword groups and
    excludes, best first; claims inactive on ``today``, and those not in ``only`` when it is
    given, are left out. ``vector`` is ``meaning_text`` already embedded (evaluations embed
    in batches) and ``cosines`` its cosine with every claim (the stage compares a batch at
    once). ``linkable_only``: on words alone, a candidate sure to score under its threshold
    may be left out unscored (:mod:`monitor.match.reach`)."""
    scores: dict[int, Score] = {}

    def consider(position: int) -> None:
        prepared = index.claims[position]
        if position in scores or (today is not None and not prepared.claim.is_active(today)):
            return
        if only is not None and position not in only:
            return
        score = score_claim(prepared, text, index.weight)
        if score is not None:
            scores[position] = score

    positions = index.candidates(text.all_keys)
    if linkable_only and index.vectors is None:  # meaning can lift any score
        positions = reachable(index.claims, positions, text, index.weight)
    for position in positions:
        consider(position)
    if index.vectors is not None and index.embedder is not None:
        if cosines is None:
            if vector is None:
                vector = index.embedder.embed_cached([meaning_text])[0]
            cosines = index.vectors.similarity(vector)
        nearest = np.argpartition(-cosines, min(SEMANTIC_NEIGHBOURS, len(cosines) - 1))
        for position in nearest[:SEMANTIC_NEIGHBOURS]:
            consider(int(position))
        cyrillic = mostly_cyrillic(meaning_text)
        scores = {p: blend(score, float(cosines[p]),
                           words_comparable=score.compared_with != "main"
                           or index.claims[p].cyrillic == cyrillic)
                  for p, score in scores.items()}
    return sorted(scores.items(), key=lambda pair: (-pair[1].value, index.claims[pair[0]].claim.id))


def blend(lexical: Score, cosine: float, words_comparable: bool = True) -> Score:
    """The lexical score and the meaning (cosine) on one 0-100 scale.

    When the item and the claim text it was compared with are in different scripts (a
    Russian item, a claim with no Russian text), few words can match, so meaning alone counts.
    """
    meaning = 100 * min(1.0, max(0.0, (cosine - MEANING_FLOOR) / (MEANING_FULL - MEANING_FLOOR)))
    value = LEXICAL_SHARE * lexical.value + (1 - LEXICAL_SHARE) * meaning
    if not words_comparable:
        value = max(value, meaning)
    return replace(lexical, value=round(value, 2), meaning=round(cosine, 4))


def same_outlet(url: str | None, other: str | None) -> bool:
    """Both URLs on one outlet's site: the same host, ignoring www./m. and subdomains of it."""
    hosts = [_site(u) for u in (url, other)]
    if not hosts[0] or not hosts[1]:
        return False
    a, b = hosts
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def _site(url: str | None) -> str:
    host = (urlsplit(url).hostname or "") if url else ""
    return host.removeprefix("www.").removeprefix("m.")


def _link(item: Item, index: ClaimIndex, prepared: PreparedClaim, score: Score,
          item_vector: Vectors | None) -> Match:
    claim = prepared.claim
    claim_text = claim.texts.get(item.language or "", claim.text)
    claim_vector = None
    if item_vector is not None and index.embedder is not None:
        # Claim texts were embedded when the index was built: this is a cache lookup.
        claim_vector = index.embedder.embed_cached([claim_text], passage=True)[0]
    decision = decide_relation(claim_text, item.title, item.summary, language=item.language,
                               claim_speaker=claim.speaker, claim_subject=claim.subject,
                               claim_vector=claim_vector, item_vector=item_vector)
    if decision.relation == "corroboration" and same_outlet(item.url, claim.source_url):
        # Corroboration needs a second, independent source: the claim's own outlet confirming
        # what it first reported is a follow-up.
        decision = replace(decision, relation="follow-up",
                           cue=f"{decision.cue}; but from the claim's own outlet")
    return Match(
        match_id=match_id_for(claim.id, item), claim_id=claim.id, item=item,
        score=score.value, relation=decision.relation,
        evidence=Evidence(
            matched_terms=score.matched_terms, compared_with=score.compared_with,
            relation_cue=decision.cue, relation_confidence=round(decision.confidence, 3),
            meaning=score.meaning, uncertain=decision.uncertain, quote=decision.quote,
            speaker=decision.speaker,
        ),
        matcher_version=MATCHER_VERSION,
    )

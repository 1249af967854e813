"""Score one candidate claim against one item: keyword groups, excludes, text overlap.

The score (0-100) blends how much of the claim the item covers and how much of the item's
headline is about the claim (word keys matched exactly or by prefix), with rapidfuzz's
token-sort ratio of the two normalized texts, which rewards near-verbatim reprints.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz

from monitor.match.index import PreparedClaim, bucket, keys_match, term_hit

Weight = Callable[[str], float]
KEYWORD_FLOOR = 30.0  # an item that satisfies every keyword group starts here
OVERLAP_WEIGHT = 0.85


@dataclass(frozen=True, slots=True)
class ItemText:
    """An item's text, normalized once and shared by every candidate claim."""

    title_keys: tuple[str, ...]
    all_keys: tuple[str, ...]
    language: str | None

    @property
    def title(self) -> str:
        return " ".join(self.title_keys)


@dataclass(frozen=True, slots=True)
class Score:
    value: float
    matched_terms: tuple[str, ...]
    compared_with: str


def score_claim(prepared: PreparedClaim, item: ItemText, weight: Weight) -> Score | None:
    """The link score, or None when an exclude term hits or a keyword group is missed."""
    if any(term_hit(term, item.all_keys) for term in prepared.excludes):
        return None
    matched: list[str] = []
    for group in prepared.groups:
        hit = next((term.text for term in group if term_hit(term, item.all_keys)), None)
        if hit is None:
            return None
        matched.append(hit)
    language = item.language if item.language in prepared.texts else ""
    claim_keys = prepared.texts[language].split()
    similarity = _similarity(claim_keys, item, weight)
    if prepared.groups:
        value = KEYWORD_FLOOR + (100 - KEYWORD_FLOOR) * similarity
    else:
        value = 100 * similarity
        matched.extend(_shared(claim_keys, item.title_keys))
    return Score(round(value, 2), tuple(dict.fromkeys(matched)), language or "main")


def _similarity(claim_keys: Sequence[str], item: ItemText, weight: Weight) -> float:
    """0-1: the harmonic mean of claim coverage and headline coverage (each weighted by how
    rare a key is), blended with rapidfuzz's token-sort ratio."""
    if not claim_keys or not item.all_keys:
        return 0.0
    claim_cover = _covered(claim_keys, item.all_keys, weight)
    title_keys = item.title_keys or item.all_keys
    title_cover = _covered(title_keys, claim_keys, weight)
    overlap = 0.0
    if claim_cover and title_cover:
        overlap = 2 * claim_cover * title_cover / (claim_cover + title_cover)
    verbatim = fuzz.token_sort_ratio(" ".join(claim_keys), " ".join(title_keys)) / 100
    return OVERLAP_WEIGHT * overlap + (1 - OVERLAP_WEIGHT) * verbatim


def _covered(wanted: Sequence[str], present: Sequence[str], weight: Weight) -> float:
    """The weighted share (0-1) of distinct ``wanted`` keys that have a match in ``present``."""
    by_bucket: dict[str, list[str]] = defaultdict(list)
    for key in set(present):
        by_bucket[bucket(key)].append(key)
    total = found = 0.0
    for key in set(wanted):
        share = weight(key)
        total += share
        if any(keys_match(candidate, key) for candidate in by_bucket.get(bucket(key), ())):
            found += share
    return found / total if total else 0.0


def _shared(claim_keys: Sequence[str], title_keys: Sequence[str]) -> list[str]:
    claim = set(claim_keys)
    return [key for key in dict.fromkeys(title_keys) if key in claim][:8]

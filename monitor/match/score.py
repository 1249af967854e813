"""Score one candidate claim against one item: keyword groups, excludes, text overlap.

The score (0-100) blends how much of the claim the item covers and how much of the item's
headline is about the claim (word keys matched exactly or by prefix), with rapidfuzz's
token-sort ratio of the two normalized texts, which rewards near-verbatim reprints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz

from monitor.match.index import PREFIX_CHARS, PreparedClaim, bucketed, keys_match, term_hit

Weight = Callable[[str], float]
Weighted = tuple[tuple[tuple[str, float], ...], float]  # (key, weight) in set order, the total
KEYWORD_FLOOR = 30.0  # an item that satisfies every keyword group starts here
OVERLAP_WEIGHT = 0.85


@dataclass(frozen=True, slots=True)
class ItemText:
    """An item's text, normalized once and shared by every candidate claim."""

    title_keys: tuple[str, ...]
    all_keys: tuple[str, ...]
    language: str | None
    title_set: frozenset[str] = field(init=False)
    all_set: frozenset[str] = field(init=False)
    all_buckets: dict[str, tuple[str, ...]] = field(init=False)
    title_buckets: dict[str, tuple[str, ...]] = field(init=False)
    # The title keys with their weights, once per item (see :func:`weighted`).
    title_weighted: dict[str, Weighted] = field(init=False, compare=False, repr=False)
    # The title keys' weight per key bucket, and in all (:mod:`monitor.match.reach`).
    title_bucket_weights: dict[str, tuple[dict[str, float], float]] = field(
        init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "title_set", frozenset(self.title_keys or self.all_keys))
        object.__setattr__(self, "all_set", frozenset(self.all_keys))
        object.__setattr__(self, "all_buckets", bucketed(self.all_keys))
        object.__setattr__(self, "title_buckets", self.all_buckets
                           if self.title_set == self.all_set else bucketed(self.title_set))
        object.__setattr__(self, "title_weighted", {})
        object.__setattr__(self, "title_bucket_weights", {})


@dataclass(frozen=True, slots=True)
class Score:
    value: float
    matched_terms: tuple[str, ...]
    compared_with: str
    meaning: float | None = None  # cosine of the sentence vectors, when they were compared


def score_claim(prepared: PreparedClaim, item: ItemText, weight: Weight) -> Score | None:
    """The link score, or None when an exclude term hits or a keyword group is missed."""
    present, buckets = item.all_set, item.all_buckets
    for term in prepared.excludes:
        if term_hit(term, present, buckets):
            return None
    matched: list[str] = []
    for group in prepared.groups:
        for term in group:
            if term_hit(term, present, buckets):
                matched.append(term.text)
                break
        else:
            return None
    language = item.language if item.language in prepared.texts else ""
    similarity = _similarity(prepared, language, item, weight)
    if prepared.groups:
        value = KEYWORD_FLOOR + (100 - KEYWORD_FLOOR) * similarity
    else:
        value = 100 * similarity
        matched.extend(_shared(prepared.key_sets[language], item.title_keys))
    return Score(round(value, 2), tuple(dict.fromkeys(matched)), language or "main")


def _similarity(prepared: PreparedClaim, language: str, item: ItemText, weight: Weight
                ) -> float:
    """0-1: the harmonic mean of claim coverage and headline coverage (each weighted by how
    rare a key is), blended with rapidfuzz's token-sort ratio."""
    claim_keys = prepared.key_sets[language]
    if not claim_keys or not item.all_set:
        return 0.0
    claim_buckets = prepared.buckets[language]
    if language not in prepared.weighted:
        prepared.weighted[language] = weighted(claim_keys, weight)
    claim_cover = _covered(prepared.weighted[language],
                           _matched(claim_buckets, claim_keys, item.all_set, item.all_buckets))
    if "" not in item.title_weighted:
        item.title_weighted[""] = weighted(item.title_set, weight)
    title_cover = _covered(item.title_weighted[""],
                           _matched(item.title_buckets, item.title_set, claim_keys,
                                    claim_buckets))
    overlap = 0.0
    if claim_cover and title_cover:
        overlap = 2 * claim_cover * title_cover / (claim_cover + title_cover)
    verbatim = fuzz.token_sort_ratio(prepared.texts[language],
                                     " ".join(item.title_keys or item.all_keys)) / 100
    headline = OVERLAP_WEIGHT * overlap + (1 - OVERLAP_WEIGHT) * verbatim
    if len(item.all_set) > len(item.title_set):
        # With a body, the headline may be about the claim in other words; how much of the
        # claim the whole text covers decides then (FNC-1: 0.94 relatedness accuracy alone).
        return max(headline, claim_cover)
    return headline


def weighted(keys_: frozenset[str], weight: Weight) -> Weighted:
    """The keys with their weights, in the set's order, and their total (summed in that
    order: the figures do not depend on where they were computed)."""
    pairs = tuple((key, weight(key)) for key in keys_)
    total = 0.0
    for _, share in pairs:
        total += share
    return pairs, total


def _covered(wanted: Weighted, hits: set[str]) -> float:
    """The weighted share (0-1) of the wanted keys that are ``hits``."""
    pairs, total = wanted
    found = 0.0
    for key, share in pairs:
        if key in hits:
            found += share
    return found / total if total else 0.0


def _matched(wanted_buckets: dict[str, tuple[str, ...]], wanted: frozenset[str],
             present: frozenset[str], present_buckets: dict[str, tuple[str, ...]]
             ) -> set[str]:
    """The wanted keys that have a match in ``present``: the same key, or one sharing its
    bucket that :func:`keys_match` accepts. Set operations do the bulk; keys are compared one
    by one only within buckets both sides have."""
    hits = set(wanted & present)
    for prefix in wanted_buckets.keys() & present_buckets.keys():
        others = present_buckets[prefix]
        for key in wanted_buckets[prefix]:
            if key not in hits and len(key) >= PREFIX_CHARS and any(
                    keys_match(other, key) for other in others):
                hits.add(key)
    return hits


def _shared(claim_keys: frozenset[str], title_keys: Sequence[str]) -> list[str]:
    return [key for key in dict.fromkeys(title_keys) if key in claim_keys][:8]

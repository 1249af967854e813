"""Backtest: what a claim would have linked among the items already stored.

A pure core over stored :class:`~monitor.match.features.FeatureChunk`s. Per chunk, array
arithmetic rules out every item that cannot reach the claim's threshold (:func:`could_link`:
no key bucket shared with the claim, and a meaning too far for the words to make up); the few
left get the matcher's full decision (:func:`monitor.match.matcher.match_features`, with the
other claims of the index still counting as the item's nearest), so a backtest links exactly
what the matcher would have, with the same relation, score and match id.

The bound, from :mod:`monitor.match.score` and :func:`monitor.match.matcher.blend`: without a
shared key bucket for each of its keyword groups, a claim with groups cannot be satisfied; a
claim without them and without a shared bucket scores at most the token-sort share of the
words (15 of 100); with vectors, the blend is at most ``max(0.35 * lexical + 0.65 * meaning,
meaning)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date

import numpy as np
import numpy.typing as npt

from monitor.errors import ConfigError
from monitor.match.features import FeatureChunk, ItemFeatures, bucket_hash, decode_features
from monitor.match.index import ClaimIndex, bucket
from monitor.match.matcher import (
    LEXICAL_SHARE,
    MEANING_FLOOR,
    MEANING_FULL,
    match_features,
)
from monitor.match.reprints import ReprintTracker
from monitor.match.score import OVERLAP_WEIGHT
from monitor.model import Item, Match

# Stored vectors are the ones the matcher used; the margin covers float32 summation order.
COSINE_MARGIN = 1e-4
SCORE_MARGIN = 0.01  # scores are rounded to 1e-2 before the threshold is applied
WORDS_ALONE = 100 * (1 - OVERLAP_WEIGHT)  # the most a claim without shared keys can score


@dataclass(frozen=True, slots=True)
class Probe:
    """What one claim needs to rule out stored items in bulk."""

    position: int  # in the index
    threshold: float
    needs_key: bool  # keyword groups: no link without a shared key bucket
    buckets: npt.NDArray[np.uint32]  # hashes of the buckets of every key of the claim
    groups: tuple[npt.NDArray[np.uint32], ...]  # per keyword group, its terms' bucket hashes
    vectors: npt.NDArray[np.float32] | None  # the claim's text rows, when matching by meaning
    sieve: npt.NDArray[np.bool_]  # by the low 16 bits of a hash: whether it may be in buckets


def probe(index: ClaimIndex, claim_id: str) -> Probe:
    """ConfigError when the index has no such claim."""
    position = next((n for n, p in enumerate(index.claims) if p.claim.id == claim_id), None)
    if position is None:
        raise ConfigError(f"backtest: no claim with id {claim_id!r}")
    prepared = index.claims[position]
    groups = tuple(_hashes(key for term in group for key in term.keys)
                   for group in prepared.groups)
    vectors = None
    if index.vectors is not None:
        vectors = index.vectors.matrix[index.vectors.owners == position]
    buckets = np.union1d(_hashes(prepared.text_keys),
                         np.concatenate((np.zeros(0, np.uint32), *groups)))
    return Probe(position, prepared.claim.threshold, bool(prepared.groups), buckets, groups,
                 vectors, _sieve(buckets))


def _hashes(keys: Iterable[str]) -> npt.NDArray[np.uint32]:
    return np.array(sorted({bucket_hash(bucket(k)) for k in keys}), dtype=np.uint32)


def _member(values: npt.NDArray[np.uint32], sorted_set: npt.NDArray[np.uint32]
            ) -> npt.NDArray[np.bool_]:
    """Per value, whether it is in ``sorted_set``: a binary search each, far cheaper than
    np.isin's pass over all values per member of the set."""
    if not len(sorted_set) or not len(values):
        return np.zeros(len(values), dtype=bool)
    places = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    found: npt.NDArray[np.bool_] = sorted_set[places] == values
    return found


def _sieve(hashes: npt.NDArray[np.uint32]) -> npt.NDArray[np.bool_]:
    """A table of the hashes' low 16 bits: one lookup rules out nearly every stored hash."""
    table = np.zeros(1 << 16, dtype=bool)
    table[hashes & 0xFFFF] = True
    return table


def _shares_key(claim: Probe, chunk: FeatureChunk) -> npt.NDArray[np.bool_]:
    """Per item, whether it shares a key bucket with the claim, and with each keyword group
    (term_hit needs a key of one term of every group). The claim's sieve rules out nearly
    every stored hash with one lookup; the binary search is left for the few it passes."""
    passed = np.flatnonzero(claim.sieve[chunk.hashes.view("<u2")[::2]])  # the low halves
    hashes, owners = chunk.hashes[passed], chunk.owner[passed]
    hit = _member(hashes, claim.buckets)
    hashes, owners = hashes[hit], owners[hit]
    shares = np.zeros(len(chunk), dtype=bool)
    shares[owners] = True
    for group in claim.groups:
        in_group = np.zeros(len(chunk), dtype=bool)
        in_group[owners[_member(hashes, group)]] = True
        shares &= in_group
    return shares


def could_link(claim: Probe, chunk: FeatureChunk) -> npt.NDArray[np.bool_]:
    """Per item, whether its score for the claim can reach the threshold (an upper bound:
    every item the matcher would link is True). An item without a vector, when the claim is
    compared by meaning, is True: its vector must be computed first."""
    shares_key = _shares_key(claim, chunk)
    lexical = np.where(shares_key, 100.0, 0.0 if claim.needs_key else WORDS_ALONE)
    if claim.vectors is None:
        return lexical >= claim.threshold - SCORE_MARGIN
    if chunk.vectors is None:
        return np.ones(len(chunk), dtype=bool)
    # With keyword groups, an item sharing no key is out whatever its meaning: only the rest
    # are compared (converting the float16 rows costs more than the product).
    compared: npt.NDArray[np.intp] | slice = (np.flatnonzero(shares_key) if claim.needs_key
                                              else slice(None))
    cosines = np.full(len(chunk), -1.0, dtype=np.float32)
    cosines[compared] = (chunk.vectors[compared].astype(np.float32)
                         @ claim.vectors.T).max(axis=1) + COSINE_MARGIN
    meaning = 100 * np.clip((cosines - MEANING_FLOOR) / (MEANING_FULL - MEANING_FLOOR), 0, 1)
    best = np.maximum(LEXICAL_SHARE * lexical + (1 - LEXICAL_SHARE) * meaning, meaning)
    if claim.needs_key:
        best = np.where(shares_key, best, 0.0)
    possible: npt.NDArray[np.bool_] = (best >= claim.threshold - SCORE_MARGIN) | ~chunk.has_vector
    return possible


ItemsOf = Callable[[Sequence[ItemFeatures]], Mapping[str, Item]]  # feature_id -> the item
Refeature = Callable[[Sequence[Item]], list[ItemFeatures]]


@dataclass(frozen=True, slots=True)
class Run:
    """A backtest's inputs besides the stored chunks.

    ``items_of`` reads candidates' items back from the item log (a feature whose item is no
    longer there is skipped); ``refeature`` computes features afresh (for an item stored
    without a vector, or whose stored features are of another version).
    """

    index: ClaimIndex
    claim: Probe
    today: date
    since: float  # unix seconds: items the poller saw before are left out
    items_of: ItemsOf
    refeature: Refeature


def backtest(run: Run, chunks: Iterable[FeatureChunk],
             progress: Callable[[int], None] = lambda _n: None) -> list[Match]:
    """The matches the claim would have made, oldest item first, reprints marked as the
    matcher marks them; each marked ``backtest`` in its evidence."""
    found: list[Match] = []
    for chunk in chunks:
        chosen = np.flatnonzero(could_link(run.claim, chunk) & (chunk.fetched_at >= run.since))
        found.extend(_decide(run, [decode_features(chunk.payloads[n]) for n in chosen]))
        progress(len(chunk))
    return _as_found_in_order(found)


def _decide(run: Run, candidates: list[ItemFeatures]) -> list[Match]:
    items = run.items_of(candidates)
    present = [(f, items[f.feature_id]) for f in candidates if f.feature_id in items]
    stale = [item for f, item in present if _needs_refeature(run, f, item)]
    fresh = {f.feature_id: f for f in run.refeature(stale)} if stale else {}
    matches = []
    for features, item in present:
        features = fresh.get(features.feature_id, features)
        matches.extend(match_features(item, features, run.index, today=run.today,
                                      only=(run.claim.position,)))
    return matches


def _needs_refeature(run: Run, features: ItemFeatures, item: Item) -> bool:
    return features.content_hash != item.content_hash or (
        run.index.vectors is not None and features.vector is None)


def _as_found_in_order(matches: list[Match]) -> list[Match]:
    """Oldest first, as the matcher would have met them, with reprints marked."""
    ordered = sorted(matches, key=lambda m: (m.item.fetched_at, m.item.item_id))
    reprints = ReprintTracker()
    return [replace(marked, evidence=replace(marked.evidence, backtest=True))
            for marked in (reprints.mark(m, m.item.fetched_at.timestamp()) for m in ordered)]

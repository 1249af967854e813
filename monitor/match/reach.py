"""Which candidate claims can reach their link threshold, known before they are scored.

Most candidates score far under their threshold (at 10,375 CLEF claims the median candidate
scores 18 against a threshold of 50), and scoring one exactly (shared keys by the prefix rule,
weighted coverage both ways, rapidfuzz) is most of a words-only item's time. Two keys can match
only when they share a key bucket (the prefix rule needs ``PREFIX_CHARS`` common letters), so
the weight of the keys in the buckets both sides have bounds each coverage from above; with
the verbatim ratio at its best (1) that bounds the score. A candidate whose bound is under
its threshold is never linked, so it need not be scored: links are exactly those of scoring
every candidate (tests/match/test_reach.py).

The claim side of the bound is worked out once per claim when its index is built
(:func:`fill_claim_reach`: its weight per key bucket, and the least shared weight that can
reach its threshold), so that most candidates cost one sum over the item's buckets and a
comparison, and the first items after a start or a claim reload cost no more than later ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import compress, repeat

from monitor.match.index import PREFIX_CHARS, ClaimReach, PreparedClaim
from monitor.match.score import KEYWORD_FLOOR, OVERLAP_WEIGHT, ItemText, Weight

# Covers score_claim's rounding to 0.01 and the bound's sums being added in another order.
ROUNDING_MARGIN = 0.01
# The least shared weight is found by inverting the bound: a little under it, so that float
# rounding in the inversion never drops a candidate the bound itself would keep.
INVERSION_SLACK = 1e-9
BucketWeights = tuple[dict[str, float], float]  # bucket -> weight of its keys; all keys' weight
_ZEROS = repeat(0.0)


def reachable(claims: Sequence[PreparedClaim], positions: Iterable[int], item: ItemText,
              weight: Weight) -> list[int]:
    """The ``positions`` whose claims :func:`monitor.match.score.score_claim` may score at or
    over their threshold for ``item``; a claim left out is sure to score under it (or None)."""
    if not item.all_set:
        return [p for p in positions if _reaches(claims[p], 0.0)]
    item_buckets = tuple(item.all_buckets)
    with_body = len(item.all_set) > len(item.title_set)
    found = []
    for position in positions:  # map() and no calls: this runs for every candidate
        prepared = claims[position]
        language = item.language if item.language in prepared.texts else ""
        claim = prepared.reach[language]
        least = claim[3] if with_body else claim[2]
        # Most candidates fail here, with the headline taken as wholly covered.
        if sum(map(claim[0].get, item_buckets, _ZEROS)) >= least and _bound_reaches(
                prepared, claim, item, weight, with_body):
            found.append(position)
    return found


def _bound_reaches(prepared: PreparedClaim, claim: ClaimReach, item: ItemText, weight: Weight,
                   with_body: bool) -> bool:
    claim_buckets, claim_total = claim[0], claim[1]
    if not claim_total:
        return _reaches(prepared, 0.0)
    claim_cover = min(1.0, sum(map(claim_buckets.get, item.all_buckets, _ZEROS)) / claim_total)
    if not _reaches(prepared, _similarity(claim_cover, 1.0, with_body)):
        return False
    title_buckets, title_total = (item.title_bucket_weights.get("")
                                  or _title_weights(item, weight))
    title_cover = min(1.0, sum(compress(title_buckets.values(), map(
        claim_buckets.__contains__, title_buckets))) / title_total)
    return _reaches(prepared, _similarity(claim_cover, title_cover, with_body))


def _similarity(claim_cover: float, title_cover: float, with_body: bool) -> float:
    """score.py's similarity with the verbatim ratio at its best."""
    overlap = 0.0
    if claim_cover and title_cover:
        overlap = 2 * claim_cover * title_cover / (claim_cover + title_cover)
    headline = OVERLAP_WEIGHT * overlap + (1 - OVERLAP_WEIGHT)
    return max(headline, claim_cover) if with_body else headline


def _least_similarity(prepared: PreparedClaim) -> float:
    """The least similarity at which :func:`_reaches` holds."""
    threshold = prepared.claim.threshold - ROUNDING_MARGIN
    if prepared.groups:
        return (threshold - KEYWORD_FLOOR) / (100 - KEYWORD_FLOOR)
    return threshold / 100


def _reaches(prepared: PreparedClaim, similarity: float) -> bool:
    if prepared.groups:
        value = KEYWORD_FLOOR + (100 - KEYWORD_FLOOR) * similarity
    else:
        value = 100 * similarity
    return value + ROUNDING_MARGIN >= prepared.claim.threshold


def least_covers(least_similarity: float) -> tuple[float, float]:
    """The least claim coverage at which :func:`_similarity` with the headline wholly
    covered reaches ``least_similarity``: without a body, and with one (then the coverage
    alone may do). Infinite when none does."""
    fixed = 1 - OVERLAP_WEIGHT  # the headline's value when nothing overlaps
    if least_similarity <= fixed:
        headline = 0.0
    else:
        overlap = (least_similarity - fixed) / OVERLAP_WEIGHT  # of 2c / (c + 1), increasing
        headline = overlap / (2 - overlap) if overlap <= 1 else float("inf")
    with_body = min(headline, max(0.0, least_similarity))
    return (headline, with_body) if with_body <= 1 else (float("inf"), float("inf"))


def fill_claim_reach(claims: Iterable[PreparedClaim], weight: Weight) -> None:
    """Each claim's bound, for each of its texts: its keys' weight per bucket, their total,
    and the least weight an item must share (with a headline alone, and with a body)."""
    for prepared in claims:
        least = least_covers(_least_similarity(prepared))
        for language, buckets_ in prepared.buckets.items():
            grouped: dict[str, float] = {}
            total = 0.0
            for prefix, keys_ in buckets_.items():  # most buckets hold one key
                share = weight(keys_[0]) if len(keys_) == 1 else sum(map(weight, keys_))
                grouped[prefix] = share
                total += share
            if not total:  # no word can be shared: _bound_reaches decides on the threshold
                prepared.reach[language] = (grouped, total, float("-inf"), float("-inf"))
            else:
                prepared.reach[language] = (grouped, total, (least[0] - INVERSION_SLACK) * total,
                                            (least[1] - INVERSION_SLACK) * total)


def _title_weights(item: ItemText, weight: Weight) -> BucketWeights:
    found = item.title_bucket_weights[""] = bucket_weights(item.title_set, weight)
    return found


def bucket_weights(keys_: Iterable[str], weight: Weight) -> BucketWeights:
    grouped: dict[str, float] = {}
    total = 0.0
    for key in keys_:
        share = weight(key)
        prefix = key[:PREFIX_CHARS]
        grouped[prefix] = grouped.get(prefix, 0.0) + share
        total += share
    return grouped, total

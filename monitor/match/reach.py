"""Which candidate claims can reach their link threshold, known before they are scored.

Most candidates score far under their threshold (at 10,375 CLEF claims the median candidate
scores 18 against a threshold of 50), and scoring one exactly (shared keys by the prefix rule,
weighted coverage both ways, rapidfuzz) is most of a words-only item's time. Two keys can match
only when they share a key bucket (the prefix rule needs ``PREFIX_CHARS`` common letters), so
the weight of the keys in the buckets both sides have bounds each coverage from above; with
the verbatim ratio at its best (1) that bounds the score. A candidate whose bound is under
its threshold is never linked, so it need not be scored: links are exactly those of scoring
every candidate (tests/match/test_reach.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import compress, repeat

from monitor.match.index import PREFIX_CHARS, PreparedClaim
from monitor.match.score import KEYWORD_FLOOR, OVERLAP_WEIGHT, ItemText, Weight

# Covers score_claim's rounding to 0.01 and the bound's sums being added in another order.
ROUNDING_MARGIN = 0.01
BucketWeights = tuple[dict[str, float], float]  # bucket -> weight of its keys; all keys' weight
_ZEROS = repeat(0.0)


def reachable(claims: Sequence[PreparedClaim], positions: Iterable[int], item: ItemText,
              weight: Weight) -> list[int]:
    """The ``positions`` whose claims :func:`monitor.match.score.score_claim` may score at or
    over their threshold for ``item``; a claim left out is sure to score under it (or None)."""
    if not item.all_set:
        return [p for p in positions if _reaches(claims[p], 0.0)]
    title_buckets, title_total = (item.title_bucket_weights.get("")
                                  or _title_weights(item, weight))
    item_buckets, title_shares = tuple(item.all_buckets), tuple(title_buckets.values())
    with_body = len(item.all_set) > len(item.title_set)
    found = []
    for position in positions:  # map() and compress(): this runs for every candidate
        prepared = claims[position]
        language = item.language if item.language in prepared.texts else ""
        claim_buckets, claim_total = (prepared.bucket_weights.get(language)
                                      or _claim_weights(prepared, language, weight))
        if not claim_total:
            if _reaches(prepared, 0.0):
                found.append(position)
            continue
        claim_cover = min(1.0, sum(map(claim_buckets.get, item_buckets, _ZEROS)) / claim_total)
        # Most candidates fail here already, with the headline taken as wholly covered.
        if not _reaches(prepared, _similarity(claim_cover, 1.0, with_body)):
            continue
        title_cover = min(1.0, sum(compress(title_shares, map(
            claim_buckets.__contains__, title_buckets))) / title_total)
        if _reaches(prepared, _similarity(claim_cover, title_cover, with_body)):
            found.append(position)
    return found


def _similarity(claim_cover: float, title_cover: float, with_body: bool) -> float:
    """score.py's similarity with the verbatim ratio at its best."""
    overlap = 0.0
    if claim_cover and title_cover:
        overlap = 2 * claim_cover * title_cover / (claim_cover + title_cover)
    headline = OVERLAP_WEIGHT * overlap + (1 - OVERLAP_WEIGHT)
    return max(headline, claim_cover) if with_body else headline


def _reaches(prepared: PreparedClaim, similarity: float) -> bool:
    if prepared.groups:
        value = KEYWORD_FLOOR + (100 - KEYWORD_FLOOR) * similarity
    else:
        value = 100 * similarity
    return value + ROUNDING_MARGIN >= prepared.claim.threshold


def _claim_weights(prepared: PreparedClaim, language: str, weight: Weight) -> BucketWeights:
    found = prepared.bucket_weights[language] = bucket_weights(prepared.key_sets[language],
                                                               weight)
    return found


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

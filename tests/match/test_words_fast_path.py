"""Words alone, made faster (issue 12), find and score exactly what the plain rules did.

The index picks candidates with numpy, and the scorer finds shared keys with set operations and
weights computed once per claim and per item; these tests pin both to plain-Python readings of
the rules (the code before the change): every claim with keyword groups that shares a key
bucket, and of the others the ``limit`` sharing the heaviest keys, ties going to the later
claim; coverage as the weighted share of keys matched exactly or by prefix, summed in the same
order, so scores are equal to the last bit.
"""

from __future__ import annotations

import heapq
import random
from collections import defaultdict

from monitor.config.claims import ClaimConfig
from monitor.match.index import (
    PREFIX_CHARS,
    ClaimIndex,
    Term,
    bucket,
    bucketed,
    keys_match,
    term_hit,
)
from monitor.match.score import OVERLAP_WEIGHT, ItemText, Weight, _similarity
from monitor.match.text import keys


def vocabulary(chance: random.Random) -> list[str]:
    """Made-up words, some of them inflections of others (one key bucket, prefix matches)."""
    stems = ["".join(chance.choice("bdgklmnprstvz") + chance.choice("aeiou")
                     for _ in range(chance.randint(3, 4))) for _ in range(150)]
    return stems + [stem + chance.choice(("s", "ov", "ami", "ing")) for stem in stems[:60]]


def reference_candidates(index: ClaimIndex, item_keys: list[str], limit: int = 15
                         ) -> tuple[set[int], list[int]]:
    postings: dict[str, set[int]] = defaultdict(set)
    for prepared_at, prepared in enumerate(index.claims):
        for key in index._index_keys(prepared):
            postings[bucket(key)].add(prepared_at)
    strength: dict[int, float] = defaultdict(float)
    for key in set(item_keys):
        if key in index.common_keys:
            continue
        for position in postings.get(bucket(key), ()):
            strength[position] += index.weight(key)
    keyworded = {p for p in strength if index.claims[p].groups}
    textual = ((w, p) for p, w in strength.items() if p not in keyworded)
    return keyworded, [p for _, p in heapq.nlargest(limit, textual)]


def test_candidates_are_those_of_the_plain_rule_ties_included() -> None:
    chance = random.Random(12)
    words = vocabulary(chance)
    claims = []
    for n in range(400):
        text = " ".join(chance.sample(words, chance.randint(3, 7)))
        groups = [[chance.choice(words)]] if n % 5 == 0 else []
        claims.append(ClaimConfig(id=f"c{n}", text=text, keywords=groups))
    claims += [ClaimConfig(id=f"twin{n}", text=" ".join(words[:4])) for n in range(30)]
    index = ClaimIndex(claims)
    picked = 0
    for _ in range(300):
        item_keys = keys(" ".join(chance.sample(words[:20], 2) + chance.sample(words, 5)))
        keyworded, textual = reference_candidates(index, item_keys)
        found = index.candidates(item_keys)
        assert set(found[:len(keyworded)]) == keyworded
        assert found[len(keyworded):] == textual
        picked += len(found)
    assert picked > 300 * 15, "the items should share keys with many claims"


def test_candidates_of_an_index_of_one_kind_and_of_a_single_key() -> None:
    """candidates() skips numpy calls for a kind of claim the index lacks, and sums nothing
    for an item with one indexed key: the same candidates as the plain rule all the same."""
    chance = random.Random(14)
    words = vocabulary(chance)
    for keyword_every in (0, 1):  # no claim has keyword groups; every claim has them
        claims = [ClaimConfig(id=f"c{n}", text=" ".join(chance.sample(words, 5)),
                              keywords=[[chance.choice(words)]] if keyword_every else [])
                  for n in range(300)]
        index = ClaimIndex(claims)
        for size in (1, 1, 2, 6):
            item_keys = keys(" ".join(chance.sample(words, size)))
            keyworded, textual = reference_candidates(index, item_keys)
            found = index.candidates(item_keys)
            assert set(found[:len(keyworded)]) == keyworded
            assert found[len(keyworded):] == textual


def reference_covered(wanted: frozenset[str], present: frozenset[str],
                      present_buckets: dict[str, tuple[str, ...]], weight: Weight) -> float:
    total = found = 0.0
    for key in wanted:
        share = weight(key)
        total += share
        if key in present or (len(key) >= PREFIX_CHARS and any(
                keys_match(other, key) for other in present_buckets.get(key[:PREFIX_CHARS], ()))):
            found += share
    return found / total if total else 0.0


def test_coverage_is_that_of_the_plain_rule_to_the_last_bit() -> None:
    chance = random.Random(7)
    words = vocabulary(chance) + ["2024", "20245", "kupianska", "kupiansk", "kup"]
    claims = [ClaimConfig(id=f"c{n}", text=" ".join(chance.sample(words, chance.randint(2, 9))),
                          texts={"ru": " ".join(chance.sample(words, 4))} if n % 3 == 0 else {})
              for n in range(300)]
    index = ClaimIndex(claims)
    compared = 0
    for _ in range(300):
        title = tuple(keys(" ".join(chance.sample(words, chance.randint(1, 6)))))
        body = tuple(keys(" ".join(chance.sample(words, chance.randint(0, 12)))))
        item = ItemText(title, title + body, chance.choice(["ru", "en", None]))
        for position in index.candidates(item.all_keys):
            prepared = index.claims[position]
            language = item.language if item.language in prepared.texts else ""
            claim_keys = prepared.key_sets[language]
            claim_cover = reference_covered(claim_keys, item.all_set, item.all_buckets,
                                            index.weight)
            title_cover = reference_covered(item.title_set, claim_keys,
                                            prepared.buckets[language], index.weight)
            got = _similarity(prepared, language, item, index.weight)
            assert got == _reference_similarity(claim_cover, title_cover, prepared, language,
                                                item)
            compared += 1
    assert compared > 1000


def _reference_similarity(claim_cover: float, title_cover: float, prepared: object,
                          language: str, item: ItemText) -> float:
    from rapidfuzz import fuzz

    overlap = 0.0
    if claim_cover and title_cover:
        overlap = 2 * claim_cover * title_cover / (claim_cover + title_cover)
    texts = prepared.texts  # type: ignore[attr-defined]
    verbatim = fuzz.token_sort_ratio(texts[language],
                                     " ".join(item.title_keys or item.all_keys)) / 100
    headline = OVERLAP_WEIGHT * overlap + (1 - OVERLAP_WEIGHT) * verbatim
    if len(item.all_set) > len(item.title_set):
        return max(headline, claim_cover)
    return headline


def test_keyword_terms_hit_as_by_the_plain_rule() -> None:
    """term_hit compares only the item's keys of the term key's bucket; the plain rule
    compared every key of the item with every key of the term."""
    chance = random.Random(3)
    words = vocabulary(chance)
    # stems with their inflections (one bucket), keys with digits, a short key
    words = words[:15] + words[150:165] + ["2024", "20245", "codename0042", "coden", "kup",
                                           "kupiansk"]
    hits = by_prefix = 0
    for _ in range(3000):
        term = Term("t", tuple(chance.sample(words, chance.randint(1, 3))))
        item_keys = tuple(chance.sample(words, chance.randint(1, 8)))
        plain = all(any(keys_match(k, t) for k in item_keys) for t in term.keys)
        assert term_hit(term, frozenset(item_keys), bucketed(item_keys)) == plain, (
            term, item_keys)
        hits += plain
        by_prefix += plain and not set(term.keys) <= set(item_keys)
    assert 200 < hits < 2800 and by_prefix > 50  # exact hits, prefix hits and misses

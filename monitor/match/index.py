"""Candidate claims for an item, found cheaply: an inverted index over claim word keys.

Every claim is indexed under the keys of its keyword terms, or, when it has no keywords, under
the distinctive keys of its texts (keys that most claims share are left out: they would make
every claim a candidate). Keys are bucketed by their first ``PREFIX_CHARS`` characters so that an
inflected or derived form ("gener" from генералы, "general") finds the same bucket; a bucket hit
is then confirmed by the prefix rule in :func:`keys_match`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from monitor.config.claims import ClaimConfig
from monitor.match.text import keys, mostly_cyrillic, normalized

if TYPE_CHECKING:
    from monitor.match.semantic import ClaimVectors, Embedder

PREFIX_CHARS = 5
# A key shared by more than this share of claims (and more than the floor) does not select.
COMMON_KEY_SHARE = 0.01
COMMON_KEY_FLOOR = 50
MAX_TEXT_CANDIDATES = 15  # claims without keywords scored per item, best shared keys first
UNKNOWN_KEY_WEIGHT = 0.5  # a headline word no claim uses weighs this share of the rarest
# A claim's keys' weight per key bucket, their total weight, and the least weight an item
# must share for the claim to reach its threshold: with a headline alone, and with a body.
ClaimReach = tuple[dict[str, float], float, float, float]


def keys_match(item_key: str, term_key: str) -> bool:
    """Same key, or one a prefix of the other when the shorter has at least PREFIX_CHARS."""
    if item_key == term_key:
        return True
    shorter, longer = sorted((item_key, term_key), key=len)
    # Inflection only adds letters: a key with digits (a year, a code name) matches exactly.
    return len(shorter) >= PREFIX_CHARS and shorter.isalpha() and longer.startswith(shorter)


def bucket(key: str) -> str:
    return key[:PREFIX_CHARS]


@dataclass(frozen=True, slots=True)
class Term:
    """One keyword alternative; a multi-word term needs all of its word keys."""

    text: str
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PreparedClaim:
    claim: ClaimConfig
    texts: dict[str, str]          # language ("" for the main text) -> normalized text
    groups: tuple[tuple[Term, ...], ...]
    excludes: tuple[Term, ...]
    text_keys: frozenset[str]
    key_sets: dict[str, frozenset[str]]  # language -> distinct keys of that text
    buckets: dict[str, dict[str, tuple[str, ...]]]  # language -> bucket -> keys
    cyrillic: bool  # the main text is written in Cyrillic
    # language -> its keys with their weights in the claim's index, filled when first scored
    # (:func:`monitor.match.score.weighted`): a prepared claim belongs to one index.
    weighted: dict[str, tuple[tuple[tuple[str, float], ...], float]] = field(
        default_factory=dict, compare=False, repr=False)
    # language -> what :mod:`monitor.match.reach` bounds its score with, filled when the
    # index is built.
    reach: dict[str, ClaimReach] = field(default_factory=dict, compare=False, repr=False)


def bucketed(keys_: Iterable[str]) -> dict[str, tuple[str, ...]]:
    grouped: dict[str, tuple[str, ...]] = {}
    for key in set(keys_):  # once per item: no call per key (a bucket has one key or two)
        prefix = key[:PREFIX_CHARS]
        grouped[prefix] = grouped.get(prefix, ()) + (key,)
    return grouped


def prepare(claim: ClaimConfig) -> PreparedClaim:
    texts = {"": normalized(claim.text)}
    texts.update({lang: normalized(text, lang) for lang, text in claim.texts.items()})
    return PreparedClaim(
        claim=claim,
        texts=texts,
        groups=tuple(tuple(_term(t) for t in group) for group in claim.keywords),
        excludes=tuple(_term(t) for t in claim.exclude),
        text_keys=frozenset(key for text in texts.values() for key in text.split()),
        key_sets={lang: frozenset(text.split()) for lang, text in texts.items()},
        buckets={lang: bucketed(text.split()) for lang, text in texts.items()},
        cyrillic=mostly_cyrillic(claim.text),
    )


def _term(text: str) -> Term:
    return Term(text, tuple(keys(text)) or (text.casefold(),))


def term_hit(term: Term, item_keys: frozenset[str],
             item_buckets: Mapping[str, tuple[str, ...]]) -> bool:
    """Every key of ``term`` matches a key of the item (:func:`keys_match`). Keys that match
    share their first PREFIX_CHARS characters, so only the item's keys of the term key's
    bucket (:func:`bucketed`) are compared: a keyword common to many claims' buckets costs a
    lookup a claim, not a comparison with every key of the item."""
    for key in term.keys:  # loops, not generators: this runs for every candidate claim
        if key in item_keys:
            continue
        for item_key in item_buckets.get(key[:PREFIX_CHARS], ()):
            if keys_match(item_key, key):
                break
        else:
            return False
    return True


class ClaimIndex:
    """Inverted index from key buckets to the claims indexed under them. Immutable once built.

    With an ``embedder`` it also holds every claim text's sentence vector (``vectors``), so
    that the matcher can compare an item's meaning with all claims at once.
    """

    def __init__(self, claims: Sequence[ClaimConfig], embedder: Embedder | None = None) -> None:
        self.claims = tuple(prepare(claim) for claim in claims)
        self.embedder = embedder
        self.vectors: ClaimVectors | None = None
        if embedder is not None:
            from monitor.match.semantic import ClaimVectors

            self.vectors = ClaimVectors.build(
                [[c.claim.text, *c.claim.texts.values()] for c in self.claims], embedder)
        frequency: dict[str, int] = defaultdict(int)
        for prepared in self.claims:
            for key in prepared.text_keys:
                frequency[key] += 1
        total = len(self.claims) or 1
        # Rare keys say more about which claim an item is about (inverse document frequency).
        self.idf = {key: math.log(1 + total / count) for key, count in frequency.items()}
        self.unknown_idf = math.log(1 + total) * UNKNOWN_KEY_WEIGHT
        limit = max(COMMON_KEY_FLOOR, COMMON_KEY_SHARE * len(self.claims))
        self.common_keys = frozenset(k for k, n in frequency.items() if n > limit)
        self._keyword = np.array([bool(p.groups) for p in self.claims], dtype=bool)
        self._keyword_count = int(self._keyword.sum())
        postings: dict[str, set[int]] = defaultdict(set)
        for position, prepared in enumerate(self.claims):
            for key in self._index_keys(prepared):
                postings[bucket(key)].add(position)
        self._postings = {prefix: np.array(sorted(members), dtype=np.intp)
                          for prefix, members in postings.items()}
        from monitor.match.reach import fill_claim_reach  # reach reads this module's types

        fill_claim_reach(self.claims, self.weight)

    def _index_keys(self, prepared: PreparedClaim) -> set[str]:
        if prepared.groups:
            # The rarest-looking (longest) key of each alternative is enough to find the claim.
            return {max(term.keys, key=len) for group in prepared.groups for term in group}
        return set(prepared.text_keys - self.common_keys)

    def candidates(self, item_keys: Iterable[str], limit: int = MAX_TEXT_CANDIDATES
                   ) -> list[int]:
        """Positions of the claims worth scoring for an item with these keys.

        Every claim with keywords that shares a key is a candidate (its groups decide); of
        the claims without keywords only the ``limit`` that share the rarest keys are, so
        that the cost per item does not grow with the number of claims.
        """
        postings, weights = [], []
        for key in set(item_keys):
            found = self._postings.get(key[:PREFIX_CHARS])
            if found is not None and key not in self.common_keys:
                postings.append(found)
                weights.append(self.idf.get(key, self.unknown_idf))
        if not postings:
            return []
        claims, strength = _summed(postings, weights)
        # Numpy's cost here is per call, not per claim: no call for a kind the index lacks.
        if not self._keyword_count:
            return _strongest(claims, strength, limit).tolist()  # type: ignore[no-any-return]
        if self._keyword_count == len(self.claims):
            return claims.tolist()  # type: ignore[no-any-return]
        keyword = self._keyword[claims]
        text = ~keyword
        picked: list[int] = (claims[keyword].tolist()
                             + _strongest(claims[text], strength[text], limit).tolist())
        return picked

    def weight(self, key: str) -> float:
        return self.idf.get(key, self.unknown_idf)

    def __len__(self) -> int:
        return len(self.claims)


def _summed(postings: list[npt.NDArray[np.intp]], weights: list[float]
            ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    """The claims in any of the postings, ascending, each with the sum of the weights of the
    postings it is in, added in the postings' order (so sums are equal to the last bit
    whatever way they are computed). A stable sort keeps that order within each claim."""
    if len(postings) == 1:
        return postings[0], np.full(len(postings[0]), weights[0])
    found = np.concatenate(postings)
    order = np.argsort(found, kind="stable")
    ordered = found[order]
    first = np.empty(len(ordered), dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    shares = np.repeat(weights, [len(p) for p in postings])[order]
    strength = np.bincount(np.cumsum(first) - 1, shares).astype(np.float64, copy=False)
    return ordered[first], strength


def _strongest(claims: npt.NDArray[np.intp], strength: npt.NDArray[np.float64], limit: int
               ) -> npt.NDArray[np.intp]:
    """The ``limit`` strongest of ascending ``claims``, strongest first; of equal strength,
    the later claim (as heapq.nlargest of (strength, position) pairs picks)."""
    if len(claims) > limit:  # keep those as strong as the limit-th strongest, ties included
        cut = np.partition(strength, len(strength) - limit)[len(strength) - limit]
        near = np.flatnonzero(strength >= cut)
        claims, strength = claims[near], strength[near]
    # Ascending by strength, and by position among equals: the last ones, reversed.
    return claims[np.argsort(strength, kind="stable")[:-limit - 1:-1]]

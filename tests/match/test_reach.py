"""A candidate is scored only when it can reach its threshold (monitor/match/reach.py): the
bound must never drop a candidate that scoring would link, in any language, with or without
keyword groups, excludes or a body, at any threshold; and it must drop most of the others,
or it buys nothing."""

from __future__ import annotations

import random

from monitor.config.claims import ClaimConfig
from monitor.match.index import ClaimIndex
from monitor.match.matcher import scored_candidates
from monitor.match.reach import _similarity, least_covers, reachable
from monitor.match.score import ItemText, score_claim
from monitor.match.text import keys
from tests.match.test_words_fast_path import vocabulary


def claims_of(chance: random.Random, words: list[str]) -> list[ClaimConfig]:
    claims = []
    for n in range(500):
        text = " ".join(chance.sample(words, chance.randint(2, 10)))
        claims.append(ClaimConfig(
            id=f"c{n}", text=text.ljust(10, "."),
            texts={"ru": " ".join(chance.sample(words, 5))} if n % 4 == 0 else {},
            keywords=[[chance.choice(text.split())]] if n % 6 == 0 else [],
            exclude=[chance.choice(words)] if n % 9 == 0 else [],
            threshold=chance.choice([0.0, 20.0, 30.0, 45.0, 50.0, 60.0, 76.0, 100.0])))
    # Near-restatements of one another, so that many candidates score near the thresholds.
    base = words[:8]
    claims += [ClaimConfig(id=f"near{n}", text=" ".join(chance.sample(base, 6)),
                           threshold=chance.choice([40.0, 50.0, 60.0])) for n in range(40)]
    return claims


def items_of(chance: random.Random, words: list[str]) -> list[ItemText]:
    found = []
    for n in range(600):
        pool = words[:8] if n % 3 == 0 else words
        title = tuple(keys(" ".join(chance.sample(pool, chance.randint(1, 8)))))
        body = tuple(keys(" ".join(chance.sample(words, chance.randint(1, 15))))) \
            if n % 4 == 0 else ()
        found.append(ItemText(title, title + body, chance.choice(["ru", "en", None])))
    return found


def test_no_candidate_that_scoring_would_link_is_left_out() -> None:
    chance = random.Random(13)
    words = vocabulary(chance) + ["2024", "20245", "kupianska", "kupiansk", "kup"]
    index = ClaimIndex(claims_of(chance, words))
    linked = dropped = unlinked = 0
    for item in items_of(chance, words):
        candidates = index.candidates(item.all_keys)
        kept = set(reachable(index.claims, candidates, item, index.weight))
        for position in candidates:
            prepared = index.claims[position]
            score = score_claim(prepared, item, index.weight)
            if score is not None and score.value >= prepared.claim.threshold:
                assert position in kept, (prepared.claim, item, score)
                linked += 1
            else:
                unlinked += 1
                dropped += position not in kept
    assert linked > 500, "the set should link often, near the thresholds too"
    assert dropped > unlinked / 2, "the bound should leave most unlinkable candidates unscored"


def test_the_links_of_scored_candidates_are_those_of_scoring_them_all() -> None:
    chance = random.Random(29)
    words = vocabulary(chance)
    index = ClaimIndex(claims_of(chance, words))
    for item in items_of(chance, words):
        def links(linkable_only: bool, text: ItemText = item) -> list[tuple[int, object]]:
            return [(p, s) for p, s in scored_candidates(index, text, "",
                                                         linkable_only=linkable_only)
                    if s.value >= index.claims[p].claim.threshold]
        assert links(True) == links(False)


def test_the_least_coverage_is_under_every_coverage_that_reaches() -> None:
    """The shared weight a claim needs (reach.least_covers, an inversion of the bound) never
    exceeds a coverage at which the bound itself reaches the similarity: a candidate the
    bound keeps is never left out before the bound is computed."""
    covers = [n / 1000 for n in range(1001)] + [1e-9, 0.5 + 1e-12, 1 - 1e-12]
    for least in [n / 200 - 0.2 for n in range(260)] + [0.15, 0.15 + 1e-12, 1.0]:
        headline, with_body = least_covers(least)
        for cover in covers:
            if _similarity(cover, 1.0, with_body=False) >= least:
                assert cover >= headline - 1e-9, (least, cover)
            if _similarity(cover, 1.0, with_body=True) >= least:
                assert cover >= with_body - 1e-9, (least, cover)

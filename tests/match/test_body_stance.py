"""The body-aware stance model: its features, its file, and decisions on hand-written bodies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.match.body_features import FEATURE_NAMES, body_features, sentences, stems
from monitor.match.body_stance import (
    BODY_MODEL_PATH,
    BodyStanceModel,
    default_body_model,
    load_body_model,
)
from monitor.match.stance import decide_relation

CLAIM = "Banksy arrested in London, identity revealed"
# Written after the FNC-1 pattern: a body that debunks the headline's story.
DEBUNKING = (
    "A story claiming that the street artist Banksy was arrested in London is a hoax. "
    "The report was published by a satirical site. Police said no such arrest took place and "
    "the claims are false. Banksy's identity has not been revealed."
)
REPORTING = (
    "According to unconfirmed reports, the street artist Banksy may have been arrested in "
    "London. The claims could not be verified, and a spokesman declined to comment. "
    "Sources say his identity might be revealed soon."
)


def test_every_feature_is_named_and_finite() -> None:
    feats = body_features(CLAIM, "", DEBUNKING)
    assert set(feats) == set(FEATURE_NAMES)
    assert all(np.isfinite(v) for v in feats.values())


def test_features_find_refutation_near_the_claim() -> None:
    debunk = body_features(CLAIM, "", DEBUNKING)
    report = body_features(CLAIM, "", REPORTING)
    assert debunk["near_denial"] > 0 and report["near_denial"] == 0
    assert report["near_hedge"] > 0
    assert debunk["claim_in_body"] == pytest.approx(1.0)


def test_unrelated_body_shares_nothing_with_the_claim() -> None:
    feats = body_features(CLAIM, "", "The weather in Paris was mild all week.")
    assert feats["claim_in_body"] == 0.0
    assert feats["near_sentences"] == 0.0
    assert feats["first_near_position"] == 1.0


def test_stems_match_inflected_russian() -> None:
    claim = "Лукашенко: украинские генералы просили его остановить войну"
    body = "В Генштабе ВСУ заявили, что украинских генералов никто не просил об этом."
    feats = body_features(claim, "", body, "ru")
    assert feats["claim_in_body"] > 0.3
    assert "украи" in stems(body)


def test_sentences_split_on_ends_and_newlines() -> None:
    assert sentences("One. Two?  Three!\nFour") == ["One.", "Two?", "Three!", "Four"]


def test_shipped_model_loads_with_current_features() -> None:
    model = default_body_model()
    assert model is not None, f"missing {BODY_MODEL_PATH}"
    assert set(model.classes) == {"corroboration", "denial", "follow-up"}
    assert model.feature_names == FEATURE_NAMES
    assert BODY_MODEL_PATH.stat().st_size < 2_000_000


def _stump(threshold: float) -> BodyStanceModel:
    """One tree per class; the denial tree splits on ``near_denial``."""
    feature = FEATURE_NAMES.index("near_denial")
    return BodyStanceModel(
        classes=("corroboration", "denial", "follow-up"), feature_names=FEATURE_NAMES,
        baseline=np.zeros(3),
        feature=np.array([0, feature, 0, 0, 0], dtype=np.int32),
        threshold=np.array([0.0, threshold, 0.0, 0.0, 0.0]),
        left=np.array([0, 2, 0, 0, 0], dtype=np.int32),
        right=np.array([0, 3, 0, 0, 0], dtype=np.int32),
        value=np.array([0.0, 0.5, -1.0, 2.0, 0.0]),
        is_leaf=np.array([True, False, True, True, True]),
        roots=np.array([0, 1, 4], dtype=np.int32), tree_class=np.array([0, 1, 2], dtype=np.int32),
    )


def test_tree_walk_and_attribution() -> None:
    model = _stump(0.1)
    denies = model.predict(CLAIM, "", DEBUNKING)
    assert (denies.relation, denies.top_feature) == ("denial", "near_denial")
    assert denies.probability == pytest.approx(np.exp(2) / (np.exp(2) + 2))
    reports = model.predict(CLAIM, "", REPORTING)
    assert reports.relation != "denial"
    assert reports.top_feature == "prior"


def _save(path: Path, model: BodyStanceModel, **override: object) -> None:
    arrays = {name: getattr(model, name) for name in (
        "baseline", "feature", "threshold", "left", "right", "value", "is_leaf", "roots",
        "tree_class")}
    arrays |= {"classes": np.array(model.classes), "names": np.array(model.feature_names)}
    np.savez(path, **{**arrays, **override})


def test_model_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    _save(path, _stump(0.1))
    loaded = load_body_model(path)
    assert loaded.predict(CLAIM, "", DEBUNKING).relation == "denial"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        pytest.param({"left": np.array([0, 1, 0, 0, 0])}, "inconsistent", id="cycle"),
        pytest.param({"roots": np.array([0, 9, 4])}, "inconsistent", id="root-out-of-range"),
        pytest.param({"baseline": np.zeros(2)}, "inconsistent", id="wrong-class-count"),
    ],
)
def test_broken_model_file_is_refused(tmp_path: Path, override: dict[str, object],
                                      message: str) -> None:
    path = tmp_path / "m.npz"
    _save(path, _stump(0.1), **override)
    with pytest.raises(ValueError, match=message):
        load_body_model(path)


def test_model_file_missing_an_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    np.savez(path, classes=np.array(["denial"]))
    with pytest.raises(ValueError, match="missing array"):
        load_body_model(path)


def test_debunking_body_leans_to_denial_and_abstains_below_the_threshold() -> None:
    # No headline: the FNC-1 body model reads the English body. It leans to denial (p 0.48)
    # but below BODY_MODEL_MIN_DENIAL: an uncertain follow-up that says what it leaned to,
    # never a guessed red alert.
    decision = decide_relation(CLAIM, "", DEBUNKING, language="en")
    assert decision.relation in ("denial", "follow-up"), decision
    if decision.relation == "follow-up":
        assert decision.uncertain and "uncertain denial" in decision.cue, decision


def test_hedged_body_is_a_follow_up_by_the_shipped_model() -> None:
    decision = decide_relation(CLAIM, "", REPORTING, language="en")
    assert decision.relation == "follow-up", decision
    assert not decision.uncertain


def test_headline_cue_still_wins_over_the_body() -> None:
    decision = decide_relation(CLAIM, "Police deny Banksy was arrested", REPORTING,
                               language="en")
    assert decision.relation == "denial"
    assert "cue 'deny'" in decision.cue


def test_no_body_keeps_the_headline_model() -> None:
    decision = decide_relation(CLAIM, "Banksy arrested in London", language="en")
    assert "model p=" in decision.cue and "in body" not in decision.cue


def test_neutral_title_over_a_debunking_body_is_never_a_corroboration() -> None:
    # The headline model leans to "corroboration" on a neutral title; the body overrules it.
    decision = decide_relation(CLAIM, "Banksy and the London police", DEBUNKING, language="en")
    assert decision.relation != "corroboration", decision
    assert "body model" in decision.cue, decision


def test_russian_body_keeps_the_cue_rules() -> None:
    # The body model is trained on English only; ru/uk bodies are read by the cue tables.
    decision = decide_relation("Лукашенко: генералы ВСУ просили его о помощи",
                               "Генштаб ответил Лукашенко", "В Генштабе назвали это фейком.")
    assert decision.relation == "denial"
    assert "in body" in decision.cue


def test_a_repeated_body_decision_is_the_same_decision() -> None:
    # Speed is bench/stance.py's figure (a timed test failed under load); what is tested here
    # is that a long summary is decided the same way every time.
    summary = DEBUNKING + " " + REPORTING  # a long feed summary, ~600 characters
    first = decide_relation(CLAIM, "Banksy and the London police", summary, language="en")
    for _ in range(20):
        assert decide_relation(CLAIM, "Banksy and the London police", summary,
                               language="en") == first

"""Rebuilding the body stance model: grouping, scoring and the export to numpy arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.match.body_features import FEATURE_NAMES
from monitor.match.body_stance import load_body_model
from monitor.match.train_body_stance import Pair, export, scores, stories


def test_stories_join_pairs_that_share_a_headline_or_a_body() -> None:
    pairs = [Pair("h1", "b1", "denial"), Pair("h2", "b1", "denial"), Pair("h2", "b2", "denial"),
             Pair("h3", "b3", "denial")]
    groups = stories(pairs)
    assert groups[0] == groups[1] == groups[2]
    assert groups[3] != groups[0]


def test_scores_with_gold_relatedness() -> None:
    gold = ["denial", "follow-up", "corroboration", "follow-up"]
    predicted = ["denial", "follow-up", "follow-up", "follow-up"]
    report = scores(gold, predicted, unrelated=4)
    assert report["accuracy"] == 0.75
    # 4 related and 4 unrelated pairs: the best score is 4 * 0.25 + 4 = 5.
    assert report["fnc_score_gold_relatedness"] == (4 * 0.25 + 4 * 0.25 + 3 * 0.75) / 5
    assert report["macro_f1"] == round((1.0 + 0.8 + 0.0) / 3, 4)


def test_export_reproduces_the_fitted_classifier(tmp_path: Path) -> None:
    pytest.importorskip("sklearn", reason="scikit-learn (training extra) missing")
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    x = rng.random((600, len(FEATURE_NAMES)))
    y = np.where(x[:, 3] > 0.6, "denial", np.where(x[:, 7] > 0.5, "corroboration", "follow-up"))
    clf = HistGradientBoostingClassifier(max_iter=20, max_leaf_nodes=7).fit(x, y)
    path = tmp_path / "model.npz"
    export(clf, path)
    model = load_body_model(path)
    probabilities = clf.predict_proba(x[:50])
    for row, expected in zip(x[:50], probabilities, strict=True):
        found = model.predict_vector(row)
        k = list(clf.classes_).index(found.relation)
        assert k == int(expected.argmax())
        assert found.probability == pytest.approx(expected[k], abs=1e-6)
    assert model.predict_vector(x[0]).top_feature in (FEATURE_NAMES[3], FEATURE_NAMES[7])

"""Rebuild ``stance_model.json`` from the Emergent training split and measure the stance decision.

    python -m monitor.match.train_stance --data ../shared/data            # CV report + write model
    python -m monitor.match.train_stance --data ../shared/data --cv-only  # CV report only
    python -m monitor.match.train_stance --data ../shared/data --cv-only --fnc1  # + FNC-1

Training needs scikit-learn (a training-only dependency); the shipped model is plain JSON that
``monitor.match.stance`` reads without it. Cross-validation is grouped by claim (GroupKFold,
5 folds) and runs the full ``decide_relation`` (cues + model) on the held-out claims.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.match.stance import MODEL_PATH, Relation, StanceModel, decide_relation, load_model
from monitor.match.stance_features import model_features

RELATIONS: tuple[Relation, ...] = ("corroboration", "denial", "follow-up")
EMERGENT_LABELS: dict[str, Relation] = {
    "for": "corroboration",
    "against": "denial",
    "observing": "follow-up",
}
C_REGULARIZATION = 1.0
MIN_WEIGHT = 0.03  # smaller weights are dropped: the JSON shrinks by a third, CV unchanged
FOLDS = 5


@dataclass(frozen=True, slots=True)
class Example:
    claim: str
    headline: str
    relation: Relation
    group: str


def read_emergent(path: Path) -> list[Example]:
    """Rows of an Emergent CSV (claimHeadline, articleHeadline, articleHeadlineStance, claimId)."""
    with path.open(encoding="utf-8", newline="") as fh:
        return [
            Example(
                row["claimHeadline"],
                row["articleHeadline"],
                EMERGENT_LABELS[row["articleHeadlineStance"]],
                row["claimId"],
            )
            for row in csv.DictReader(fh)
        ]


def fit(examples: Sequence[Example], c: float = C_REGULARIZATION) -> StanceModel:
    """Multinomial logistic regression over ``model_features``, as a runtime StanceModel."""
    from sklearn.feature_extraction import DictVectorizer  # type: ignore[import-not-found,unused-ignore]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-not-found,unused-ignore]

    vec = DictVectorizer()
    x = vec.fit_transform([model_features(e.claim, e.headline) for e in examples])
    lr = LogisticRegression(C=c, max_iter=500, solver="newton-cg")
    lr.fit(x, [e.relation for e in examples])
    names = vec.get_feature_names_out()
    weights = {
        str(name): tuple(round(float(w), 4) for w in lr.coef_[:, j])
        for j, name in enumerate(names)
        if max(abs(float(w)) for w in lr.coef_[:, j]) >= MIN_WEIGHT
    }
    classes = tuple(EMERGENT_LABELS.get(str(k), str(k)) for k in lr.classes_)
    intercept = tuple(round(float(b), 4) for b in lr.intercept_)
    return StanceModel(classes, intercept, weights)  # type: ignore[arg-type]


def scores(gold: Sequence[Relation], predicted: Sequence[Relation]) -> dict[str, float]:
    """Accuracy and macro-F1 over the three relations."""
    f1s = []
    for rel in RELATIONS:
        tp = sum(g == p == rel for g, p in zip(gold, predicted, strict=True))
        n_pred, n_gold = predicted.count(rel), gold.count(rel)
        prec, rec = tp / n_pred if n_pred else 0.0, tp / n_gold if n_gold else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    hits = sum(g == p for g, p in zip(gold, predicted, strict=True))
    return {
        "stance_accuracy": round(hits / max(1, len(gold)), 4),
        "stance_macro_f1": round(sum(f1s) / len(f1s), 4),
        "n": len(gold),
    }


def _predict(model: StanceModel, examples: Sequence[Example]) -> list[Relation]:
    return [
        decide_relation(e.claim, e.headline, language="en", model=model).relation
        for e in examples
    ]


def evaluate_emergent(path: str | Path, *, folds: int = FOLDS) -> dict[str, Any]:
    """Stance scores on an Emergent CSV.

    ``folds > 1``: grouped cross-validation by claim, training on the other folds (needs
    scikit-learn). ``folds == 0``: the shipped model as is, for a held-out file only.
    """
    examples = read_emergent(Path(path))
    if folds <= 1:
        report = scores([e.relation for e in examples], _predict(load_model(MODEL_PATH), examples))
        return {**report, "method": "shipped model"}
    report = cross_validate(examples, folds)
    return {**report, "method": f"GroupKFold({folds}) by claimId, cues + model"}


FNC1_LABELS: dict[str, Relation] = {
    "agree": "corroboration",
    "disagree": "denial",
    "discuss": "follow-up",
}
FNC1_BODY_CHARS = 300  # the body's lead stands in for the headline the model was built for


def read_fnc1_related(folder: Path, prefix: str = "train") -> list[Example]:
    """FNC-1 pairs labelled agree/disagree/discuss (unrelated ones left out), grouped by body."""
    with (folder / f"{prefix}_bodies.csv").open(encoding="utf-8", newline="") as fh:
        bodies = {row["Body ID"]: row["articleBody"] for row in csv.DictReader(fh)}
    with (folder / f"{prefix}_stances.csv").open(encoding="utf-8", newline="") as fh:
        return [
            Example(
                row["Headline"],
                bodies[row["Body ID"]][:FNC1_BODY_CHARS],
                FNC1_LABELS[row["Stance"]],
                row["Body ID"],
            )
            for row in csv.DictReader(fh)
            if row["Stance"] in FNC1_LABELS
        ]


def _predict_model_only(model: StanceModel, examples: Sequence[Example]) -> list[Relation]:
    return [model.predict(model_features(e.claim, e.headline))[0] for e in examples]


def cross_validate(
    examples: Sequence[Example], folds: int = FOLDS, *, model_only: bool = False
) -> dict[str, Any]:
    """Grouped k-fold: fit on the other groups, run ``decide_relation`` on the held-out ones."""
    predict = _predict_model_only if model_only else _predict
    from sklearn.model_selection import GroupKFold  # type: ignore[import-not-found,unused-ignore]

    predicted: list[Relation] = ["follow-up"] * len(examples)
    splits = GroupKFold(n_splits=folds).split(examples, groups=[e.group for e in examples])
    for train_idx, test_idx in splits:
        model = fit([examples[i] for i in train_idx])
        held_out = [examples[i] for i in test_idx]
        for i, rel in zip(test_idx, predict(model, held_out), strict=True):
            predicted[i] = rel
    return scores([e.relation for e in examples], predicted)


def evaluate_fnc1_related(folder: str | Path, *, folds: int = FOLDS) -> dict[str, Any]:
    """Stance of FNC-1 related pairs, a model fitted per fold on FNC-1 itself (a minute or two).

    ``stance_*``: the full decision (cues + model); ``model_only``: the model alone.
    """
    examples = read_fnc1_related(Path(folder))
    report = cross_validate(examples, folds)
    alone = cross_validate(examples, folds, model_only=True)
    method = f"GroupKFold({folds}) by Body ID, body lead as headline"
    return {**report, "model_only": alone, "method": method}


def write_model(model: StanceModel, path: Path) -> None:
    data = {
        "about": "monitor.match.train_stance: LR on Emergent train headlines; classes map "
        "for/against/observing to corroboration/denial/follow-up",
        "classes": list(model.classes),
        "intercept": list(model.intercept),
        "weights": {k: list(v) for k, v in sorted(model.weights.items())},
    }
    path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    parser.add_argument("--cv-only", action="store_true")
    parser.add_argument("--fnc1", action="store_true", help="also cross-validate FNC-1 (minutes)")
    args = parser.parse_args(argv)
    emergent = args.data / "emergent" / "train.csv"
    print(json.dumps({"emergent_cv": evaluate_emergent(emergent)}), flush=True)
    if args.fnc1:
        print(json.dumps({"fnc1_related_cv": evaluate_fnc1_related(args.data / "fnc-1")}))
    if not args.cv_only:
        write_model(fit(read_emergent(emergent)), args.out)
        print(f"wrote {args.out} ({args.out.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

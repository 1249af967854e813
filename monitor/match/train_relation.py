"""Rebuild ``relation_model.npz`` from Emergent and measure the relation decision.

    python -m monitor.match.train_relation --data ../shared/data            # CV report + write
    python -m monitor.match.train_relation --data ../shared/data --cv-only  # CV report only

Numpy only (no scikit-learn): ``relation_fit`` holds the softmax regression and the grouped
folds. Vectors come from ``semantic.shared_embedder()`` (claim as e5 passage, headline as e5
query, the matcher's encodings), cached in the per-machine SQLite file, so Emergent is
embedded once (~3 minutes on one core the first time).

``emergent_stance(path, cross_validate=True)``: nested grouped CV by claim (5 outer folds; in
each, the temperature and thresholds come from 5 inner folds of the training claims only),
running the full ``decide_relation`` on held-out claims. ``cross_validate=False``: the shipped
model on the given file (for the hidden test split). Both report the trivial baselines.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.match.relation_features import dense_features, vector_features
from monitor.match.relation_fit import (
    CORROBORATION,
    DENIAL,
    calibrated_head,
    grouped_folds,
    reliability,
)
from monitor.match.relation_model import (
    CLASSES,
    RELATION_MODEL_PATH,
    RelationModel,
    load_model,
    save_model,
)
from monitor.match.stance import RelationDecision, decide_relation

EMERGENT_LABELS = {"for": "corroboration", "against": "denial", "observing": "follow-up"}
# Aimed precision of a reported denial / corroboration on held-out claims (a wrong denial is
# the costliest error; a corroboration's target trades against recall of the largest class).
PRECISION_TARGETS = {DENIAL: 0.90, CORROBORATION: 0.75}
FOLDS = 5
Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Pairs:
    """Emergent rows as arrays: claims, headlines, labels, groups and both vectors."""

    claims: list[str]
    headlines: list[str]
    labels: npt.NDArray[np.intp]
    groups: list[str]
    claim_vectors: npt.NDArray[np.float32] | None
    item_vectors: npt.NDArray[np.float32] | None


def read_emergent(path: Path, vectors: bool = True) -> Pairs:
    """An Emergent CSV (claimHeadline, articleHeadline, articleHeadlineStance, claimId)."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    claims = [r["claimHeadline"] for r in rows]
    heads = [r["articleHeadline"] for r in rows]
    labels = np.array([CLASSES.index(EMERGENT_LABELS[r["articleHeadlineStance"]]) for r in rows],
                      dtype=np.intp)
    u = v = None
    if vectors:
        from monitor.match.semantic import shared_embedder

        embedder = shared_embedder()
        u = embedder.embed_cached(claims, passage=True)
        v = embedder.embed_cached(heads)
    return Pairs(claims, heads, labels, [r["claimId"] for r in rows], u, v)


def feature_rows(pairs: Pairs, rows: npt.NDArray[np.intp] | None = None,
                 vectors: bool = True) -> Array:
    """Features of ``rows`` (all by default): cues, then [cos, v] when ``vectors``."""
    idx = np.arange(len(pairs.labels)) if rows is None else rows
    out = []
    for i in idx:
        dense = dense_features(pairs.claims[i], pairs.headlines[i])
        if vectors and pairs.claim_vectors is not None and pairs.item_vectors is not None:
            dense = np.concatenate([dense, vector_features(pairs.claim_vectors[i],
                                                           pairs.item_vectors[i])])
        out.append(dense)
    return np.array(out)


def train(pairs: Pairs, rows: npt.NDArray[np.intp] | None = None, folds: int = FOLDS
          ) -> tuple[RelationModel, dict[str, Any]]:
    """Both heads fitted on ``rows``; thresholds and temperature from inner grouped folds.
    Also the inner folds' calibration (expected calibration error, reliability table)."""
    idx = np.arange(len(pairs.labels)) if rows is None else rows
    y, groups = pairs.labels[idx], [pairs.groups[i] for i in idx]
    words_x = feature_rows(pairs, idx, vectors=False)
    dense_columns = words_x.shape[1] + 1  # the cues and the cosine, one by one
    calibration: dict[str, Any] = {}
    heads = []
    for name, x in (("full", feature_rows(pairs, idx)), ("words", words_x)):
        head, p = calibrated_head(x, y, groups, PRECISION_TARGETS,
                                  per_column=min(dense_columns, x.shape[1]), folds=folds)
        ece, table = reliability(p, y)
        raw_ece = reliability(_uncalibrated(p, head.temperature), y)[0]
        calibration[name] = {"temperature": round(head.temperature, 3),
                             "ece_before": raw_ece, "ece_after": ece, "bins": table,
                             "thresholds": dict(zip(CLASSES, head.thresholds.round(3).tolist(),
                                                    strict=True))}
        heads.append(head)
    return RelationModel(*heads), calibration


def _uncalibrated(p: Array, temperature: float) -> Array:
    z = np.log(np.maximum(p, 1e-300)) * temperature
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)


def decisions(model: RelationModel, pairs: Pairs, rows: Sequence[int], vectors: bool
              ) -> list[RelationDecision]:
    """The full ``decide_relation`` on ``rows``, with or without the vectors."""
    out = []
    for i in rows:
        u = pairs.claim_vectors[i] if vectors and pairs.claim_vectors is not None else None
        v = pairs.item_vectors[i] if vectors and pairs.item_vectors is not None else None
        out.append(decide_relation(pairs.claims[i], pairs.headlines[i], language="en",
                                   claim_vector=u, item_vector=v, model=model))
    return out


def scores(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class precision / recall / F1 over the three relations."""
    per_class, f1s = {}, []
    for rel in CLASSES:
        tp = sum(g == p == rel for g, p in zip(gold, predicted, strict=True))
        n_pred, n_gold = list(predicted).count(rel), list(gold).count(rel)
        prec, rec = tp / n_pred if n_pred else 0.0, tp / n_gold if n_gold else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        f1s.append(f1)
        per_class[rel] = {"precision": round(prec, 4), "recall": round(rec, 4),
                          "f1": round(f1, 4), "predicted": n_pred, "gold": n_gold}
    hits = sum(g == p for g, p in zip(gold, predicted, strict=True))
    return {"stance_accuracy": round(hits / max(1, len(gold)), 4),
            "stance_macro_f1": round(sum(f1s) / len(f1s), 4), "n": len(gold),
            "per_class": per_class}


def _report(gold: list[str], found: list[RelationDecision]) -> dict[str, Any]:
    report = scores(gold, [d.relation for d in found])
    raw = [max(d.probabilities, key=lambda c: d.probabilities[c]) if d.probabilities
           else d.relation for d in found]
    report["argmax_accuracy"] = scores(gold, raw)["stance_accuracy"]
    report["uncertain"] = sum(d.uncertain for d in found)
    return report


def baselines(gold: list[str]) -> dict[str, Any]:
    """The trivial answers: the file's own majority class, and always follow-up."""
    majority = Counter(gold).most_common(1)[0][0] if gold else "follow-up"
    return {name: {"relation": rel, **{k: v for k, v in scores(gold, [rel] * len(gold)).items()
                                       if k != "per_class"}}
            for name, rel in (("majority", majority), ("always_follow_up", "follow-up"))}


def emergent_stance(path: str | Path, cross_validate: bool = True, folds: int = FOLDS
                    ) -> dict[str, Any]:
    """Stance scores on an Emergent CSV, with the vectors and without, beside the baselines.

    ``cross_validate``: nested grouped CV by claim (nothing is scored by a model that saw
    its claim, thresholds included); else the shipped model on this file.
    """
    pairs = read_emergent(Path(path))
    gold = [CLASSES[k] for k in pairs.labels]
    n = len(gold)
    found: dict[bool, list[RelationDecision | None]] = {True: [None] * n, False: [None] * n}
    if cross_validate:
        for test in grouped_folds(pairs.groups, folds):
            model, _ = train(pairs, np.setdiff1d(np.arange(n), test), folds)
            for vectors in (True, False):
                for i, d in zip(test, decisions(model, pairs, test.tolist(), vectors),
                                strict=True):
                    found[vectors][i] = d
        method = (f"nested GroupKFold({folds}) by claimId: relation model, its temperature "
                  "and thresholds fitted on the other claims only")
    else:
        model = load_model(RELATION_MODEL_PATH)
        for vectors in (True, False):
            found[vectors] = list(decisions(model, pairs, range(n), vectors))
        method = "shipped relation model"
    full = _report(gold, [d for d in found[True] if d is not None])
    words = _report(gold, [d for d in found[False] if d is not None])
    return {**full, "method": method, "without_vectors": words, "baselines": baselines(gold)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=RELATION_MODEL_PATH)
    parser.add_argument("--cv-only", action="store_true")
    args = parser.parse_args(argv)
    emergent = args.data / "emergent" / "train.csv"
    print(json.dumps({"emergent_cv": emergent_stance(emergent)}), flush=True)
    if not args.cv_only:
        model, calibration = train(read_emergent(emergent))
        print(json.dumps({"calibration_out_of_fold": calibration}), flush=True)
        save_model(model, args.out, "monitor.match.train_relation on Emergent train.csv; "
                   f"classes {list(CLASSES)}")
        print(f"wrote {args.out} ({args.out.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

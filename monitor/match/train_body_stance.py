"""Rebuild ``body_stance_model.npz`` from the FNC-1 training pairs and cross-validate it.

    python -m monitor.match.train_body_stance --data ../shared/data            # CV + write
    python -m monitor.match.train_body_stance --data ../shared/data --cv-only  # CV only

Only related pairs (agree / disagree / discuss) are used: relatedness is the linker's job.
Each pair is learnt twice, with the whole body and with its first two sentences only (what a
feed's summary holds): by-story CV on the short bodies 0.7115 -> 0.720, whole bodies unchanged.
Cross-validation is grouped three ways, 5 folds each: by headline (the claim; a body can be in
train and test with different headlines), by body, and by story (connected headline-body
components: neither a claim nor a body of the test fold was seen). Training needs
scikit-learn; the written model is plain arrays read with numpy.
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

import numpy as np
import numpy.typing as npt

from monitor.config.claims import DEFAULT_THRESHOLD
from monitor.match.body_features import FEATURE_NAMES, body_features, sentences
from monitor.match.body_stance import BODY_MODEL_PATH
from monitor.match.labelled import FNC1_LABELS, fnc1_labels, fnc1_scores
from monitor.match.semantic import shared_embedder

RELATIONS = ("corroboration", "denial", "follow-up")
TRAIN_BODY_CHARS = 4_000  # the runtime cap (stance.MAX_BODY_CHARS) is the same
SUMMARY_SENTENCES = 2
# Shallow, well-populated leaves: deeper trees memorise bodies (by-headline CV up, by-story down).
PARAMS: dict[str, Any] = {
    "max_iter": 150, "learning_rate": 0.05, "min_samples_leaf": 100, "max_leaf_nodes": 15,
    "random_state": 0,
}
FOLDS = 5
Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Pair:
    headline: str
    body_id: str
    relation: str


def read_fnc1(folder: Path, prefix: str = "train") -> tuple[list[Pair], dict[str, str], int]:
    """Related pairs, bodies by id, and how many pairs are unrelated."""
    with (folder / f"{prefix}_bodies.csv").open(encoding="utf-8", newline="") as fh:
        bodies = {row["Body ID"]: row["articleBody"] for row in csv.DictReader(fh)}
    with (folder / f"{prefix}_stances.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    pairs = [Pair(r["Headline"], r["Body ID"], FNC1_LABELS[r["Stance"]]) for r in rows
             if r["Stance"] in FNC1_LABELS]
    return pairs, bodies, len(rows) - len(pairs)


def features(pairs: Sequence[Pair], bodies: dict[str, str], *, summary: bool = False) -> Matrix:
    """One row per pair; ``summary``: from the body's first sentences only."""
    texts = {bid: text[:TRAIN_BODY_CHARS] for bid, text in bodies.items()}
    if summary:
        texts = {bid: " ".join(sentences(text)[:SUMMARY_SENTENCES]) for bid, text in texts.items()}
    rows = []
    for pair in pairs:
        feats = body_features(pair.headline, "", texts[pair.body_id])
        rows.append([feats[name] for name in FEATURE_NAMES])
    return np.array(rows, dtype=np.float64)


def stories(pairs: Sequence[Pair]) -> list[str]:
    """Each pair's connected component of the headline-body graph."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for pair in pairs:
        parent[root("h" + pair.headline)] = root("b" + pair.body_id)
    return [root("h" + pair.headline) for pair in pairs]


def _classifier() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier  # type: ignore[import-not-found,unused-ignore]

    return HistGradientBoostingClassifier(**PARAMS)


def fit(x: Matrix, x_summary: Matrix, labels: Sequence[str]) -> Any:
    """The classifier fitted on whole bodies and summaries together."""
    return _classifier().fit(np.vstack([x, x_summary]), [*labels, *labels])


def cross_validate(
    x: Matrix, x_summary: Matrix, labels: Sequence[str], groups: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Held-out predictions for whole bodies and for their summaries."""
    from sklearn.model_selection import GroupKFold  # type: ignore[import-not-found,unused-ignore]

    whole = np.empty(len(labels), dtype=object)
    short = np.empty(len(labels), dtype=object)
    y = np.array(labels)
    for train, test in GroupKFold(n_splits=FOLDS).split(x, y, groups):
        clf = fit(x[train], x_summary[train], list(y[train]))
        whole[test], short[test] = clf.predict(x[test]), clf.predict(x_summary[test])
    return [str(p) for p in whole], [str(p) for p in short]


def linked_fnc_score(folder: Path, predictions: dict[tuple[str, str], str]) -> float:
    """``monitor eval fnc1``'s score (the production linker decides relatedness) with these
    held-out stance predictions, keyed by (headline, body text), for the related pairs."""
    # Unrelated pairs the linker links have no prediction; any label scores nothing there.
    gold, predicted = fnc1_labels(
        folder / "train_stances.csv", folder / "train_bodies.csv",
        lambda head, body: predictions.get((head, body), "follow-up"),
        threshold=DEFAULT_THRESHOLD, embedder=shared_embedder())
    return fnc1_scores(gold, predicted)["fnc_score"]


def scores(
    gold: Sequence[str], predicted: Sequence[str], unrelated: int
) -> dict[str, float]:
    """Accuracy, macro-F1 and the FNC-1 score with gold relatedness."""
    f1s = []
    for rel in RELATIONS:
        tp = sum(g == p == rel for g, p in zip(gold, predicted, strict=True))
        n_pred, n_gold = list(predicted).count(rel), list(gold).count(rel)
        prec, rec = tp / n_pred if n_pred else 0.0, tp / n_gold if n_gold else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    hits = sum(g == p for g, p in zip(gold, predicted, strict=True))
    best = 0.25 * unrelated + len(gold)
    return {
        "accuracy": round(hits / len(gold), 4),
        "macro_f1": round(sum(f1s) / len(f1s), 4),
        "fnc_score_gold_relatedness": round((0.25 * (unrelated + len(gold)) + 0.75 * hits) / best,
                                            4),
    }


def export(clf: Any, path: Path) -> None:
    """The fitted trees as flat arrays (see ``body_stance.BodyStanceModel``)."""
    arrays: dict[str, list[Any]] = {name: [] for name in (
        "feature", "threshold", "left", "right", "value", "is_leaf", "roots", "tree_class")}
    for trees in clf._predictors:
        for k, tree in enumerate(trees):
            nodes, offset = tree.nodes, len(arrays["feature"])
            arrays["roots"].append(offset)
            arrays["tree_class"].append(k)
            arrays["feature"] += [int(f) for f in nodes["feature_idx"]]
            arrays["threshold"] += [float(t) for t in nodes["num_threshold"]]
            arrays["left"] += [int(n) + offset for n in nodes["left"]]
            arrays["right"] += [int(n) + offset for n in nodes["right"]]
            arrays["value"] += _mean_values(nodes)
            arrays["is_leaf"] += [bool(b) for b in nodes["is_leaf"]]
    baseline = np.asarray(clf._baseline_prediction, dtype=np.float64).reshape(-1)
    if len(baseline) == 1:  # binary problems keep one raw score; ours has three classes
        raise ValueError("body stance: expected three classes")
    np.savez_compressed(
        path, classes=np.array([str(c) for c in clf.classes_]), names=np.array(FEATURE_NAMES),
        baseline=baseline, feature=np.array(arrays["feature"], dtype=np.int16),
        threshold=np.array(arrays["threshold"], dtype=np.float64),
        left=np.array(arrays["left"], dtype=np.int32),
        right=np.array(arrays["right"], dtype=np.int32),
        value=np.array(arrays["value"], dtype=np.float32),
        is_leaf=np.array(arrays["is_leaf"]), roots=np.array(arrays["roots"], dtype=np.int32),
        tree_class=np.array(arrays["tree_class"], dtype=np.int8),
    )


def _mean_values(nodes: Any) -> list[float]:
    """Leaf outputs as they are; an inner node gets its leaves' count-weighted mean."""
    values = [float(v) for v in nodes["value"]]
    for n in reversed(range(len(nodes))):  # children always follow their parent
        if not nodes["is_leaf"][n]:
            left, right = int(nodes["left"][n]), int(nodes["right"][n])
            cl, cr = float(nodes["count"][left]), float(nodes["count"][right])
            values[n] = (values[left] * cl + values[right] * cr) / max(1.0, cl + cr)
    return values


def evaluate(folder: Path, *, link: bool = False) -> dict[str, Any]:
    """Grouped cross-validation of the body model on FNC-1's related pairs; ``link``: also
    the FNC-1 score with the production linker's relatedness (``monitor eval fnc1``)."""
    pairs, bodies, unrelated = read_fnc1(folder)
    x, x_summary = features(pairs, bodies), features(pairs, bodies, summary=True)
    gold = [p.relation for p in pairs]
    report: dict[str, Any] = {
        "pairs": len(pairs),
        "always_follow_up": scores(gold, ["follow-up"] * len(gold), unrelated),
    }
    groupings = {"by_headline": [p.headline for p in pairs],
                 "by_body": [p.body_id for p in pairs], "by_story": stories(pairs)}
    for name, groups in groupings.items():
        whole, short = cross_validate(x, x_summary, gold, groups)
        report[name] = scores(gold, whole, unrelated)
        report[f"{name}_summary_only"] = scores(gold, short, unrelated)
        if link:  # a minute each: the linker scores all 50,000 pairs
            keyed = {(p.headline, bodies[p.body_id]): r for p, r in zip(pairs, whole, strict=True)}
            report[name]["fnc_score_link_relatedness"] = linked_fnc_score(folder, keyed)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=BODY_MODEL_PATH)
    parser.add_argument("--cv-only", action="store_true")
    parser.add_argument("--link", action="store_true",
                        help="also score FNC-1 with the production linker's relatedness")
    args = parser.parse_args(argv)
    folder = args.data / "fnc-1"
    print(json.dumps({"fnc1_body_stance_cv": evaluate(folder, link=args.link)}), flush=True)
    if not args.cv_only:
        pairs, bodies, _ = read_fnc1(folder)
        x, x_summary = features(pairs, bodies), features(pairs, bodies, summary=True)
        export(fit(x, x_summary, [p.relation for p in pairs]), args.out)
        print(f"wrote {args.out} ({args.out.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

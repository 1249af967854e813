"""The body-aware stance model: gradient-boosted trees over ``body_features``, numpy only.

Trained on the related pairs of FNC-1 (agree / disagree / discuss as corroboration / denial /
follow-up) by ``python -m monitor.match.train_body_stance``, stored as flat node arrays in
``body_stance_model.npz``. Prediction walks every tree at once, one level per step, and
credits each split's change of value to its feature (Saabas attribution), so a decision names
the feature that pushed it most. Loading raises OSError or ValueError on an unusable file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from monitor.match.body_features import body_features

BODY_MODEL_PATH = Path(__file__).with_name("body_stance_model.npz")
_ARRAYS = ("feature", "threshold", "left", "right", "value", "is_leaf", "roots", "tree_class")


@dataclass(frozen=True, slots=True)
class BodyPrediction:
    """The best class, its probability and the feature that pushed it most."""

    relation: str
    probability: float
    top_feature: str


@dataclass(frozen=True, slots=True, eq=False)
class BodyStanceModel:
    """Boosted trees as flat arrays: node ``n`` splits on ``feature[n] <= threshold[n]``."""

    classes: tuple[str, ...]
    feature_names: tuple[str, ...]
    baseline: npt.NDArray[np.float64]
    feature: npt.NDArray[np.int32]
    threshold: npt.NDArray[np.float64]
    left: npt.NDArray[np.int32]
    right: npt.NDArray[np.int32]
    value: npt.NDArray[np.float64]  # leaves: the tree's output; inner nodes: count-weighted mean
    is_leaf: npt.NDArray[np.bool_]
    roots: npt.NDArray[np.int32]
    tree_class: npt.NDArray[np.int32]

    def predict_vector(self, x: npt.NDArray[np.float64]) -> BodyPrediction:
        """Predict from a feature row ordered as ``feature_names``."""
        node = self.roots.copy()
        push = np.zeros((len(self.classes), len(self.feature_names)))
        while True:
            inner = ~self.is_leaf[node]
            if not inner.any():
                break
            at = node[inner]
            goes_left = x[self.feature[at]] <= self.threshold[at]
            child = np.where(goes_left, self.left[at], self.right[at])
            np.add.at(push, (self.tree_class[inner], self.feature[at]),
                      self.value[child] - self.value[at])
            node[inner] = child
        raw = self.baseline.copy()
        np.add.at(raw, self.tree_class, self.value[node])
        probs = np.exp(raw - raw.max())
        probs /= probs.sum()
        best = int(probs.argmax())
        top = int(push[best].argmax())
        top_name = self.feature_names[top] if push[best, top] > 0 else "prior"
        return BodyPrediction(self.classes[best], float(probs[best]), top_name)

    def predict(self, claim: str, title: str, body: str, language: str = "en") -> BodyPrediction:
        feats = body_features(claim, title, body, language)
        x = np.array([feats.get(name, 0.0) for name in self.feature_names], dtype=np.float64)
        return self.predict_vector(x)


def load_body_model(path: Path) -> BodyStanceModel:
    """Read a model written by ``train_body_stance``; OSError or ValueError when unusable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in (*_ARRAYS, "baseline", "classes", "names")}
    except KeyError as exc:
        raise ValueError(f"body stance model {path}: missing array {exc}") from exc
    model = BodyStanceModel(
        classes=tuple(str(c) for c in arrays["classes"]),
        feature_names=tuple(str(n) for n in arrays["names"]),
        baseline=arrays["baseline"].astype(np.float64),
        feature=arrays["feature"].astype(np.int32),
        threshold=arrays["threshold"].astype(np.float64),
        left=arrays["left"].astype(np.int32),
        right=arrays["right"].astype(np.int32),
        value=arrays["value"].astype(np.float64),
        is_leaf=arrays["is_leaf"].astype(np.bool_),
        roots=arrays["roots"].astype(np.int32),
        tree_class=arrays["tree_class"].astype(np.int32),
    )
    _check(model, path)
    return model


def _check(model: BodyStanceModel, path: Path) -> None:
    nodes = len(model.feature)
    sizes = {len(getattr(model, name)) for name in ("threshold", "left", "right", "value",
                                                     "is_leaf")}
    inner = ~model.is_leaf
    bad = (
        sizes != {nodes}
        or len(model.roots) != len(model.tree_class)
        or len(model.baseline) != len(model.classes)
        or (model.tree_class >= len(model.classes)).any()
        or (model.roots >= nodes).any()
        or (model.feature[inner] >= len(model.feature_names)).any()
        or (model.left[inner] >= nodes).any()
        or (model.right[inner] >= nodes).any()
        # children come after their parent, so a walk always ends
        or (model.left[inner] <= np.flatnonzero(inner)).any()
        or (model.right[inner] <= np.flatnonzero(inner)).any()
    )
    if bad:
        raise ValueError(f"body stance model {path}: inconsistent arrays")


@cache
def default_body_model() -> BodyStanceModel | None:
    """The shipped model, read once; None when the file is missing."""
    return load_body_model(BODY_MODEL_PATH) if BODY_MODEL_PATH.is_file() else None

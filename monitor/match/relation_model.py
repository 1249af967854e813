"""The relation model: calibrated softmax regression over ``relation_features``, numpy only.

Two heads share one file (``relation_model.npz``, rebuilt by
``python -m monitor.match.train_relation``): ``full`` reads the cue features and the e5
vectors of claim and item; ``words`` reads the cue features alone, for when semantic matching
is off (no vectors) and for body sentences, which have no vector of their own. Each head holds
its feature standardisation, weights, a temperature fitted on held-out folds (so its
probabilities are calibrated) and the thresholds a denial and a corroboration must reach
(chosen on held-out folds for denial precision >= 0.90). Loading raises OSError or ValueError
on an unusable file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

RELATION_MODEL_PATH = Path(__file__).with_name("relation_model.npz")
CLASSES = ("corroboration", "denial", "follow-up")
HEADS = ("full", "words")
_FIELDS = ("mean", "scale", "weights", "bias", "temperature", "thresholds")
Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class Head:
    """Standardise, a linear map to one score per class, divide by the temperature, softmax."""

    mean: Array
    scale: Array
    weights: Array  # (features, classes)
    bias: Array  # (classes,)
    temperature: float
    thresholds: Array  # per class: the calibrated probability it needs (follow-up: 0)

    def logits(self, x: Array) -> Array:
        return (((x - self.mean) / self.scale) @ self.weights + self.bias) / self.temperature

    def probabilities(self, x: Array) -> Array:
        """One row of class probabilities per row of ``x`` (or one row for a vector)."""
        z = self.logits(x)
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=-1, keepdims=True), dtype=np.float64)

    def contributions(self, x: Array, k: int) -> Array:
        """Each feature's push towards class ``k`` (for naming what decided)."""
        return np.asarray(((x - self.mean) / self.scale) * self.weights[:, k], dtype=np.float64)


@dataclass(frozen=True, slots=True, eq=False)
class RelationModel:
    full: Head
    words: Head


def save_model(model: RelationModel, path: Path, about: str) -> None:
    arrays: dict[str, npt.NDArray[np.generic]] = {"about": np.array(about)}
    for name in HEADS:
        head: Head = getattr(model, name)
        for field in _FIELDS:
            value = np.asarray(getattr(head, field), dtype=np.float32)
            arrays[f"{name}_{field}"] = value
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]


def load_model(path: Path) -> RelationModel:
    """Read a model written by ``train_relation``; OSError or ValueError when unusable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            heads = [
                Head(mean=data[f"{name}_mean"].astype(np.float64),
                     scale=data[f"{name}_scale"].astype(np.float64),
                     weights=data[f"{name}_weights"].astype(np.float64),
                     bias=data[f"{name}_bias"].astype(np.float64),
                     temperature=float(data[f"{name}_temperature"]),
                     thresholds=data[f"{name}_thresholds"].astype(np.float64))
                for name in HEADS
            ]
    except KeyError as exc:
        raise ValueError(f"relation model {path}: missing array {exc}") from exc
    for name, head in zip(HEADS, heads, strict=True):
        n = len(head.mean)
        if (head.scale.shape != (n,) or head.weights.shape != (n, len(CLASSES))
                or head.bias.shape != (len(CLASSES),) or head.thresholds.shape != (len(CLASSES),)
                or not head.temperature > 0 or not np.isfinite(head.weights).all()):
            raise ValueError(f"relation model {path}: head {name!r} has inconsistent arrays")
    return RelationModel(*heads)


@cache
def default_relation_model() -> RelationModel | None:
    """The shipped model, read once; None when the file is missing."""
    return load_model(RELATION_MODEL_PATH) if RELATION_MODEL_PATH.is_file() else None

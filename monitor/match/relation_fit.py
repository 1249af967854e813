"""Fitting the relation model in numpy: softmax regression, grouped folds, calibration.

No scikit-learn: the project's evaluation retrains per fold on machines without the training
extra. The problem is small (a few thousand pairs, ~1,200 features), so a full-batch L-BFGS
on the L2-regularised cross-entropy converges in a second or two.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from monitor.match.relation_model import CLASSES, Head

Array = npt.NDArray[np.float64]
Labels = npt.NDArray[np.intp]
L2 = 0.01  # grouped CV accuracy: 0.771 at 0.003, 0.777 at 0.01, 0.774 at 0.03
VECTOR_WEIGHT = 0.3  # 0.770 at 0.2, 0.777 at 0.3, 0.775 at 0.45 (l2 0.01)
DENIAL, CORROBORATION, FOLLOW_UP = (CLASSES.index(c) for c in ("denial", "corroboration",
                                                                 "follow-up"))


def grouped_folds(groups: Sequence[str], folds: int) -> list[npt.NDArray[np.intp]]:
    """Test indices per fold; every group in exactly one fold, folds of similar size
    (largest groups first, each to the smallest fold so far: GroupKFold's rule)."""
    members: dict[str, list[int]] = {}
    for n, group in enumerate(groups):
        members.setdefault(group, []).append(n)
    buckets: list[list[int]] = [[] for _ in range(folds)]
    for group in sorted(members, key=lambda g: (-len(members[g]), g)):
        min(buckets, key=len).extend(members[group])
    return [np.array(sorted(b), dtype=np.intp) for b in buckets if b]


def softmax(z: Array) -> Array:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)


def fit_softmax(x: Array, y: Labels, l2: float, iterations: int = 300,
                sample_weight: Array | None = None) -> tuple[Array, Array]:
    """Weights (features, classes) and bias minimising the mean cross-entropy plus
    ``l2 / 2 * |W|^2`` (the bias is not penalised), by L-BFGS with a backtracking search."""
    n, d = x.shape
    k = len(CLASSES)
    onehot = np.eye(k)[y]
    w8 = np.ones(n) if sample_weight is None else sample_weight
    w8 = w8 / w8.sum()

    def loss_grad(theta: Array) -> tuple[float, Array]:
        w, b = theta[: d * k].reshape(d, k), theta[d * k :]
        p = softmax(x @ w + b)
        loss = -float(w8 @ np.log(np.maximum((p * onehot).sum(axis=1), 1e-300)))
        loss += 0.5 * l2 * float((w * w).sum())
        r = (p - onehot) * w8[:, None]
        return loss, np.concatenate([(x.T @ r + l2 * w).ravel(), r.sum(axis=0)])

    theta = np.zeros(d * k + k)
    f, g = loss_grad(theta)
    history: list[tuple[Array, Array]] = []
    for _ in range(iterations):
        direction = -_two_loop(g, history)
        step, slope = 1.0, float(g @ direction)
        if slope >= 0:  # not a descent direction: restart from the gradient
            history, direction, slope = [], -g, -float(g @ g)
        while True:
            candidate = theta + step * direction
            f_new, g_new = loss_grad(candidate)
            if f_new <= f + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s, t = candidate - theta, g_new - g
        if float(s @ t) > 1e-12:
            history = [*history[-9:], (s, t)]
        converged = abs(f - f_new) < 1e-9 * max(1.0, abs(f))
        theta, f, g = candidate, f_new, g_new
        if converged:
            break
    return theta[: d * k].reshape(d, k), theta[d * k :]


def _two_loop(g: Array, history: list[tuple[Array, Array]]) -> Array:
    q = g.copy()
    alphas = []
    for s, t in reversed(history):
        a = float(s @ q) / float(t @ s)
        alphas.append(a)
        q -= a * t
    if history:
        s, t = history[-1]
        q *= float(s @ t) / float(t @ t)
    for (s, t), a in zip(history, reversed(alphas), strict=True):
        q += s * (a - float(t @ q) / float(t @ s))
    return q


def fit_linear(x: Array, y: Labels, l2: float, per_column: int | None = None,
               vector_weight: float = VECTOR_WEIGHT) -> Head:
    """A head with standardised features and temperature 1 (calibrate it afterwards).

    The first ``per_column`` columns (all by default: the cue features and the cosine) are
    standardised one by one; the rest (an e5 vector) are centred and divided by one common
    spread, then weighted by ``vector_weight``: per-dimension scaling inflates the vector's
    noise dimensions (accuracy 0.754 against 0.777 at 0.3).
    """
    per_column = x.shape[1] if per_column is None else per_column
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    if per_column < x.shape[1]:
        spread = float(x[:, per_column:].std()) or 1.0
        scale[per_column:] = spread / vector_weight
    scale[scale < 1e-9] = 1.0
    w, b = fit_softmax((x - mean) / scale, y, l2)
    return Head(mean, scale, w, b, 1.0, np.zeros(len(CLASSES)))


def out_of_fold_logits(x: Array, y: Labels, groups: Sequence[str], l2: float,
                       folds: int, per_column: int | None = None) -> Array:
    """Logits of every row from a head that never saw its group."""
    logits = np.zeros((len(y), len(CLASSES)))
    for test in grouped_folds(groups, folds):
        train = np.setdiff1d(np.arange(len(y)), test)
        head = fit_linear(x[train], y[train], l2, per_column)
        logits[test] = head.logits(x[test])
    return logits


def fit_temperature(logits: Array, y: Labels) -> float:
    """The temperature minimising held-out negative log-likelihood (a grid, then refined)."""
    def nll(t: float) -> float:
        p = softmax(logits / t)
        return -float(np.mean(np.log(np.maximum(p[np.arange(len(y)), y], 1e-300))))

    grid = np.exp(np.linspace(np.log(0.25), np.log(4.0), 81))
    best = float(min(grid, key=nll))
    fine = np.linspace(best * 0.95, best * 1.05, 21)
    return float(min(fine, key=nll))


def choose_threshold(p: Array, y: Labels, k: int, precision: float, min_predicted: int = 10
                     ) -> float:
    """The lowest probability at which predicting class ``k`` (argmax and at least this sure)
    reaches ``precision`` on these held-out rows; 1.0 (never) when no threshold does."""
    top = p.argmax(axis=1) == k
    candidates = np.unique(np.round(p[top, k], 3))
    for t in candidates:
        chosen = top & (p[:, k] >= t)
        if chosen.sum() >= min_predicted and (y[chosen] == k).mean() >= precision:
            return float(t)
    return 1.0


def decide(p: Array, thresholds: Array) -> tuple[Labels, npt.NDArray[np.bool_]]:
    """Argmax, with a denial or corroboration under its threshold demoted to follow-up;
    also which rows were demoted (uncertain)."""
    best = p.argmax(axis=1)
    demoted = p[np.arange(len(best)), best] < thresholds[best]
    return np.where(demoted, FOLLOW_UP, best).astype(np.intp), demoted & (best != FOLLOW_UP)


def calibrated_head(x: Array, y: Labels, groups: Sequence[str], precision: dict[int, float],
                    per_column: int | None = None, folds: int = 5, l2: float = L2
                    ) -> tuple[Head, Array]:
    """A head fitted on everything, its temperature and thresholds chosen on out-of-fold
    predictions (grouped), and those out-of-fold calibrated probabilities."""
    logits = out_of_fold_logits(x, y, groups, l2, folds, per_column)
    temperature = fit_temperature(logits, y)
    p = softmax(logits / temperature)
    thresholds = np.zeros(len(CLASSES))
    for k, target in precision.items():
        thresholds[k] = choose_threshold(p, y, k, target)
    head = fit_linear(x, y, l2, per_column)
    return Head(head.mean, head.scale, head.weights, head.bias, temperature, thresholds), p


def reliability(p: Array, y: Labels, bins: int = 10) -> tuple[float, list[dict[str, object]]]:
    """Expected calibration error of the top class and the table behind it."""
    conf = p.max(axis=1)
    right = p.argmax(axis=1) == y
    table: list[dict[str, object]] = []
    ece = 0.0
    for lo in np.linspace(0, 1, bins, endpoint=False):
        hi = lo + 1 / bins
        inside = (conf >= lo) & (conf < hi if hi < 1 else conf <= hi)
        if inside.any():
            gap = abs(float(conf[inside].mean()) - float(right[inside].mean()))
            ece += gap * inside.mean()
            table.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": int(inside.sum()),
                          "confidence": round(float(conf[inside].mean()), 3),
                          "accuracy": round(float(right[inside].mean()), 3)})
    return round(float(ece), 4), table

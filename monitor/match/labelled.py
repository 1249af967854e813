"""Labelled pairs scored through the production linker: what ``monitor eval`` and training share.

FNC-1 asks about (headline, body) pairs: the link score says related or not, then a stance
function labels the related ones. ``monitor eval fnc1`` labels them with the shipped body model,
``python -m monitor.match.train_body_stance --link`` with its held-out predictions; both link
and score here, beside the matcher, so that training does not import the eval layer above.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

from monitor.config.claims import ClaimConfig
from monitor.match.index import ClaimIndex
from monitor.match.matcher import blend
from monitor.match.score import ItemText, score_claim
from monitor.match.semantic import Embedder, Vectors
from monitor.match.text import keys

csv.field_size_limit(10_000_000)  # FNC-1 bodies are long
FNC1_LABELS = {"agree": "corroboration", "disagree": "denial", "discuss": "follow-up"}
_FNC1_BACK = {relation: label for label, relation in FNC1_LABELS.items()}
RelationOf = Callable[[str, str], str]  # (headline, body) -> our relation


def claim_from_text(claim_id: str, text: str) -> ClaimConfig:
    """A claim made of a data set's text (padded: a claim needs ten characters)."""
    return ClaimConfig(id=claim_id, text=text if len(text) >= 10 else text.ljust(10, "."))


def vectors_for(embedder: Embedder | None, texts: Sequence[str]) -> list[Vectors | None]:
    """Every query text embedded up front, in batches and cached, so that re-running an
    evaluation costs seconds; the matcher still decides per item whether to use its vector."""
    if embedder is None:
        return [None] * len(texts)
    return list(embedder.embed_cached(texts))


def fnc1_labels(stances_path: Path, bodies_path: Path, relation_of: RelationOf, *,
                threshold: float, embedder: Embedder | None) -> tuple[list[str], list[str]]:
    """Gold and predicted FNC-1 labels of every pair in the files, in file order.

    Each pair is scored as the matcher scores a candidate (words, blended with the meaning of
    headline and body when there is an ``embedder``): at ``threshold`` or above it is related
    and ``relation_of`` labels it, below it is unrelated.
    """
    with bodies_path.open(encoding="utf-8") as handle:
        bodies = {row["Body ID"]: row["articleBody"] for row in csv.DictReader(handle)}
    with stances_path.open(encoding="utf-8") as handle:
        pairs = list(csv.DictReader(handle))
    headlines = sorted({row["Headline"] for row in pairs})
    index = ClaimIndex([claim_from_text(f"h{n}", text) for n, text in enumerate(headlines)],
                       embedder)
    position = {text: n for n, text in enumerate(headlines)}
    body_items = {bid: _body_item(text) for bid, text in bodies.items()}
    body_vectors = dict(zip(bodies, vectors_for(embedder, list(bodies.values())), strict=True))
    gold, predicted = [], []
    for row in pairs:
        claim_at = position[row["Headline"]]
        score = score_claim(index.claims[claim_at], body_items[row["Body ID"]], index.weight)
        vector = body_vectors[row["Body ID"]]
        if score is not None and index.vectors is not None and vector is not None:
            score = blend(score, float(index.vectors.matrix[claim_at] @ vector))
        label = "unrelated"
        if score is not None and score.value >= threshold:
            label = _FNC1_BACK[relation_of(row["Headline"], bodies[row["Body ID"]])]
        gold.append(row["Stance"])
        predicted.append(label)
    return gold, predicted


def _body_item(text: str) -> ItemText:
    body = tuple(keys(text, "en"))
    return ItemText(body[:40], body, "en")


def fnc1_scores(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """FNC-1's weighted score (0.25 for relatedness, 0.75 more for the stance), relatedness
    accuracy and macro-F1 over the four labels."""
    score = maximum = 0.0
    for truth, guess in zip(gold, predicted, strict=True):
        maximum += 0.25 if truth == "unrelated" else 1.0
        if (truth == "unrelated") == (guess == "unrelated"):
            score += 0.25
            if truth != "unrelated" and truth == guess:
                score += 0.75
    related_right = sum((t == "unrelated") == (p == "unrelated")
                        for t, p in zip(gold, predicted, strict=True))
    f1s = []
    for label in ("agree", "disagree", "discuss", "unrelated"):
        tp = sum(t == p == label for t, p in zip(gold, predicted, strict=True))
        guessed = sum(p == label for p in predicted)
        actual = sum(t == label for t in gold)
        f1s.append(f1(tp / guessed if guessed else 0.0, tp / actual if actual else 0.0))
    return {"fnc_score": round(score / maximum, 4),
            "relatedness_accuracy": round(related_right / len(gold), 4),
            "macro_f1": round(sum(f1s) / len(f1s), 4)}


def f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0

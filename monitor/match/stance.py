"""Decide how a news item relates to the tracked claim it was linked to.

``decide_relation`` answers follow-up (reports or repeats the claim), denial (someone rejects
it) or corroboration (someone confirms it), with the cue that decided and a confidence.
Order of evidence: an explicit, non-negated cue in the headline ("denied", "опроверг",
"спростував"); a negated claim word ("не просил" against a claim about asking); for English,
a logistic-regression model trained on Emergent (``stance_model.json``, rebuilt by
``python -m monitor.match.train_stance``); then cues in the body; else follow-up.
A corroboration voiced by the claim's own speaker is demoted to follow-up.
Pure: no I/O except reading the shipped model once; never raises on odd text.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from monitor.match.stance_features import (
    Cue,
    find_cues,
    guess_language,
    is_negated,
    latin_key,
    model_features,
    tokens,
)

Relation = Literal["follow-up", "denial", "corroboration"]
MODEL_PATH = Path(__file__).with_name("stance_model.json")
MAX_HEADLINE_CHARS = 1_000
MAX_BODY_CHARS = 2_000
# Below this the model's "corroboration" is reported as follow-up: a false confirmation is the
# costliest error for a desk. Emergent CV: 0.775 accuracy at 0.0, 0.773 at 0.5, 0.760 at 0.6.
MIN_MODEL_CORROBORATION = 0.5
_LABELS: dict[str, Relation] = {
    "for": "corroboration", "against": "denial", "observing": "follow-up",
    "corroboration": "corroboration", "denial": "denial", "follow-up": "follow-up",
}
_SUBJECT_CHARS = 30  # a speaker named this early in a headline is taken as its subject
_WORD = re.compile(r"[^\W\d_]{4,}")
_COMMON = frozenset(
    ["been", "have", "has", "was", "were", "are", "did", "does", "было", "были", "есть", "була"]
)


@dataclass(frozen=True, slots=True)
class RelationDecision:
    """The relation of an item to its claim, the human-readable cue behind it, and 0..1 trust."""

    relation: Relation
    cue: str
    confidence: float


@dataclass(frozen=True, slots=True)
class StanceModel:
    """Multinomial logistic regression stored as sparse weights (no numpy needed)."""

    classes: tuple[Relation, ...]
    intercept: tuple[float, ...]
    weights: dict[str, tuple[float, ...]]

    def predict(self, feats: dict[str, float]) -> tuple[Relation, float, str]:
        """The best class, its probability and the feature that pushed it most."""
        scores = list(self.intercept)
        best_push: dict[int, tuple[float, str]] = {}
        for name, value in feats.items():
            for k, w in enumerate(self.weights.get(name, ())):
                scores[k] += w * value
                if w * value > best_push.get(k, (0.0, ""))[0]:
                    best_push[k] = (w * value, name)
        top = max(scores)
        exps = [math.exp(s - top) for s in scores]
        k = exps.index(1.0)
        return self.classes[k], 1.0 / sum(exps), best_push.get(k, (0.0, "prior"))[1]


def load_model(path: Path) -> StanceModel:
    """Read a model written by ``train_stance``; raises OSError or ValueError when unusable."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return StanceModel(
        classes=tuple(_LABELS[c] for c in data["classes"]),
        intercept=tuple(float(x) for x in data["intercept"]),
        weights={k: tuple(float(x) for x in v) for k, v in data["weights"].items()},
    )


@cache
def default_model() -> StanceModel | None:
    """The shipped model, read once; None (rules only) when the file is missing."""
    return load_model(MODEL_PATH) if MODEL_PATH.is_file() else None


def decide_relation(
    claim_text: str,
    headline: str,
    body: str = "",
    *,
    language: str | None = None,
    claim_speaker: str | None = None,
    model: StanceModel | None = None,
) -> RelationDecision:
    """Follow-up, denial or corroboration of ``claim_text`` by the item; see the module doc."""
    claim = str(claim_text or "")[:MAX_HEADLINE_CHARS]
    head = str(headline or "")[:MAX_HEADLINE_CHARS]
    text = str(body or "")[:MAX_BODY_CHARS]
    lang = language if language in ("en", "ru", "uk") else guess_language(head or text)
    decision = _decide(claim, head, text, lang, model or default_model())
    return _speaker_check(decision, head, claim_speaker)


def _decide(
    claim: str, head: str, body: str, lang: str, model: StanceModel | None
) -> RelationDecision:
    cues = find_cues(head)
    decisive = _first_decisive(cues)
    if decisive is not None:
        return _from_cue(decisive, 0.85, "")
    negated = _negated_claim_word(claim, head, cues)
    if negated:
        return RelationDecision("denial", f"negated claim word '{negated}' ({lang})", 0.7)
    if lang == "en" and model is not None and head.strip():
        relation, p, top = model.predict(model_features(claim, head))
        if relation == "corroboration" and p < MIN_MODEL_CORROBORATION:
            relation = "follow-up"
        if relation != "follow-up" or _first_decisive(find_cues(body)) is None:
            return RelationDecision(relation, f"model: p={p:.2f} ({relation}); top '{top}'", p)
    body_cue = _first_decisive(find_cues(body))
    if body_cue is not None:
        return _from_cue(body_cue, 0.6, " in body")
    return _follow_up(cues, lang)


def _first_decisive(cues: list[Cue]) -> Cue | None:
    """A denial wins over a confirmation ("admits the story was made up"); else the first."""
    live = [c for c in cues if c.kind != "hedge" and not c.negated]
    return next((c for c in live if c.kind == "denial"), live[0] if live else None)


def _from_cue(cue: Cue, confidence: float, where: str) -> RelationDecision:
    relation: Relation = "denial" if cue.kind == "denial" else "corroboration"
    return RelationDecision(relation, f"cue '{cue.phrase}' ({cue.language}){where}", confidence)


def _follow_up(cues: list[Cue], lang: str) -> RelationDecision:
    negated = next((c for c in cues if c.negated), None)
    if negated is not None:
        return RelationDecision("follow-up", f"negated cue '{negated.phrase}' ({lang})", 0.6)
    hedge = next((c for c in cues if c.kind == "hedge"), None)
    if hedge is not None:
        return RelationDecision("follow-up", f"reporting cue '{hedge.phrase}' ({lang})", 0.6)
    return RelationDecision("follow-up", f"no denial or confirmation cue ({lang})", 0.5)


def _negated_claim_word(claim: str, head: str, cues: list[Cue]) -> str:
    """'не просил' when the claim says 'просили' and does not negate it itself."""
    if any(c.negated and c.kind != "hedge" for c in cues):
        return ""  # "did not deny asking": the negation belongs to the cue
    claim_words = [w for w in _WORD.findall(claim) if w.islower() and w not in _COMMON]
    for m in _WORD.finditer(head):
        word = m.group(0).casefold()
        if word in _COMMON or not is_negated(head, m.start()):
            continue
        if any(_same_stem(word, c) for c in claim_words) and not _claim_negates(claim, word):
            return head[max(0, m.start() - 12) : m.end()].strip()
    return ""


def _same_stem(a: str, b: str) -> bool:
    n = max(4, min(len(a), len(b)) - 2)
    return a[:n] == b[:n]


def _claim_negates(claim: str, word: str) -> bool:
    folded = claim.casefold()
    return any(
        is_negated(claim, m.start()) for m in re.finditer(re.escape(word[:4]), folded)
    )


def _speaker_check(
    decision: RelationDecision, head: str, speaker: str | None
) -> RelationDecision:
    """A corroboration voiced by the claim's own speaker is only a repetition."""
    if decision.relation != "corroboration" or not speaker:
        return decision
    at = _speaker_position(head, speaker)
    cue_at = _cue_position(head, decision.cue)
    if at is None or at > (_SUBJECT_CHARS if cue_at is None else cue_at):
        return decision
    return RelationDecision(
        "follow-up", f"claim's own speaker '{speaker}' repeats it ({decision.cue})", 0.7
    )


def _speaker_position(head: str, speaker: str) -> int | None:
    key = latin_key(head)
    names = [latin_key(n) for n in tokens(speaker) if len(n) >= 4]
    hits = [m.start() for n in names for m in re.finditer(re.escape(n[: max(4, len(n) - 2)]), key)]
    return min(hits) if hits else None


def _cue_position(head: str, cue: str) -> int | None:
    """Where the deciding cue stands in ``latin_key(head)``; None for model decisions."""
    m = re.search(r"cue '([^']+)'", cue)
    at = head.find(m.group(1)) if m else -1
    return len(latin_key(head[:at])) if at >= 0 else None

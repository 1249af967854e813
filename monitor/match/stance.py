"""Decide how a news item relates to the tracked claim it was linked to.

``decide_relation`` answers follow-up (reports or repeats the claim), denial (someone rejects
it) or corroboration (someone confirms it), with the cue that decided and a confidence.
Order of evidence: an explicit, non-negated cue in the headline ("denied", "опроверг",
"спростував"); a negated claim word ("не просил" against a claim about asking); for English,
a logistic-regression model trained on Emergent headlines (``stance_model.json``, rebuilt by
``python -m monitor.match.train_stance``) when it finds a denial or confirmation (over a body,
only when at least ``MIN_HEADLINE_MODEL_OVER_BODY`` sure); for an English item with a body, the
body model (boosted trees trained on FNC-1 bodies,
``body_stance_model.npz``, rebuilt by ``python -m monitor.match.train_body_stance``); else the
headline model's answer, then cues in the body; else follow-up.
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

from monitor.match.body_stance import BodyStanceModel, default_body_model
from monitor.match.stance_features import (
    Cue,
    find_cues,
    guess_language,
    is_negated,
    latin_key,
    model_features,
    negated_words,
    tokens,
)

Relation = Literal["follow-up", "denial", "corroboration"]
MODEL_PATH = Path(__file__).with_name("stance_model.json")
MAX_HEADLINE_CHARS = 1_000
MAX_BODY_CHARS = 4_000  # the body model was trained on this much of each FNC-1 body
# Below this the model's "corroboration" is reported as follow-up: a false confirmation is the
# costliest error for a desk. Emergent CV accuracy: 0.776 at 0.0, 0.774 at 0.5, 0.761 at 0.6.
MIN_MODEL_CORROBORATION = 0.5
# With a body to read, the headline model's denial or confirmation must be at least this sure
# to overrule the body model: its prior leans to "for" (48% of Emergent), and a neutral title
# over a debunking body is common. Not tuned: no labelled set has both titles and bodies.
MIN_HEADLINE_MODEL_OVER_BODY = 0.6
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
    body_model: BodyStanceModel | None = None,
) -> RelationDecision:
    """Follow-up, denial or corroboration of ``claim_text`` by the item; see the module doc.

    ``model`` and ``body_model`` default to the shipped ones (tests pass their own).
    """
    claim = str(claim_text or "")[:MAX_HEADLINE_CHARS]
    head = str(headline or "")[:MAX_HEADLINE_CHARS]
    text = str(body or "")[:MAX_BODY_CHARS]
    lang = language if language in ("en", "ru", "uk") else guess_language(head or text)
    models = (model or default_model(), body_model or default_body_model())
    decision, cue_at = _decide(claim, head, text, lang, models)
    return _speaker_check(decision, head, cue_at, claim_speaker)


def _decide(
    claim: str, head: str, body: str, lang: str,
    models: tuple[StanceModel | None, BodyStanceModel | None],
) -> tuple[RelationDecision, int | None]:
    """The decision and, when a headline cue made it, where that cue starts."""
    cues = find_cues(head, lang)
    decisive = _first_decisive(cues)
    if decisive is not None:
        return _from_cue(decisive, 0.85, ""), decisive.start
    if any(c.negated and c.kind != "hedge" for c in cues):
        return _follow_up(cues, lang), None  # "did not deny", "не стал опровергать"
    negated = _negated_claim_word(claim, head)
    if negated:
        return RelationDecision("denial", f"negated claim word '{negated}' ({lang})", 0.7), None
    model, body_model = models
    head_model = _headline_model(model, claim, head, cues) if lang == "en" else None
    has_body = lang == "en" and body_model is not None and _WORD.search(body) is not None
    if head_model is not None and head_model.relation != "follow-up" and (
        not has_body or head_model.confidence >= MIN_HEADLINE_MODEL_OVER_BODY
    ):
        return head_model, None
    if has_body and body_model is not None:
        found = body_model.predict(claim, head, body, lang)
        relation = _LABELS[found.relation]
        cue = f"body model: p={found.probability:.2f} ({relation}); top '{found.top_feature}'"
        return RelationDecision(relation, cue, found.probability), None
    body_cue = _first_decisive(find_cues(body, lang)) if body.strip() else None
    if head_model is not None and body_cue is None:
        return head_model, None
    if body_cue is not None:
        return _from_cue(body_cue, 0.6, " in body"), None
    return _follow_up(cues, lang), None


def _headline_model(
    model: StanceModel | None, claim: str, head: str, cues: list[Cue]
) -> RelationDecision | None:
    if model is None or not head.strip():
        return None
    relation, p, top = model.predict(model_features(claim, head, cues))
    if relation == "corroboration" and p < MIN_MODEL_CORROBORATION:
        relation = "follow-up"
    return RelationDecision(relation, f"model: p={p:.2f} ({relation}); top '{top}'", p)


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


def _negated_claim_word(claim: str, head: str) -> str:
    """'не просил' when the claim says 'просили' and does not negate it itself."""
    claim_words = [w for w in _WORD.findall(claim) if w.islower() and w not in _COMMON]
    for start, found in negated_words(head):
        word = found.casefold()
        if len(word) < 4 or word in _COMMON:
            continue
        if any(_same_stem(word, c) for c in claim_words) and not _claim_negates(claim, word):
            return head[max(0, start - 12) : start + len(word)].strip()
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
    decision: RelationDecision, head: str, cue_at: int | None, speaker: str | None
) -> RelationDecision:
    """A corroboration voiced by the claim's own speaker is only a repetition."""
    if decision.relation != "corroboration" or not speaker:
        return decision
    at = _speaker_position(head, speaker)
    limit = _SUBJECT_CHARS if cue_at is None else len(latin_key(head[:cue_at]))
    if at is None or at > limit:
        return decision
    return RelationDecision(
        "follow-up", f"claim's own speaker '{speaker}' repeats it ({decision.cue})", 0.7
    )


def _speaker_position(head: str, speaker: str) -> int | None:
    """Where the speaker is named as a subject (not "Lukashenko's claim", "слова Лукашенко")."""
    key = latin_key(head)
    names = [latin_key(n) for n in tokens(speaker) if len(n) >= 4]
    hits = [
        m.start()
        for n in names
        for m in re.finditer(rf"\b{re.escape(n[: max(4, len(n) - 2)])}\w*", key)
        if not _OBJECT_BEFORE.search(key, 0, m.start()) and not _POSSESSIVE.match(key, m.end())
    ]
    return min(hits) if hits else None


_OBJECT_BEFORE = re.compile(
    r"\b(?:slova|zayavleni\w*|zayav[uiy]|versi\w*|rasskaz\w*|claims?|words|story|account)"
    r"\W+$"
)
_POSSESSIVE = re.compile(r"['’]s?\b")

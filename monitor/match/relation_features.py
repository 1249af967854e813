"""Language-independent features of a (claim, item) pair for the relation model.

Three blocks, each a plain float vector so the model is a dot product (numpy only):

* ``dense_features``: the cue tables (whole words, negation scope), who speaks, numbers
  that agree or contradict, question marks, word overlap. The same names in every language:
  a Russian "опроверг" and an English "denies" both light ``cue_denial``.
* ``vector_features``: the e5 vectors of both sides (claim as passage, item as query, the
  matcher's own encodings) as [cos(u, v), v]; they carry the model from the English
  training data to Russian and Ukrainian.
* ``quote``/``speaker_in``: evidence for people: the cue with a few whole words around it,
  and the name of whoever the item says is speaking.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from monitor.match.stance_features import (
    Cue,
    find_cues,
    latin_key,
    negated_claim_word,
    tokens,
)

Vector = npt.NDArray[np.float32]
DIMENSIONS = 384
DENSE_NAMES: tuple[str, ...] = (
    "bias_text", "cue_denial", "cue_corroboration", "cue_hedge", "cue_denial_neg",
    "cue_corroboration_neg", "cue_hedge_only", "claim_denial", "claim_hedge", "claim_question",
    "negated_claim_word", "negation", "negation_not_in_claim", "first_person_negation",
    "question", "exclamation", "overlap", "new_words", "numbers_shared", "numbers_other",
    "quoted", "colon_speaker", "short", "modal", "attribution", "assertion", "visual",
)
# Measured (GroupKFold(5) by claim on Emergent, argmax accuracy): cues alone 0.760,
# + cos(u, v) 0.760, + v 0.777, + v, u*v, |u-v| 0.757, + v, u*v 0.774, + v, u 0.776, + v-u
# 0.775: the item's own vector carries the stance ("denies", "reportedly"); products with the
# claim overfit 2,000 pairs. So the shipped form is [cos(u, v), v].
VECTOR_NAMES: tuple[str, ...] = ("cos", *(f"v{i}" for i in range(DIMENSIONS)))
_MODAL = re.compile(
    r"(?<!\w)(?:may|might|could|would|possibl\w*|probabl\w*|perhaps|likely|appears?|apparently|"
    r"seem\w*|believed|suspect\w*|if|возможн\w*|вероятн\w*|может|могут|мог(?:ли|ла)?|видимо|"
    r"похоже|предположительно|можлив\w*|ймовірн\w*|імовірн\w*|може|можуть|схоже|мабуть)(?!\w)",
    re.IGNORECASE,
)
_ATTRIBUTION = re.compile(
    r"(?<!\w)(?:reportedly|allegedly|purportedly|rumou?r\w*|claim\w*|according\s+to|sources?|"
    r"reports?|says?|said|якобы|по\s+данным|по\s+словам|по\s+информации|сообща\w*|"
    r"источник\w*|нібито|за\s+даними|за\s+словами|за\s+інформацією|повідомля\w*|джерел\w*|"
    r"утвержда\w*|стверджу\w*)(?!\w)",
    re.IGNORECASE,
)
_ASSERTION = re.compile(
    r"(?<!\w)(?:officially|official|indeed|in\s+fact|revealed|it\s+is\s+official|"
    r"официально|действительно|офіційно|справді|дійсно)(?!\w)",
    re.IGNORECASE,
)
_VISUAL = re.compile(
    r"(?<!\w)(?:video|photos?|pictured|footage|watch|видео|фото\w*|відео)(?!\w)", re.IGNORECASE
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_NEGATION = re.compile(
    r"(?<!\w)(?:not|no|never|none|nobody|nothing|не|нет|ни|никто|никогда|ні|ніхто|ніколи|"
    r"немає)(?!\w)|n['’]t(?!\w)",
    re.IGNORECASE,
)
_FIRST_PERSON_NEGATION = re.compile(
    r"(?<!\w)(?:I|we)\s+(?:(?:did|do|have|had|was|were|am|are)(?:\s+not|n['’]t)|never)\b"
    r"|(?<!\w)(?:я|мы|ми)\s+(?:(?:никогда|ніколи)\s+)?(?:не|ни)(?!\w)",
    re.IGNORECASE,
)
_COLON_SPEAKER = re.compile(r"^\W*[A-ZА-ЯЁІЇЄҐ][\w'’.-]*(?:\s+[\w'’.-]+){0,3}\s*:\s")


def dense_features(claim: str, text: str, cues: Sequence[Cue] | None = None
                   ) -> npt.NDArray[np.float64]:
    """``DENSE_NAMES`` of ``text`` (a headline or a sentence) against ``claim``."""
    cues = find_cues(text) if cues is None else cues
    claim_cues = find_cues(claim)
    words, claim_words = tokens(text), tokens(claim)
    stems, claim_stems = {_stem(w) for w in words}, {_stem(w) for w in claim_words}
    live = [c for c in cues if not c.negated]
    kinds = {c.kind for c in live}
    numbers, claim_numbers = set(_NUMBER.findall(text)), set(_NUMBER.findall(claim))
    negation = bool(_NEGATION.search(text))
    feats = {
        "bias_text": float(bool(text.strip())),
        "cue_denial": float("denial" in kinds),
        "cue_corroboration": float("corroboration" in kinds),
        "cue_hedge": float("hedge" in kinds),
        "cue_denial_neg": float(any(c.negated and c.kind == "denial" for c in cues)),
        "cue_corroboration_neg": float(any(c.negated and c.kind == "corroboration"
                                           for c in cues)),
        "cue_hedge_only": float(kinds == {"hedge"}),
        "claim_denial": float(any(c.kind == "denial" and not c.negated for c in claim_cues)),
        "claim_hedge": float(any(c.kind == "hedge" for c in claim_cues)),
        "claim_question": float("?" in claim),
        "negated_claim_word": float(bool(negated_claim_word(claim, text)[0])),
        "negation": float(negation),
        "negation_not_in_claim": float(negation and not _NEGATION.search(claim)),
        "first_person_negation": float(bool(_FIRST_PERSON_NEGATION.search(text))),
        "question": float("?" in text),
        "exclamation": float("!" in text),
        "overlap": len(stems & claim_stems) / max(1, len(stems)),
        "new_words": len(stems - claim_stems) / max(1, len(stems)),
        "numbers_shared": float(bool(numbers & claim_numbers)),
        "numbers_other": float(bool(claim_numbers and numbers - claim_numbers)),
        "quoted": float(bool(re.search(r"[\"“”«»‘]", text))),
        "colon_speaker": float(bool(_COLON_SPEAKER.match(text))),
        "short": float(len(words) <= 6),
        "modal": float(bool(_MODAL.search(text))),
        "attribution": float(bool(_ATTRIBUTION.search(text))),
        "assertion": float(bool(_ASSERTION.search(text))),
        "visual": float(bool(_VISUAL.search(text))),
    }
    return np.array([feats[name] for name in DENSE_NAMES], dtype=np.float64)


def vector_features(claim_vector: Vector, item_vector: Vector) -> npt.NDArray[np.float64]:
    """``VECTOR_NAMES``: the cosine of claim and item, then the item vector."""
    u = np.asarray(claim_vector, dtype=np.float64).reshape(-1)
    v = np.asarray(item_vector, dtype=np.float64).reshape(-1)
    return np.concatenate([[float(u @ v)], v])


def first_person_negation(text: str) -> re.Match[str] | None:
    """"I didn't", "we never", "я не", "ми ніколи не": the speaker denies in the first person."""
    return _FIRST_PERSON_NEGATION.search(text)


def _stem(word: str) -> str:
    return latin_key(word)[:5]


_WORD_SPAN = re.compile(r"\S+")


def quote(text: str, start: int, end: int, context_words: int = 3) -> str:
    """The words covering ``text[start:end]`` and ``context_words`` whole words either side,
    with "…" where the text goes on; never a part of a word."""
    spans = [m.span() for m in _WORD_SPAN.finditer(text)]
    inside = [n for n, (a, b) in enumerate(spans) if b > start and a < max(end, start + 1)]
    if not inside:
        return ""
    first = max(0, inside[0] - context_words)
    last = min(len(spans) - 1, inside[-1] + context_words)
    quoted = text[spans[first][0] : spans[last][1]]
    return ("…" if first > 0 else "") + quoted + ("…" if last < len(spans) - 1 else "")


_NAME = re.compile(r"(?<![\w'’-])[A-ZА-ЯЁІЇЄҐ][\w'’-]+(?:\s+[A-ZА-ЯЁІЇЄҐ][\w'’-]+)*")
_NOT_A_SPEAKER = frozenset(
    latin_key(w) for w in (
        "The", "A", "An", "In", "On", "At", "It", "This", "В", "На", "У", "По", "Это", "Как",
        "Что", "Не", "I", "We", "Я", "Мы", "Ми", "Це", "Що", "Як", "Not", "No", "Why", "How",
    )
)


def speaker_in(text: str, before: int | None = None) -> str:
    """The name the item gives as speaking: a name opening the text, else the last
    capitalised name before ``before`` (the cue), else the first one; "" when none."""
    names = [m for m in _NAME.finditer(text) if latin_key(m.group(0)) not in _NOT_A_SPEAKER]
    if names and len(text[: names[0].start()].split()) <= 2:
        return names[0].group(0)  # the sentence's subject: "Kyiv calls ... fake"
    if before is not None:
        earlier = [m for m in names if m.end() <= before]
        if earlier:
            return earlier[-1].group(0)
    return names[0].group(0) if names else ""


def names_subject(text: str, names: Sequence[str], within_chars: int = 40) -> int | None:
    """Where one of ``names`` is named as the one acting or speaking in ``text`` (near its
    start or before a colon; not "X's claim", "слова X"); None when not."""
    key = latin_key(text)
    colon = key.find(":")
    limit = max(within_chars, colon if 0 < colon < 80 else 0)
    for name in names:
        for part in tokens(name):
            part_key = latin_key(part)
            if len(part_key) < 4:
                continue
            stem = re.escape(part_key[: max(4, len(part_key) - 2)])
            for m in re.finditer(rf"(?<!\w){stem}\w*", key):
                if m.start() > limit:
                    break
                if _OBJECT_BEFORE.search(key, 0, m.start()) or _POSSESSIVE.match(key, m.end()):
                    continue
                return m.start()
    return None


_OBJECT_BEFORE = re.compile(
    r"(?<!\w)(?:slova|zayavleni\w*|zayav[uiy]|versi\w*|rasskaz\w*|claims?|words|story|account|"
    r"about|o|ob|pro|shchodo)\W+$"
)
_POSSESSIVE = re.compile(r"['’]s?(?!\w)")

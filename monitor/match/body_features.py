"""Dense features of an item's body relative to a claim, for the body-aware stance model.

FNC-1-winner style: how much of the claim the body repeats (word stems, bigrams, in the lead
and in the whole text), and which cues (our denial / confirmation / reporting tables in
en, ru, uk, plus the FNC-1 baseline's refuting words) stand in the sentences that talk about
the claim. Stems are word prefixes, so the features work the same on inflected Russian and
Ukrainian text. Optional sentence-embedding similarities make them cross-lingual.
Pure and fast: regular expressions and arithmetic, a few hundred microseconds an item.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from monitor.match.stance_features import Cue, find_cues, tokens

STEM_CHARS = 5
LEAD_SENTENCES = 2
MAX_SENTENCES = 60
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”»)\]]*\s+|\n+")
_STOP_WORDS = (
    "the a an and or of to in on for with at by from as is are was were be been has have had "
    "it its this that these those he she they we you his her their our not but will would "
    "can could may might than then there here who what which when where how why about after "
    "into over also just says said report reports new more most says "
    "и в во на с со к по о об от до за из у что как это его ее её их не но а же ли "
      "і й та що як це його її їх не але від до за із з у в на"
)
_STOP = frozenset(_STOP_WORDS.split())
_REFUTING = re.compile(
    r"(?<!\w)(?:fake|fraud|hoax|false|den(?:y|ies|ied)|refut\w*|not|despite|nope|doubts?|"
    r"bogus|debunk\w*|pranks?|retract\w*|never|no)(?!\w)",
    re.IGNORECASE,
)
_NEGATION = re.compile(
    r"(?<!\w)(?:not|no|never|n['’]t|none|nobody|nothing|не|нет|ни|ні|немає)(?!\w)", re.IGNORECASE
)
# English word lists after the FNC-1 entries; rates per sentence (by-story CV 0.727 -> 0.745).
_HEDGING = re.compile(
    r"(?<!\w)(?:reportedly|allegedly|purportedly|apparently|rumou?r\w*|unverified|unconfirmed|"
    r"claim\w*|according to|sources?|would|could|may|might|appears?|seem\w*|suggest\w*|"
    r"believed|possibl\w*|if)(?!\w)",
    re.IGNORECASE,
)
_ASSERTING = re.compile(
    r"(?<!\w)(?:confirm\w*|official\w*|announc\w*|reveal\w*|indeed|in fact|statement|"
    r"has been|have been|was|were|did)(?!\w)",
    re.IGNORECASE,
)
_DEBUNKING = re.compile(
    r"(?<!\w)(?:hoax\w*|fake\w*|false\w*|satir\w*|not true|untrue|debunk\w*|fabricat\w*|"
    r"made up|myth|no evidence|den(?:y|ies|ied)|refut\w*|prank\w*|misleading)(?!\w)",
    re.IGNORECASE,
)
_QUOTES = re.compile(r"[\"“”«»]")
_KINDS = ("denial", "corroboration", "hedge")

FEATURE_NAMES: tuple[str, ...] = (
    "claim_question", "claim_denial", "claim_corroboration", "claim_hedge",
    "title_present", "title_denial", "title_corroboration", "title_hedge", "title_negated_cue",
    "body_log_sentences", "body_denial", "body_corroboration", "body_hedge", "body_negated_cue",
    "body_refuting", "body_negation", "body_question",
    "lead_denial", "lead_corroboration", "lead_hedge", "lead_refuting",
    "near_sentences", "near_share", "near_denial", "near_corroboration", "near_hedge",
    "near_negated_cue", "near_refuting", "near_negation", "near_question",
    "claim_in_body", "claim_in_lead", "claim_in_title", "bigrams_in_body", "best_sentence_overlap",
    "first_near_position", "claim_refuting", "claim_negation",
    "body_hedging_rate", "body_asserting_rate", "body_debunking_rate", "near_hedging_rate",
    "near_asserting_rate", "near_debunking_rate", "claim_hedging", "claim_debunking",
    "body_quote_rate", "lead3_debunking",
)
EMBEDDING_NAMES: tuple[str, ...] = ("cos_claim_body", "cos_claim_title")


def stems(text: str) -> list[str]:
    """Content words of ``text`` cut to their first letters (a stem in any of our languages)."""
    return [t[:STEM_CHARS] for t in tokens(text) if t.isalnum() and t not in _STOP and len(t) > 2]


def sentences(text: str) -> list[str]:
    parts = [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]
    return parts[:MAX_SENTENCES]


def _cue_counts(cues: Sequence[Cue], prefix: str) -> dict[str, float]:
    feats = {f"{prefix}_{k}": 0.0 for k in _KINDS}
    negated = 0.0
    for cue in cues:
        if cue.negated:
            negated += 1.0
        else:
            feats[f"{prefix}_{cue.kind}"] += 1.0
    feats[f"{prefix}_negated_cue"] = negated
    return {k: math.log1p(v) for k, v in feats.items()}


def _share(claim: set[str], words: Sequence[str]) -> float:
    return len(claim.intersection(words)) / len(claim) if claim else 0.0


def body_features(claim: str, title: str, body: str, language: str = "en") -> dict[str, float]:
    """Named features of (claim, item title, item body); every name is in ``FEATURE_NAMES``."""
    claim_stems = set(stems(claim))
    parts = sentences(body)
    part_stems = [stems(p) for p in parts]
    overlaps = [_share(claim_stems, s) for s in part_stems]
    near = [p for p, o in zip(parts, overlaps, strict=True) if o >= 0.25] or parts[:1]
    lead = " ".join(parts[:LEAD_SENTENCES])
    near_text = " ".join(near)
    feats: dict[str, float] = {
        "claim_question": float("?" in claim),
        "title_present": float(bool(title.strip())),
        "body_log_sentences": math.log1p(len(parts)),
        "body_refuting": math.log1p(len(_REFUTING.findall(body))),
        "body_negation": math.log1p(len(_NEGATION.findall(body))),
        "body_question": math.log1p(body.count("?")),
        "lead_refuting": math.log1p(len(_REFUTING.findall(lead))),
        "near_sentences": math.log1p(sum(o >= 0.25 for o in overlaps)),
        "near_share": sum(o >= 0.25 for o in overlaps) / max(1, len(parts)),
        "near_refuting": math.log1p(len(_REFUTING.findall(near_text))),
        "near_negation": math.log1p(len(_NEGATION.findall(near_text))),
        "near_question": math.log1p(near_text.count("?")),
        "claim_in_body": _share(claim_stems, [w for s in part_stems for w in s]),
        "claim_in_lead": _share(claim_stems, stems(lead)),
        "claim_in_title": _share(claim_stems, stems(title)),
        "bigrams_in_body": _bigram_share(claim, body),
        "best_sentence_overlap": max(overlaps, default=0.0),
        "first_near_position": _first_near(overlaps),
        "claim_refuting": float(len(_REFUTING.findall(claim))),
        "claim_negation": float(len(_NEGATION.findall(claim))),
    }
    claim_cues = _cue_counts(find_cues(claim, language), "claim")
    feats.update({k: v for k, v in claim_cues.items() if k != "claim_negated_cue"})
    feats.update(_cue_counts(find_cues(title, language), "title"))
    feats.update(_cue_counts(find_cues(body, language), "body"))
    lead_cues = _cue_counts(find_cues(lead, language), "lead")
    feats.update({k: v for k, v in lead_cues.items() if k != "lead_negated_cue"})
    feats.update(_cue_counts(find_cues(near_text, language), "near"))
    feats.update(_word_rates(claim, body, parts, near))
    return feats


def _word_rates(
    claim: str, body: str, parts: Sequence[str], near: Sequence[str]
) -> dict[str, float]:
    n_body, n_near = max(1, len(parts)), max(1, len(near))
    near_text = " ".join(near)
    return {
        "body_hedging_rate": len(_HEDGING.findall(body)) / n_body,
        "body_asserting_rate": len(_ASSERTING.findall(body)) / n_body,
        "body_debunking_rate": len(_DEBUNKING.findall(body)) / n_body,
        "near_hedging_rate": len(_HEDGING.findall(near_text)) / n_near,
        "near_asserting_rate": len(_ASSERTING.findall(near_text)) / n_near,
        "near_debunking_rate": len(_DEBUNKING.findall(near_text)) / n_near,
        "claim_hedging": float(len(_HEDGING.findall(claim))),
        "claim_debunking": float(len(_DEBUNKING.findall(claim))),
        "body_quote_rate": len(_QUOTES.findall(body)) / n_body,
        "lead3_debunking": float(len(_DEBUNKING.findall(" ".join(parts[:3])))),
    }


def _bigram_share(claim: str, body: str) -> float:
    claim_words = stems(claim)
    pairs = set(zip(claim_words, claim_words[1:], strict=False))
    if not pairs:
        return 0.0
    words = stems(body)
    return len(pairs.intersection(zip(words, words[1:], strict=False))) / len(pairs)


def _first_near(overlaps: Sequence[float]) -> float:
    """Where the first sentence about the claim stands: 0 at the start, 1 never."""
    for n, overlap in enumerate(overlaps):
        if overlap >= 0.25:
            return n / max(1, len(overlaps))
    return 1.0

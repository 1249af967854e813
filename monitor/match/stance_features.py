"""Cue phrases, negation and model features for the relation decision (en, ru, uk).

Russian and Ukrainian inflect heavily, so cues are stems matched as word prefixes
(``опроверг`` covers опроверг, опровергает, опровержение). A cue preceded closely by a
negator ("did not deny", "не опроверг", "відмовився підтвердити") is reported as negated
and decides nothing. Everything here is pure and fast: compiled regular expressions only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

CueKind = Literal["denial", "corroboration", "hedge"]

_W = r"[\w'’-]*"  # the rest of an inflected word
_CUES: dict[str, dict[CueKind, tuple[str, ...]]] = {
    "en": {
        "denial": (
            "den(?:y|ies|ied|ying|ial|ials)", "reject", "refut", "dismiss", "fake", "hoax",
            "debunk", "false", "untrue", "not true", "no evidence", "fabricat", "bogus",
            "baseless", "groundless", "nonsense", "made up", "disinformation", "misinformation",
            "myth", "rubbish", r"a lie\b", "lies about", "never happened", "retract", "satire",
            "doubt", r"nope\b", "prank", r"fool(?:s|ed)\b", "absurd", "ridiculous", "slander",
            "smear",
        ),
        "corroboration": (
            "confirm", "verif(?:y|ied|ies)", "prov(?:es|en|ed)", "proof", "admit",
            "acknowledg", "authenticat", "corroborat", "is true", "are true", "was true",
            "turns out to be true", "backs claim", "backs up",
        ),
        "hedge": (
            "report", "alleged", "claim", r"says\b", r"said\b", "according to", "rumou?r",
            r"may\b", r"might\b", r"could\b", "purported", "suppos", "unconfirmed", "sources",
        ),
    },
    "ru": {
        "denial": (
            "опроверг", "опроверж", "отрица", "отверг", "отверга", "фейк", "ложь", "ложн",
            "лжив", "неправд", "не соответству" + _W + r"\s+действительност", "вымыс",
            "выдум", "дезинформ", "развенча", "бред", "чушь", "клевет", "провокац",
            r"нет\s+(?:никаких\s+)?доказательств", "чепух", "ерунд", "абсурд", "домыс",
            "инсинуац", "беспочвенн", "голословн", "вран", "опроверга",
            r"ничего\s+общего\s+с\s+действительност",
        ),
        "corroboration": (
            "подтверд", "подтвержд", "признал", "признает", "признаёт", "признался",
            "верифицир", "доказа", "соответству" + _W + r"\s+действительност",
        ),
        "hedge": (
            "заяв", "по словам", "якобы", "сообща", "утвержда", "по данным", "рассказа",
            "неподтвержд", "слух", "сообщени",
        ),
    },
    "uk": {
        "denial": (
            "спрост(?:ов|ув)", "запереч", "відкида", "відкину", "фейк", "неправд", "брехн",
            "брехлив",
            "не відповіда" + _W + r"\s+дійсност", "вигад", "дезінформ", "маніпуляц", "наклеп",
            "провокац", "марення", "нісенітниц", r"немає\s+(?:жодних\s+)?доказ", "маячн",
            "абсурд", "безпідставн", "домисл", "інсинуац",
        ),
        "corroboration": (
            "підтверд", "підтвердж", "визнав", "визнала", "визнали", "визнає", "визнають",
            "довів", "довела", "доведено",
            "відповіда" + _W + r"\s+дійсност",
        ),
        "hedge": (
            "заяв", "за словами", "нібито", "повідомля", "стверджу", "за даними", "розповів",
            "непідтвердж", "чутк",
        ),
    },
}
_NEGATOR = (
    r"(?:\bnot|n['’]t|\bnever|\bno|\bwithout|\brefus\w*|\bdeclin\w*|\bfail\w*|"
    r"\bне|\bни|\bнет|\bотказ\w*|\bні|\bвідмов\w*|\bбез)\s+"
)
_NEGATORS = re.compile(_NEGATOR + r"(?:\w+\s+){0,1}$", re.IGNORECASE)
_NEGATED_WORDS = re.compile(_NEGATOR + r"(\w+)(?:\s+(\w+))?", re.IGNORECASE)
_CYRILLIC = re.compile(r"[а-яёіїєґ]", re.IGNORECASE)
_UK_ONLY = re.compile(r"[іїєґ]|\b(?:що|та|це|щодо|від|який|яка|які|він|вона|ув)\b", re.IGNORECASE)
_RU_ONLY = re.compile(r"[ыэъё]|\b(?:что|это|его|как|или|от|который|она|он)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Cue:
    """One cue found in a text: what it signals, the words matched, where, and if negated."""

    kind: CueKind
    phrase: str
    language: str
    start: int
    negated: bool


def _compile(language: str, kind: CueKind) -> re.Pattern[str]:
    stems = "|".join(_CUES[language][kind])
    return re.compile(rf"(?<![\w-])(?:{stems}){_W}", re.IGNORECASE)


_PATTERNS: dict[tuple[str, CueKind], re.Pattern[str]] = {
    (lang, kind): _compile(lang, kind) for lang, kinds in _CUES.items() for kind in kinds
}


def guess_language(text: str) -> str:
    """'uk', 'ru' or 'en' from the script and the letters only one of the two alphabets has."""
    if not _CYRILLIC.search(text):
        return "en"
    uk, ru = len(_UK_ONLY.findall(text)), len(_RU_ONLY.findall(text))
    return "uk" if uk > ru else "ru"


def cue_languages(text: str) -> tuple[str, ...]:
    """The cue tables to scan: English for Latin script, Russian and Ukrainian for Cyrillic."""
    latin = re.search(r"[a-z]", text, re.IGNORECASE) is not None
    cyrillic = _CYRILLIC.search(text) is not None
    return ("en",) * latin + ("ru", "uk") * cyrillic


def find_cues(text: str, prefer: str = "") -> list[Cue]:
    """Every cue in ``text`` by position; a stem both Cyrillic tables share is reported once,
    under ``prefer`` when that is one of them."""
    return list(_cues_of(text, prefer))


# A claim's cues are looked for at every link to it, an item's headline's at every claim it
# links: nine patterns over the text each time, the most of a link's time on words alone.
@lru_cache(maxsize=4096)
def _cues_of(text: str, prefer: str) -> tuple[Cue, ...]:
    langs = cue_languages(text)
    found = [
        Cue(kind, m.group(0), lang, m.start(), is_negated(text, m.start()))
        for (lang, kind), pattern in _PATTERNS.items()
        if lang in langs
        for m in pattern.finditer(text)
    ]
    found.sort(key=lambda cue: (cue.start, cue.language != prefer))
    unique: dict[tuple[int, str], Cue] = {}
    for cue in found:
        unique.setdefault((cue.start, cue.kind), cue)
    # "casts doubt on the denial", "усомнился в опровержении": doubting a denial denies
    # nothing; both words are reported as negated, so neither makes the item a denial.
    # Within one clause only: "rejected the claim, denying it" stays two denials.
    for m in _DOUBTED_DENIAL.finditer(text):
        for key, cue in unique.items():
            if cue.kind == "denial" and m.start() <= cue.start < m.end():
                unique[key] = replace(cue, negated=True)
    # "не соответствует действительности" is one denial, not also a negated confirmation
    spans = [(c.start, c.start + len(c.phrase), c.kind) for c in unique.values()]
    return tuple(c for c in unique.values()
                 if not any(a <= c.start and c.start + len(c.phrase) <= b and kind != c.kind
                            and (a, b) != (c.start, c.start + len(c.phrase))
                            for a, b, kind in spans))


_DOUBTED_DENIAL = re.compile(
    r"(?<!\w)(?:doubts?|doubted|question(?:s|ed|ing)?|reject(?:s|ed)?|dismiss(?:es|ed)?|"
    r"disput(?:es|ed)|сомне\w*|усомнил\w*|ставит\w*\s+под\s+сомнение|отверг\w*|"
    r"сумнів\w*|засумнів\w*|відкин\w*)"
    r"(?:\s+[\w'’-]+){0,5}?\s+(?:denials?|denying|опровержени\w*|опровергающ\w*|отрицани\w*|"
    r"спростуван\w*|заперечен\w*)(?!\w)",
    re.IGNORECASE,
)


def is_negated(text: str, start: int) -> bool:
    """True when a negator stands at most one word before ``start``."""
    return bool(_NEGATORS.search(text[max(0, start - 40) : start]))


def negated_words(text: str) -> list[tuple[int, str]]:
    """(position, word) for the one or two words right after each negator."""
    found = []
    for m in _NEGATED_WORDS.finditer(text):
        found += [(m.start(g), m.group(g)) for g in (1, 2) if m.group(g)]
    return found


# Only negators that negate a verb: "без" (without), "отказаться от" (give up), "no", "refuse"
# take a noun and said "без российской нефти" denied a claim about Russian oil (issue 10).
_VERB_NEGATED = re.compile(
    r"(?<!\w)(?:not|never|не|ни|ні|никогда|ніколи)\s+([^\W\d_]+)|n['’]t\s+([^\W\d_]+)",
    re.IGNORECASE,
)
_CLAIM_WORD = re.compile(r"[^\W\d_]{3,}")
_COMMON_WORDS = (
    "been have has had was were are did does done being the and for that this "
    "было были есть была быть будет это так все його була було були буде це"
)
_COMMON = frozenset(_COMMON_WORDS.split())


def negated_claim_word(claim: str, text: str) -> tuple[str, int, int]:
    """("не просил", start, end) when ``text`` negates, right after a verbal negator, a word
    the claim uses ("просили") without negating it itself; ("", -1, -1) when none."""
    claim_words = [w.casefold() for w in _CLAIM_WORD.findall(claim)
                   if w.islower() and w.casefold() not in _COMMON]
    for m in _VERB_NEGATED.finditer(text):
        group = 1 if m.group(1) else 2
        word = m.group(group).casefold()
        if len(word) < 3 or word in _COMMON:
            continue
        if any(_same_stem(word, c) for c in claim_words) and not _claim_negates(claim, word):
            return text[m.start() : m.end()], m.start(), m.end()
    return "", -1, -1


def _same_stem(a: str, b: str) -> bool:
    shorter = min(len(a), len(b))
    n = max(3, shorter - 2) if shorter <= 5 else max(4, shorter - 2)
    return len(a) >= n and len(b) >= n and a[:n] == b[:n]


def _claim_negates(claim: str, word: str) -> bool:
    folded = claim.casefold()
    return any(is_negated(claim, m.start()) for m in re.finditer(re.escape(word[:4]), folded))


_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)?|\?|!", re.UNICODE)


def tokens(text: str) -> list[str]:
    return [t.replace("’", "'") for t in _TOKEN.findall(text.casefold())]


def model_features(claim: str, headline: str, cues: list[Cue] | None = None) -> dict[str, float]:
    """Sparse features of a headline relative to its claim (``cues``: its ``find_cues``)."""
    words = tokens(headline)
    claim_words = set(tokens(claim))
    feats: dict[str, float] = {}
    for w in words:
        feats["w=" + w] = 1.0
    for a, b in zip(words, words[1:], strict=False):
        feats[f"b={a}_{b}"] = 1.0
    _normalize(feats)
    for w in words:
        if w not in claim_words:
            feats["new=" + w] = feats.get("new=" + w, 0.0) + 0.5
    for cue in find_cues(headline) if cues is None else cues:
        name = f"cue={cue.kind}{'_neg' if cue.negated else ''}"
        feats[name] = feats.get(name, 0.0) + 1.0
    overlap = len(set(words) & claim_words) / max(1, len(set(words)))
    feats["overlap"] = overlap
    feats["ends_q"] = float(headline.rstrip().endswith("?"))
    return feats


def _normalize(feats: dict[str, float]) -> None:
    norm = sum(v * v for v in feats.values()) ** 0.5 or 1.0
    for key in feats:
        feats[key] /= norm


_TRANSLIT = str.maketrans(
    {
        "а": "a", "б": "b", "в": "v", "г": "g", "ґ": "g", "д": "d", "е": "e", "ё": "e",
        "є": "ye", "ж": "zh", "з": "z", "и": "i", "і": "i", "ї": "yi", "й": "y", "к": "k",
        "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
        "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch",
        "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya",
    }
)


def latin_key(text: str) -> str:
    """Case-folded text with Cyrillic spelled in Latin, for matching names across scripts."""
    return text.casefold().translate(_TRANSLIT)

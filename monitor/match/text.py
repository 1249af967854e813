"""Text normalization for matching: one comparable key per word, whatever script or inflection.

    "Лукашенком", "Лукашенка", "Lukashenko", "Lukashenka"  ->  "lukashenk"
    "Купянск", "Куп'янськ", "Kupiansk", "Kupyansk"          ->  "kupiansk"

Steps per word: Unicode NFKC and case-fold; a dictionary lemma where simplemma knows the word
(Russian, Ukrainian, English; its dictionaries read from tries cached on disk, see
lemma_dictionaries); a Snowball stem for Cyrillic words, because names and rare words
inflect without being in any dictionary; transliteration to ASCII (anyascii); then a spelling
key that forgives the usual romanisation variants (y/i, doubled letters, apostrophes, a final
vowel). Keys are cached: wire text repeats the same few thousand words all day.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import Stemmer
from anyascii import anyascii
from simplemma import Lemmatizer
from simplemma.strategies import DefaultStrategy

from monitor.match.lemma_dictionaries import TrieCachedDictionaries, default_directory

_WORD = re.compile(r"[^\W_]+(?:['’ʼ`][^\W_]+)*", re.UNICODE)
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_APOSTROPHES = str.maketrans("", "", "'’ʼ`\"")
_DOUBLED = re.compile(r"([a-z])\1+")  # letters only: 2000 and 20 are different numbers
_LEMMA_LANGUAGES = ("ru", "uk", "en")
# Very short words ("в", "is", "на") say nothing about which claim an item is about.
MIN_KEY_CHARS = 3

_russian_stemmer = Stemmer.Stemmer("russian")


def fold(text: str) -> str:
    """NFKC and case-fold: the form every comparison starts from."""
    return unicodedata.normalize("NFKC", text).casefold()


_URL = re.compile(r"(?:https?://|www\.|pic\.twitter\.com/)\S+", re.IGNORECASE)
_HASHTAG = re.compile(r"#(\w+)")
_CAMEL = re.compile(r"(?<=[a-zа-яёіїєґ])(?=[A-ZА-ЯЁІЇЄҐ])")


def words(text: str) -> list[str]:
    """The words of ``text``, folded, punctuation dropped, apostrophes inside words kept.

    Links are dropped (their letters are noise) and #CamelCase hashtags split into words.
    """
    text = _HASHTAG.sub(lambda tag: _CAMEL.sub(" ", tag.group(1)), _URL.sub(" ", text))
    return _WORD.findall(fold(text))


@lru_cache(maxsize=1)
def lemmatizer() -> Lemmatizer:
    """simplemma's default lemmatizer (what ``simplemma.lemmatize`` uses) over its
    dictionaries cached as tries: the same lemmas, without decoding them at every start."""
    dictionaries = TrieCachedDictionaries(default_directory())
    return Lemmatizer(lemmatization_strategy=DefaultStrategy(dictionary_factory=dictionaries))


def _lemma(word: str, language: str | None) -> str:
    lemmatize = lemmatizer().lemmatize
    if language in _LEMMA_LANGUAGES:
        return lemmatize(word, lang=language)
    if _CYRILLIC.search(word):
        # Unknown language but Cyrillic: Russian and Ukrainian dictionaries, in that order.
        return lemmatize(word, lang=("ru", "uk"))
    return lemmatize(word, lang="en")


def spelling_key(latin: str) -> str:
    """Forgive romanisation variants: Kupyansk/Kupiansk, Zelenskyy/Zelensky, Lukashenka/-o."""
    key = latin.lower().translate(_APOSTROPHES)
    key = re.sub(r"[^a-z0-9]", "", key).replace("y", "i").replace("j", "i")
    key = _DOUBLED.sub(r"\1", key)
    if len(key) > 4 and key[-1] in "aeiou":
        key = key[:-1]
    return key


@lru_cache(maxsize=200_000)
def word_key(word: str, language: str | None = None) -> str:
    """The comparable key of one folded word."""
    lemma = fold(_lemma(word, language))
    if _CYRILLIC.search(lemma):
        lemma = _russian_stemmer.stemWord(lemma)
    return spelling_key(anyascii(lemma))


def keys(text: str, language: str | None = None) -> list[str]:
    """Keys of the meaningful words of ``text``, in order (duplicates kept)."""
    result = []
    for word in words(text):
        key = word_key(word, language)
        if len(key) >= MIN_KEY_CHARS:
            result.append(key)
    return result


def normalized(text: str, language: str | None = None) -> str:
    """The text as a space-joined key sequence: what rapidfuzz compares."""
    return " ".join(keys(text, language))


def mostly_cyrillic(text: str) -> bool:
    """Whether most letters are Cyrillic: words compare poorly across scripts (and so,
    across the languages of the wires)."""
    letters = sum(ch.isalpha() for ch in text)
    return bool(letters) and len(_CYRILLIC.findall(text)) * 2 > letters

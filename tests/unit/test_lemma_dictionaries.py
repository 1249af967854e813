"""simplemma's dictionaries cached as tries: the same lemmas as simplemma's default, a cache
that survives damage, concurrent builds and an unwritable home."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from itertools import islice
from pathlib import Path

import pytest
import simplemma
from simplemma import Lemmatizer
from simplemma.__metadata__ import __version__ as SIMPLEMMA_VERSION
from simplemma.strategies import DEFAULT_DICTIONARY_FACTORY, DefaultStrategy
from simplemma.strategies.dictionaries.trie_dictionary_factory import TrieWrapDict

from monitor.match.lemma_dictionaries import TrieCachedDictionaries, default_directory
from monitor.match.text import lemmatizer

# Inflected forms, names, apostrophes, capitals, words no dictionary knows.
WORDS = {
    "ru": ["Лукашенко", "Лукашенком", "генералы", "генералов", "генералом", "Купянска",
           "войны", "заявил", "Песков", "Москве", "ёлки", "елки", "путинских", "ракетами",
           "ЗСУ", "бпла", "нвмпщ", "Зеленский", "переговоров", "шли"],
    "uk": ["київ", "Києві", "генерали", "генералів", "Куп'янськ", "Купʼянськ", "Зеленський",
           "війни", "заявив", "обстрілів", "Харкова", "ґанок", "їжак", "щфжцю", "росіян"],
    "en": ["generals", "Generals", "went", "better", "Kyiv", "Lukashenko", "children's",
           "don't", "Zelenskyy", "mice", "running", "qzxwv", "NATO", "was", "analyses"],
}
# The languages text.py asks for words of no known language: Cyrillic ones try ru then uk.
LANGUAGE_CHAINS: list[str | tuple[str, ...]] = ["ru", "uk", "en", ("ru", "uk")]


def _trie_lemmatizer(directory: Path) -> Lemmatizer:
    dictionaries = TrieCachedDictionaries(directory)
    for lang in WORDS:
        assert isinstance(dictionaries.get_dictionary(lang), TrieWrapDict), lang
    return Lemmatizer(lemmatization_strategy=DefaultStrategy(dictionary_factory=dictionaries))


@pytest.fixture(scope="module")
def trie_lemmatizer() -> Lemmatizer:
    """Over the tries every monitor process of this machine reads (built here on a first run:
    ~10 CPU seconds, once per machine and simplemma version)."""
    directory = default_directory()
    if directory is None:
        pytest.skip("no home for the lemma cache")
    builder = TrieCachedDictionaries(directory)
    for lang in WORDS:
        builder.get_dictionary(lang)  # builds what is missing
    return _trie_lemmatizer(directory)


@pytest.mark.parametrize("lang", LANGUAGE_CHAINS, ids=str)
def test_the_tries_give_simplemmas_default_lemmas(trie_lemmatizer: Lemmatizer,
                                                  lang: str | tuple[str, ...]) -> None:
    words = [word for chain in WORDS.values() for word in chain]
    ours = {word: trie_lemmatizer.lemmatize(word, lang) for word in words}
    assert ours == {word: simplemma.lemmatize(word, lang=lang) for word in words}


@pytest.mark.parametrize("lang", list(WORDS))
def test_the_tries_hold_the_dictionaries_entries(trie_lemmatizer: Lemmatizer,
                                                 lang: str) -> None:
    trie = TrieCachedDictionaries(default_directory()).get_dictionary(lang)
    default = DEFAULT_DICTIONARY_FACTORY.get_dictionary(lang)
    assert len(trie) == len(default)
    # Every 16th key (all 1.4 million Russian ones take ~8 s more): spread over the alphabet.
    sample = list(islice(default, 0, None, 16))
    assert [trie.get(key) for key in sample] == [default.get(key) for key in sample]


def test_matchings_lemmatizer_gives_simplemmas_lemmas(trie_lemmatizer: Lemmatizer) -> None:
    for lang, words in WORDS.items():
        assert [lemmatizer().lemmatize(word, lang) for word in words] == [
            simplemma.lemmatize(word, lang=lang) for word in words]


class _Source:
    """A small stand-in for simplemma's default factory."""

    def __init__(self) -> None:
        self.calls = 0

    def get_dictionary(self, lang: str) -> Mapping[str, str]:
        self.calls += 1
        return {"генералы": "генерал", "шли": "идти", lang: lang}


def test_a_cold_cache_is_built_once_and_then_read(tmp_path: Path) -> None:
    source = _Source()
    first = TrieCachedDictionaries(tmp_path / "cache", source).get_dictionary("ru")
    second = TrieCachedDictionaries(tmp_path / "cache", source).get_dictionary("ru")
    assert isinstance(second, TrieWrapDict)
    assert dict(second) == dict(first) == source.get_dictionary("ru")
    assert source.calls == 2  # the first build and the comparison above, not the second read
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["ru.trie"]  # no temp files


def test_a_damaged_file_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    TrieCachedDictionaries(tmp_path, _Source()).get_dictionary("ru")
    path = tmp_path / "ru.trie"
    damaged = bytearray(path.read_bytes())
    damaged[-5] ^= 0xFF
    path.write_bytes(bytes(damaged))
    source = _Source()
    assert dict(TrieCachedDictionaries(tmp_path, source).get_dictionary("ru"))["шли"] == "идти"
    assert source.calls == 1
    assert "does not match its digest" in caplog.text
    assert isinstance(TrieCachedDictionaries(tmp_path, source).get_dictionary("ru"), TrieWrapDict)


def test_concurrent_first_starts_leave_one_whole_file(tmp_path: Path) -> None:
    factories = [TrieCachedDictionaries(tmp_path, _Source()) for _ in range(4)]
    threads = [threading.Thread(target=f.get_dictionary, args=("uk",)) for f in factories]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [p.name for p in tmp_path.iterdir()] == ["uk.trie"]
    read = TrieCachedDictionaries(tmp_path, _Source()).get_dictionary("uk")
    assert isinstance(read, TrieWrapDict) and read.get("шли") == "идти"


def test_an_unwritable_cache_falls_back_to_the_dictionaries_said_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "home").write_text("a file, so no folder can be made under it")
    caplog.set_level(logging.INFO, logger="monitor.match.lemma_dictionaries")
    dictionaries = TrieCachedDictionaries(tmp_path / "home" / "cache", _Source())
    assert [dictionaries.get_dictionary(lang)["шли"] for lang in ("ru", "uk", "en")] == ["идти"] * 3
    assert [r.levelno for r in caplog.records if "cannot write" in r.message] == [logging.INFO]


def test_no_home_uses_the_dictionaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", no_home)
    assert default_directory() is None
    assert TrieCachedDictionaries(None, _Source()).get_dictionary("en")["шли"] == "идти"


def test_the_cache_folder_follows_xdg_cache_home(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    directory = default_directory()
    assert directory is not None
    assert directory.parent == tmp_path / "monitor"
    assert directory.name == f"simplemma-{SIMPLEMMA_VERSION}"

"""simplemma's dictionaries kept on disk as marisa tries, so that a process starts cheaply.

simplemma's default factory LZMA-decompresses and decodes a whole dictionary in every process
that looks up a word: ~5 CPU seconds for Russian, Ukrainian and English, paid by every stage
at start and by every test that starts one. The same entries in a marisa trie (simplemma's own
mapping over one, ``TrieWrapDict``) load in milliseconds.

A language's trie is built once per machine and simplemma version, from the default factory's
dictionary, so every lookup answers as that dictionary does. The file is one SHA-256 digest then
the trie, written to a temporary file and renamed into place: processes starting together may
each build it, none reads a half-written one, and a file damaged on disk is rebuilt. Where no
cache folder can be written (a read-only or missing home), the default factory's dictionaries
are used as before, said once at INFO.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

import marisa_trie
from simplemma.__metadata__ import __version__ as SIMPLEMMA_VERSION
from simplemma.strategies.dictionaries.dictionary_factory import (
    DEFAULT_DICTIONARY_FACTORY,
    CachingDictionaryFactory,
    DictionaryFactory,
)
from simplemma.strategies.dictionaries.trie_dictionary_factory import TrieWrapDict

log = logging.getLogger(__name__)
_DIGEST_BYTES = hashlib.sha256().digest_size


def default_directory() -> Path | None:
    """The user's cache folder (XDG_CACHE_HOME, else ~/.cache)/monitor/simplemma-VERSION, or
    None when there is no home to put it in."""
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no HOME and no passwd entry (a dynamic service user)
            return None
    return Path(base) / "monitor" / f"simplemma-{SIMPLEMMA_VERSION}"


class TrieCachedDictionaries(CachingDictionaryFactory):
    """A simplemma ``DictionaryFactory`` whose dictionaries are tries cached in ``directory``
    (None: no cache, ``source``'s dictionaries)."""

    def __init__(self, directory: Path | None,
                 source: DictionaryFactory = DEFAULT_DICTIONARY_FACTORY) -> None:
        super().__init__()
        self._directory = directory
        self._source = source
        self._lock = threading.Lock()  # one build per language in a process
        if directory is None:
            log.info("lemmas: no home for a cache folder; simplemma's dictionaries are "
                     "decoded at each start (~5 CPU seconds)")

    def path(self, lang: str) -> Path | None:
        return None if self._directory is None else self._directory / f"{lang}.trie"

    def _get_dictionary_uncached(self, lang: str) -> Mapping[str, str]:
        with self._lock:
            path = self.path(lang)
            if path is None:
                return self._source.get_dictionary(lang)
            trie = _read(path)
            if trie is not None:
                return TrieWrapDict(trie)
            dictionary = self._source.get_dictionary(lang)  # raises for an unknown language
            self._store(path, dictionary)
            return dictionary

    def _store(self, path: Path, dictionary: Mapping[str, str]) -> None:
        log.info("lemmas: caching simplemma's %s dictionary as %s (once per machine)",
                 path.stem, path)
        trie = marisa_trie.BytesTrie((key, lemma.encode()) for key, lemma in dictionary.items())
        data = trie.tobytes()
        try:
            _write_atomically(path, hashlib.sha256(data).digest() + data)
        except OSError as exc:
            log.info("lemmas: cannot write %s (%s); simplemma's dictionaries are decoded at "
                     "each start (~5 CPU seconds)", path, exc)
            self._directory = None  # said once; no more tries built for nothing


def _read(path: Path) -> marisa_trie.BytesTrie | None:
    """The trie stored at ``path``; None when it is missing, unreadable or damaged."""
    try:
        stored = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("lemmas: cannot read %s (%s); building it again", path, exc)
        return None
    digest, data = stored[:_DIGEST_BYTES], stored[_DIGEST_BYTES:]
    if hashlib.sha256(data).digest() != digest:
        log.warning("lemmas: %s does not match its digest; building it again", path)
        return None
    return marisa_trie.BytesTrie().frombytes(data)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

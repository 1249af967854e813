"""Sentence vectors: the real bundled model, its caches, and per-claim similarity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.match.semantic import DIMENSIONS, ClaimVectors, Embedder


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(threads=1)


def test_vectors_are_unit_length_and_an_empty_text_is_a_zero_row(embedder: Embedder) -> None:
    vectors = embedder.embed(["Kremlin denies the report", "", "   "])
    assert vectors.shape == (3, DIMENSIONS)
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-3)
    assert not vectors[1].any() and not vectors[2].any()


def test_a_translation_is_closer_than_another_story(embedder: Embedder) -> None:
    claim, russian, ukrainian, other = embedder.embed([
        "Lukashenko says Ukrainian generals asked him to persuade Putin to stop the war",
        "Лукашенко заявил, что украинские генералы просили его уговорить Путина "
        "остановить войну",
        "Лукашенко: українські генерали просили мене вмовити Путіна зупинити війну",
        "Central bank raises the key rate to fight inflation",
    ])
    assert claim @ russian > claim @ other + 0.05
    assert claim @ ukrainian > claim @ other + 0.05


def test_the_disk_cache_serves_a_new_process_without_the_model(tmp_path: Path) -> None:
    cache = tmp_path / "vectors.sqlite3"
    texts = ["Peskov denies the drone attack", "Пєсков заперечив атаку дронів"]
    first = Embedder(threads=1, cache_path=cache).embed_cached(texts)

    second = Embedder(threads=1, cache_path=cache)

    def no_model(texts: object) -> np.ndarray:
        raise AssertionError("the cache should have answered")

    second.embed = no_model  # type: ignore[method-assign]
    assert np.array_equal(second.embed_cached(texts), first)


def test_a_claim_is_as_close_as_its_closest_text(embedder: Embedder) -> None:
    vectors = ClaimVectors.build(
        [["Putin residence attacked by drones", "Резиденцию Путина атаковали дроны"],
         ["Central bank raises the key rate"]], embedder)
    item = embedder.embed(["Дроны атаковали резиденцию Путина на Валдае"])[0]
    similarity = vectors.similarity(item)
    assert similarity.shape == (2,)
    assert similarity[0] == pytest.approx(float(np.max(vectors.matrix[:2] @ item)))
    assert similarity[0] > similarity[1]

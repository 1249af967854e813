"""Backtest: a claim over stored item features links what the match stage links.

The stage matches a set of wire items against several claims (keyword groups, text only, a
Russian claim, with and without sentence vectors) and keeps each item's features; then each
claim's backtest over the stored features must make the same matches (ids, relations, scores).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from monitor.bus.transport import EmbeddedTransport
from monitor.errors import InvalidInputError
from monitor.match.backtest import _shares_key, could_link, probe
from monitor.match.backtest_run import parse_since, run_backtest
from monitor.match.features import (
    FeatureChunk,
    bucket_hashes,
    decode_features,
    encode_features,
    item_features,
)
from monitor.match.registry import ClaimRegistry
from monitor.match.semantic import DIMENSIONS, Embedder
from monitor.match.stage import MatchProcessor, MatchStage
from monitor.match.stored import EmbeddedStoredItems
from monitor.metrics import Metrics
from monitor.model import Item, Match, decode_match
from monitor.store import Database

CLAIMS = """
claims:
  - id: generals
    text: Lukashenko says Ukrainian generals asked him to stop the war
    keywords: [[Lukashenko, Лукашенко], [generals, генералы]]
    threshold: 30
  - id: rates
    text: The central bank will raise its key rate to 21 percent in December
  - id: kupiansk
    text: Russian forces captured Kupiansk
    texts:
      ru: Российские войска захватили Купянск
  - id: drones
    text: Дроны атаковали резиденцию Путина на Валдае
    threshold: 40
"""
TITLES = [
    ("Лукашенко рассказал о просьбе украинских генералов", "ru"),
    ("Lukashenko: Ukrainian generals asked me to stop the war", "en"),
    ("Генштаб назвал фейком слова Лукашенко о просьбе генералов", "ru"),
    ("Central bank raises key rate to 21% in surprise December move", "en"),
    ("ЦБ повысил ключевую ставку до 21%", "ru"),
    ("Central bank keeps rates on hold", "en"),
    ("Ministry confirms Russian forces captured Kupiansk", "en"),
    ("ВСУ опровергли захват Купянска российскими войсками", "ru"),
    ("Kyiv denies that Kupiansk has fallen", "en"),
    ("Дроны атаковали резиденцию Путина на Валдае, сообщил Песков", "ru"),
    ("В Кремле опровергли атаку дронов на Валдай", "ru"),
    ("Погода в Минске: снег и гололед", "ru"),
    ("Lukashenko plays ice hockey in Minsk", "en"),
    ("Putin visits Valdai region", "en"),
]
NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


def stored_items() -> list[Item]:
    return [Item(f"item{n}", "wire", f"Outlet {n % 3}", f"https://wire{n % 3}.example/{n}", None,
                 title, "", language, NOW - timedelta(hours=n), NOW - timedelta(hours=n),
                 f"hash{n}") for n, (title, language) in enumerate(TITLES)]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(threads=1)


def match_all(tmp_path: Path, embedder: Embedder | None) -> tuple[Database, list[Match]]:
    """The match stage over every item, as `monitor run` would: (state file, its matches)."""
    claims = tmp_path / "claims.yaml"
    claims.write_text(CLAIMS, encoding="utf-8")
    db = Database(tmp_path / "state.sqlite3")
    transport = EmbeddedTransport(db)
    metrics = Metrics(CollectorRegistry())
    stage = MatchStage(transport.stage_log("match"),
                       MatchProcessor(ClaimRegistry(claims, embedder), metrics), metrics)
    transport.publisher().publish(stored_items())
    while not stage.caught_up():
        stage.step()
    return db, [decode_match(r.value) for _place, r in transport.read_matches()]


def summary(matches: list[Match], claim_id: str) -> set[tuple[str, str, str, float]]:
    return {(m.match_id, m.item.item_id, m.relation, m.score) for m in matches
            if m.claim_id == claim_id}


def counted() -> tuple[list[int], Callable[[int], Callable[[int], None]]]:
    seen: list[int] = []

    def progress(total: int) -> Callable[[int], None]:
        seen.append(total)
        return seen.append

    return seen, progress


@pytest.mark.parametrize("semantic", [False, True], ids=["words", "vectors"])
def test_backtest_links_what_the_matcher_linked(tmp_path: Path, embedder: Embedder,
                                                semantic: bool) -> None:
    model = embedder if semantic else None
    db, matched = match_all(tmp_path, model)
    index = ClaimRegistry(tmp_path / "claims.yaml", model).index
    stored = EmbeddedStoredItems(db, model)
    linked = set()
    for claim_id in ("generals", "rates", "kupiansk", "drones"):
        seen, progress = counted()
        found = run_backtest(stored, index, claim_id, NOW - timedelta(days=30), progress,
                             today=NOW.date())
        assert summary(found, claim_id) == summary(matched, claim_id), claim_id
        assert all(m.evidence.backtest for m in found)
        assert seen[0] == len(TITLES) and sum(seen[1:]) == len(TITLES)
        linked |= summary(found, claim_id)
    assert len(linked) >= 6  # the fixture exercises links, not only their absence
    db.close()


def test_since_leaves_older_items_out(tmp_path: Path) -> None:
    db, matched = match_all(tmp_path, None)
    index = ClaimRegistry(tmp_path / "claims.yaml").index
    recent = run_backtest(EmbeddedStoredItems(db, None), index, "generals",
                          NOW - timedelta(hours=1, minutes=30), counted()[1], today=NOW.date())
    assert {m.item.item_id for m in recent} == {"item0", "item1"}
    db.close()


def test_items_stored_before_features_were_kept_get_them_once(tmp_path: Path) -> None:
    db, matched = match_all(tmp_path, None)
    with db.transaction() as conn:
        conn.execute("DELETE FROM item_features WHERE item_id IN ('item0', 'item2')")
    index = ClaimRegistry(tmp_path / "claims.yaml").index
    found = run_backtest(EmbeddedStoredItems(db, None), index, "generals",
                         NOW - timedelta(days=1), counted()[1], today=NOW.date())
    assert summary(found, "generals") == summary(matched, "generals")
    with db.transaction() as conn:
        (kept,) = conn.execute("SELECT COUNT(*) FROM item_features").fetchone()
    assert kept == len(TITLES)
    db.close()


def test_features_kept_by_another_version_are_computed_afresh(tmp_path: Path) -> None:
    db, matched = match_all(tmp_path, None)
    with db.transaction() as conn:  # as schema 1 left them: read as stale, not as current
        rows = conn.execute("SELECT seq, payload FROM item_features "
                            "WHERE item_id IN ('item0', 'item2')").fetchall()
        conn.executemany("UPDATE item_features SET payload = ? WHERE seq = ?",
                         [(b"\x01" + bytes(payload)[1:], seq) for seq, payload in rows])
    index = ClaimRegistry(tmp_path / "claims.yaml").index
    found = run_backtest(EmbeddedStoredItems(db, None, chunk_items=4), index, "generals",
                         NOW - timedelta(days=1), counted()[1], today=NOW.date())
    assert summary(found, "generals") == summary(matched, "generals")
    db.close()


def test_features_round_trip_and_chunk_as_arrays(embedder: Embedder) -> None:
    items = stored_items()[:3]
    features = [item_features(item, embedder) for item in items]
    payloads = [encode_features(f) for f in features]
    back = decode_features(payloads[1])
    assert back.all_keys == features[1].all_keys and back.title_keys == features[1].title_keys
    assert back.vector is not None and features[1].vector is not None
    assert np.array_equal(back.vector, features[1].vector)
    chunk = FeatureChunk.of(payloads + [encode_features(item_features(items[0], None))],
                            DIMENSIONS)
    assert chunk.vectors is not None and chunk.vectors.shape == (4, DIMENSIONS)
    assert chunk.has_vector.tolist() == [True, True, True, False]
    assert set(chunk.owner.tolist()) == {0, 1, 2, 3}


def test_a_claim_sharing_no_word_rules_items_out_without_vectors(tmp_path: Path) -> None:
    claims = tmp_path / "claims.yaml"
    claims.write_text(CLAIMS, encoding="utf-8")
    index = ClaimRegistry(claims).index
    generals = probe(index, "generals")
    chunk = FeatureChunk.of([encode_features(item_features(i, None)) for i in stored_items()],
                            DIMENSIONS)
    possible = could_link(generals, chunk)
    assert possible[:3].all() and not possible[3:12].any()


def test_the_key_sieve_finds_exactly_the_items_sharing_a_bucket(tmp_path: Path) -> None:
    claims = tmp_path / "claims.yaml"
    claims.write_text(CLAIMS, encoding="utf-8")
    index = ClaimRegistry(claims).index
    features = [item_features(i, None) for i in stored_items()]
    chunk = FeatureChunk.of([encode_features(f) for f in features], DIMENSIONS)
    for claim in index.claims:
        probed = probe(index, claim.claim.id)
        expected = [bool(np.intersect1d(bucket_hashes(f.all_keys), probed.buckets).size)
                    and all(np.intersect1d(bucket_hashes(f.all_keys), g).size
                            for g in probed.groups) for f in features]
        assert _shares_key(probed, chunk).tolist() == expected


def test_features_of_another_layout_are_refused_clearly() -> None:
    payload = encode_features(item_features(stored_items()[0], None))
    with pytest.raises(InvalidInputError, match="unsupported schema 1"):
        decode_features(b"\x01" + payload[1:])
    with pytest.raises(InvalidInputError, match="another schema, or truncated"):
        FeatureChunk.of([b"\x01" + payload[1:]], DIMENSIONS)
    with pytest.raises(InvalidInputError, match="another schema, or truncated"):
        FeatureChunk.of([payload[:-1]], DIMENSIONS)


@pytest.mark.parametrize(("text", "expected"), [
    ("30d", NOW - timedelta(days=30)), ("12h", NOW - timedelta(hours=12)),
    ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
    ("2026-11-01T10:00:00+03:00", datetime(2026, 11, 1, 7, tzinfo=UTC)),
], ids=["days", "hours", "iso-date", "iso-time"])
def test_since_spans_and_dates(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected

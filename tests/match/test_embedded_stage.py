"""The embedded match stage on a real SQLite file: exactly once, dead letters, claim reloads."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.bus.embedded import EmbeddedItemLog
from monitor.match.embedded_stage import EmbeddedMatchStage
from monitor.match.registry import ClaimRegistry
from monitor.match.stage import MatchProcessor
from monitor.metrics import Metrics
from monitor.model import Item
from monitor.store import Database

CLAIMS = """
claims:
  - id: generals
    text: Lukashenko says Ukrainian generals asked him to stop the war
    keywords: [[Lukashenko, Лукашенко], [generals, генералы]]
    threshold: 30
"""


def story(n: int, title: str) -> Item:
    return Item(f"item{n}", "wire", "Wire", f"https://wire.example/{n}", None, title, "", "ru",
                None, datetime(2026, 11, 28, tzinfo=UTC), f"hash{n}")


def build(tmp_path: Path) -> tuple[Database, EmbeddedItemLog, EmbeddedMatchStage,
                                   CollectorRegistry]:
    claims = tmp_path / "claims.yaml"
    if not claims.exists():
        claims.write_text(CLAIMS, encoding="utf-8")
    db = Database(tmp_path / "state.sqlite3")
    items, registry = EmbeddedItemLog(db), CollectorRegistry()
    metrics = Metrics(registry)
    stage = EmbeddedMatchStage(items, db, MatchProcessor(ClaimRegistry(claims), metrics),
                               metrics, batch_size=2)
    return db, items, stage, registry


def drain(stage: EmbeddedMatchStage) -> None:
    for _ in range(100):
        if stage.run_once() == 0:
            return
    raise AssertionError("the stage did not catch up")


def test_each_item_is_matched_once_across_restarts(tmp_path: Path) -> None:
    db, items, stage, registry = build(tmp_path)
    items.publish([story(1, "Лукашенко рассказал о просьбе украинских генералов"),
                   story(2, "Погода в Минске"), story(3, "Lukashenko: generals asked me")])
    assert stage.run_once() == 2  # one batch, then a "crash": the process goes away
    db.close()
    db, items, stage, registry = build(tmp_path)
    drain(stage)
    assert stage.match_count() == 2
    assert registry.get_sample_value("monitor_match_items_total", {"outcome": "matched"}) == 1
    assert registry.get_sample_value("monitor_consumer_lag", {"stage": "match"}) == 0
    db.close()


def test_undecodable_items_become_dead_letters(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    db, items, stage, registry = build(tmp_path)
    with db.transaction() as conn:
        conn.execute("INSERT INTO item_log (item_id, content_hash, payload, logged_at) "
                     "VALUES ('bad', 'x', ?, 0)", (b"{not json",))
    items.publish([story(1, "Лукашенко и генералы")])
    with caplog.at_level(logging.ERROR):
        drain(stage)
    assert stage.match_count() == 1
    assert registry.get_sample_value("monitor_dead_letters_total", {"stage": "match"}) == 1
    with db.transaction() as conn:
        assert conn.execute("SELECT payload FROM dead_letters").fetchall() == [(b"{not json",)]
    assert any("dead letter" in record.getMessage() for record in caplog.records)
    db.close()


def test_claims_changes_apply_without_restart_and_bad_files_are_refused(tmp_path: Path) -> None:
    db, items, stage, registry = build(tmp_path)
    claims = tmp_path / "claims.yaml"
    claims.write_text(CLAIMS.replace("[generals, генералы]", "[Путин, Putin]"), encoding="utf-8")
    os.utime(claims, ns=(1, 1))  # a distinct stamp even within one clock tick
    items.publish([story(1, "Лукашенко встретился с Путиным")])
    drain(stage)
    assert stage.match_count() == 1
    claims.write_text("claims:\n  - id: BAD ID\n", encoding="utf-8")
    items.publish([story(2, "Лукашенко и Путин снова встретились")])
    drain(stage)  # the invalid file is logged and the previous claims keep matching
    assert stage.match_count() == 2
    db.close()

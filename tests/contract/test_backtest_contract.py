"""Backtest in both modes (the state file; the items topic with the compacted features topic on
a real broker): a claim added after the items were matched links, through the stored features,
what the matcher would have; --apply records the links once, marked as a backtest's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.match.backtest_run import run_backtest, stored_items
from monitor.match.registry import ClaimRegistry
from monitor.model import decode_match
from tests.contract.conftest import Pipeline
from tests.contract.test_match_contract import CLAIMS, MATCHING, UNRELATED, match_stage, step_until
from tests.contract.test_match_contract import story as contract_story

LATER_CLAIM = """
  - id: weather
    text: Snow and black ice in Minsk this week
    keywords: [[Минск, Minsk], [снег, snow]]
    threshold: 30
"""


def no_progress(_total: int) -> Callable[[int], None]:
    return lambda _n: None


def test_a_later_claim_backtested_and_applied_once(pipeline: Pipeline, tmp_path: Path) -> None:
    claims = tmp_path / "claims.yaml"
    claims.write_text(CLAIMS, encoding="utf-8")
    now = datetime.now(UTC)
    items = [contract_story(n, title) for n, title in enumerate(MATCHING + UNRELATED)]
    items = [item.__class__(**{**{f: getattr(item, f) for f in item.__slots__},
                               "fetched_at": now - timedelta(hours=n)})
             for n, item in enumerate(items)]
    publisher = pipeline.transport.publisher()
    publisher.publish(items)
    publisher.close()
    stage = match_stage(pipeline, claims)
    step_until(stage, lambda: len(pipeline.read("matches")) == len(MATCHING)
               and stage.caught_up(), "every item matched and committed")
    live = {decode_match(v).match_id for _k, v in pipeline.read("matches")}
    assert len(live) == len(MATCHING)

    claims.write_text(CLAIMS + LATER_CLAIM, encoding="utf-8")
    index = ClaimRegistry(claims).index
    since = now - timedelta(days=1)
    with stored_items(pipeline.settings, index) as stored:
        again = run_backtest(stored, index, "generals", since, no_progress)
        assert {m.match_id for m in again} == live  # what the matcher linked, no more
        found = run_backtest(stored, index, "weather", since, no_progress)
        assert [m.item.item_id for m in found] == ["item3"]
        assert stored.apply(found) == 1
        assert stored.apply(found) == 0
    applied = [decode_match(v) for k, v in pipeline.read("matches") if k == b"weather"]
    assert len(applied) == 1 and applied[0].evidence.backtest

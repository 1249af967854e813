"""A link applied by a backtest is background in a claim's record, as it is for the alerter,
even when its item was published after the claim was made."""

from __future__ import annotations

from dataclasses import replace

from monitor.desk.record import build_record
from tests.desk.factory import CLAIM, at, match


def test_an_applied_backtest_link_is_background_not_news() -> None:
    news = match("news", published=at(22))
    found = match("found", outlet="RIA", published=at(23))
    found = replace(found, evidence=replace(found.evidence, backtest=True))
    record = build_record(CLAIM, [news, found])
    assert [e.item_id for e in record.news] == ["news"]
    assert [e.item_id for e in record.background] == ["found"]
    assert record.first_report is not None and record.first_report.item_id == "news"

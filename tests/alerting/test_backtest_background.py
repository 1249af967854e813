"""A link a backtest applied (``monitor claims backtest --apply``) is background: recorded on
the match log, never alerted, even when its item is news by date."""

from __future__ import annotations

from dataclasses import replace

from monitor.alerting.core import is_background
from monitor.model import Match, decode_match, encode_match
from tests.alerting.test_stage import Harness, harness, log_matches  # noqa: F401  (fixture)
from tests.support.alert_stage import CLAIMS, T0, WAIT, denial
from tests.support.receivers import WebhookReceiver


def applied(match: Match) -> Match:
    return replace(match, match_id=f"{match.match_id}-bt",
                   evidence=replace(match.evidence, backtest=True))


def test_an_applied_backtest_link_is_not_alerted_but_the_same_news_is(
        harness: Harness, hook: WebhookReceiver) -> None:  # noqa: F811
    news = denial("tass", "TASS")
    claim = CLAIMS[news.claim_id]
    assert not claim.predates(news.item.published_at)  # news by its date
    assert is_background(applied(news), claim) and not is_background(news, claim)
    assert decode_match(encode_match(applied(news))).evidence.backtest
    stage = harness.stage()
    log_matches(harness.db, applied(news))
    harness.at(stage, T0)
    harness.at(stage, T0 + 10 * WAIT)
    assert hook.requests == []
    assert harness.count("suppressed_background") == 1
    log_matches(harness.db, news)
    harness.at(stage, T0 + 11 * WAIT)
    harness.at(stage, T0 + 20 * WAIT)
    assert len(hook.requests) == 1 and harness.count("sent") == 1

"""monitor/alerting/stage.py on the embedded logs (a real state file) against a real webhook
receiver, with a clock the test moves (group_wait and retries pass without waiting): what the
stage does with a match whatever carries it. What depends on the transport (restarts, dead
letters, replay, redelivery) is in tests/contract/test_alert_contract.py, run in both modes.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.alerting.archive import EmbeddedArchive
from monitor.alerting.channels import build_channels
from monitor.alerting.core import AlertCore
from monitor.alerting.stage import AlertStage, load_stage_config
from monitor.bus.embedded import EmbeddedLog, EmbeddedStageLog
from monitor.bus.log import DeadLetter, Output
from monitor.bus.silences import SilenceStore
from monitor.errors import BusError
from monitor.metrics import Metrics
from monitor.model import Match, encode_match
from monitor.store import Database
from tests.alerting import make_match
from tests.support.alert_stage import (
    CLAIM,
    CLAIMS,
    RETRY,
    T0,
    WAIT,
    alert_stage,
    alerts_total,
    denial,
    write_routes,
)
from tests.support.clock import ManualClock
from tests.support.receivers import WebhookReceiver


def log_matches(db: Database, *matches: Match) -> None:
    outputs = [Output("matches", m.claim_id.encode(), encode_match(m), m.match_id)
               for m in matches]
    with db.transaction() as conn:
        EmbeddedLog(db, "matches").append(conn, outputs, T0)


class Harness:
    def __init__(self, tmp_path: Path, hook: WebhookReceiver) -> None:
        self.routes = write_routes(tmp_path, hook, None)
        self.db = Database(tmp_path / "state.sqlite3")
        self.registry = CollectorRegistry()
        self.clock = ManualClock(now=T0)

    def stage(self) -> AlertStage:
        silences = SilenceStore(self.db)
        transport = EmbeddedStageLog(self.db, "alert", EmbeddedLog(self.db, "matches"),
                                     {"alerts": EmbeddedLog(self.db, "alerts")})
        return alert_stage(
            transport, self.routes, self.clock.now, registry=self.registry,
            silences=lambda now: silences.list(include_expired=False,
                                               now=datetime.fromtimestamp(now, UTC)),
            max_poll_seconds=0.0)

    def at(self, stage: AlertStage, moment: float) -> None:
        """One step of ``stage`` with the clock at ``moment``."""
        self.clock.advance(moment - self.clock.now())
        stage.step()

    def settled(self, stage: AlertStage) -> bool:
        """``idle()`` as a waiting caller sees it: when it cannot say yet (no step has begun
        since the wait began), after one more step."""
        if stage.idle():
            return True
        stage.step()
        return stage.idle()

    def count(self, outcome: str, receiver: str = "desk-hook") -> float:
        return alerts_total(self.registry, outcome, receiver)


@pytest.fixture
def harness(tmp_path: Path, hook: WebhookReceiver) -> Iterator[Harness]:
    made = Harness(tmp_path, hook)
    yield made
    made.db.close()


def test_a_silenced_claim_sends_nothing_and_is_counted(harness: Harness,
                                                       hook: WebhookReceiver) -> None:
    now = datetime.fromtimestamp(T0, UTC)
    SilenceStore(harness.db).add([f"claim = {CLAIM}"], now + timedelta(hours=1),
                                 "known story", "test", now)
    stage = harness.stage()
    log_matches(harness.db, denial("ria", "RIA Novosti"))
    harness.at(stage, T0)
    harness.at(stage, T0 + 10 * WAIT)
    assert hook.requests == []
    assert harness.count("suppressed_silence") == 1
    assert EmbeddedArchive(harness.db).records() == []
    assert harness.count("sent") == 0 and stage.pending() == 0


@pytest.mark.parametrize(("published", "alerted"), [
    pytest.param(datetime(2022, 12, 3, 16, 43, tzinfo=UTC), False, id="years-before-the-claim"),
    pytest.param(datetime(2025, 11, 19, 23, 59, tzinfo=UTC), False, id="the-day-before"),
    pytest.param(datetime(2025, 11, 20, 0, 1, tzinfo=UTC), True, id="the-day-it-was-made"),
    pytest.param(None, True, id="undated"),
])
def test_an_item_older_than_its_claim_is_background_not_an_alert(
        harness: Harness, hook: WebhookReceiver, published: datetime | None,
        alerted: bool) -> None:
    # Seen on real feeds: a December 2022 item alerted as news about a November 2025 claim.
    claim = "kupiansk-captured"  # made_at: 2025-11-20 in the shipped claims.yaml
    assert CLAIMS[claim].made_at is not None
    match = make_match(claim_id=claim, relation="denial", source="Ukrinform")
    match = replace(match, item=replace(match.item, published_at=published))
    stage = harness.stage()
    log_matches(harness.db, match)
    harness.at(stage, T0)
    harness.at(stage, T0 + 10 * WAIT)
    assert len(hook.requests) == (1 if alerted else 0)
    assert harness.count("suppressed_background") == (0 if alerted else 1)


def backlog(match: Match) -> Match:
    return replace(match, item=replace(match.item, backlog=True, feed_id="new-wire"))


@pytest.mark.parametrize(("published", "outcome"), [
    pytest.param(datetime(2026, 11, 21, tzinfo=UTC), "suppressed_backlog", id="after-made_at"),
    # Older than the claim and in a first poll: background says more (it is never news).
    pytest.param(datetime(2025, 11, 19, tzinfo=UTC), "suppressed_background",
                 id="before-made_at"),
])
def test_core_gives_a_backlog_match_no_destination_and_counts_it_once(
        harness: Harness, caplog: pytest.LogCaptureFixture, published: datetime,
        outcome: str) -> None:
    claim = CLAIMS["kupiansk-captured"]  # made_at: 2025-11-20
    core = AlertCore(load_stage_config(harness.routes, {}), lambda: CLAIMS,
                     build_channels(timeout_seconds=5.0), Metrics(harness.registry))
    try:
        news = make_match(claim_id=claim.id, relation="denial")
        news = replace(news, item=replace(news.item, published_at=published))
        with caplog.at_level(logging.INFO, logger="monitor.alerting.core"):
            assert core.destinations(backlog(news), claim, [], T0) == []
            assert core.destinations(backlog(news), None, [], T0) == []  # claim gone: still
        suppressed = 2 if outcome == "suppressed_backlog" else 1
        assert harness.count(outcome) == suppressed
        others = {"suppressed_backlog", "suppressed_background"} - {outcome}
        assert harness.count(others.pop()) == 2 - suppressed
        said = [r.getMessage() for r in caplog.records if "backlog" in r.getMessage()]
        assert len(said) == suppressed and "first poll of feed new-wire" in said[0]
        if outcome == "suppressed_backlog":  # the same item, not from a first poll, is news
            assert [d.receiver for d in core.destinations(news, claim, [], T0)] == ["desk-hook"]
    finally:
        core.close()


def test_a_backlog_match_is_kept_but_only_the_news_is_alerted(
        harness: Harness, hook: WebhookReceiver) -> None:
    stage = harness.stage()
    log_matches(harness.db, backlog(denial("old", "Old Wire")), denial("tass", "TASS"))
    harness.at(stage, T0)
    harness.at(stage, T0 + 10 * WAIT)
    (message,) = hook.wait_for(1)
    body = json.dumps(message.body, ensure_ascii=False)
    assert "TASS" in body and "Old Wire" not in body
    assert harness.count("suppressed_backlog") == 1 and harness.count("sent") == 1
    assert harness.settled(stage)


def test_a_receiver_answering_500_is_retried_and_gets_the_alert_once(
        harness: Harness, hook: WebhookReceiver) -> None:
    stage = harness.stage()
    log_matches(harness.db, denial("ria", "RIA Novosti"))
    hook.fail(500, times=1)
    harness.at(stage, T0)
    harness.at(stage, T0 + WAIT)
    assert [d.status for d in hook.requests] == [500]
    assert stage.next_wakeup() == T0 + WAIT + RETRY.base_delay_seconds
    harness.at(stage, T0 + WAIT + RETRY.base_delay_seconds)
    assert [d.status for d in hook.requests] == [500, 200]
    keys = {d.headers.get("idempotency-key") for d in hook.requests}
    assert len(keys) == 1 and None not in keys  # the retry is recognisably the same message
    harness.at(stage, T0 + 100 * WAIT)
    assert len(hook.accepted) == 1
    assert (harness.count("failed"), harness.count("retried"), harness.count("sent")) == (1, 1, 1)


def test_429_retry_after_is_honoured(harness: Harness, hook: WebhookReceiver) -> None:
    stage = harness.stage()
    log_matches(harness.db, denial("ria", "RIA Novosti"))
    hook.fail(429, retry_after=120, times=1)
    harness.at(stage, T0)
    harness.at(stage, T0 + WAIT)
    harness.at(stage, T0 + WAIT + 119)  # backoff alone would have retried by now
    assert [d.status for d in hook.requests] == [429]
    harness.at(stage, T0 + WAIT + 120)
    assert [d.status for d in hook.requests] == [429, 200]


class FailingWrites:
    """The embedded stage log, failing its first ``failures`` writes and commits as a busy
    state file or a broker away would (nothing of a failed call is stored)."""

    def __init__(self, inner: EmbeddedStageLog, failures: int) -> None:
        self._inner, self.failures = inner, failures
        self.source = inner.source

    def _fail(self, action: str) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise BusError(f"alert: cannot {action} the state file: database is locked")

    def write(self, outputs: Sequence[Output], dead: Sequence[DeadLetter] = (),
              positions: Mapping[int, int] | None = None) -> None:
        self._fail("write")
        self._inner.write(outputs, dead, positions)

    def commit(self, positions: Mapping[int, int]) -> None:
        self._fail("commit")
        self._inner.commit(positions)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_failed_writes_and_commits_lose_nothing_and_repeat_nothing(
        harness: Harness, hook: WebhookReceiver) -> None:
    transport = FailingWrites(EmbeddedStageLog(
        harness.db, "alert", EmbeddedLog(harness.db, "matches"),
        {"alerts": EmbeddedLog(harness.db, "alerts")}), failures=4)
    stage = alert_stage(transport, harness.routes, harness.clock.now, registry=harness.registry,
                        max_poll_seconds=0.0)  # type: ignore[arg-type]
    log_matches(harness.db, denial("ria", "RIA Novosti"))

    def step_as_the_runner(done: Callable[[], bool]) -> None:
        for _ in range(20):  # a BusError is tried again
            with contextlib.suppress(BusError):
                stage.step()
            if done():
                return
        raise AssertionError("the stage does not recover from failed writes")

    step_as_the_runner(lambda: stage.pending() == 1)
    harness.clock.advance(WAIT)
    step_as_the_runner(stage.idle)
    assert transport.failures == 0
    assert len(hook.requests) == 1
    events = [r.event for r in EmbeddedArchive(harness.db).records()]
    assert events == ["pending", "sent"]
    assert transport.committed() == 1


def test_idle_is_never_left_over_from_before_new_matches(harness: Harness,
                                                         hook: WebhookReceiver) -> None:
    stage = harness.stage()
    harness.at(stage, T0)
    assert harness.settled(stage)
    log_matches(harness.db, denial("ria", "RIA Novosti"))
    assert not stage.idle()  # the last step found nothing, but it began before the match came
    harness.at(stage, T0 + 1)
    assert not harness.settled(stage) and stage.pending() == 1
    harness.at(stage, T0 + 1 + WAIT)
    assert harness.settled(stage) and len(hook.accepted) == 1

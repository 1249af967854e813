"""monitor/alerting/stage.py: the embedded alert stage against a real webhook receiver and a real
SMTP server on 127.0.0.1, with the clock passed in (no sleeps: ``run_once(now)``)."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.alerting.channels import build_channels
from monitor.alerting.core import AlertCore
from monitor.alerting.deliver import Channels, DeliveryResult
from monitor.alerting.render import Rendered
from monitor.alerting.silence_store import SilenceStore
from monitor.alerting.stage import EmbeddedAlertStage, load_stage_config
from monitor.config.claims import load_claims
from monitor.metrics import Metrics
from monitor.model import Match, encode_match
from monitor.retry import RetryPolicy
from monitor.store import Database
from tests.alerting import make_match
from tests.conftest import REPO
from tests.support.receivers import SmtpReceiver, WebhookReceiver

T0 = 1_800_000_000.0
WAIT = 30.0
CLAIM = "lukashenko-generals-2022"
CLAIMS = {claim.id: claim for claim in load_claims(REPO / "claims.yaml")}
RETRY = RetryPolicy(max_attempts=3, base_delay_seconds=5.0, max_delay_seconds=60.0,
                    jitter=False)


class Crash(Exception):
    """The process dying in the middle of a step."""


class CrashingChannel:
    def send(self, rendered: Rendered, url: str) -> DeliveryResult:
        raise Crash(url)


def denial(match_id: str, source: str) -> Match:
    match = make_match(claim_id=CLAIM, relation="denial", source=source)
    return replace(match, match_id=match_id, item=replace(match.item, item_id=match_id))


def log_matches(db: Database, *matches: Match) -> None:
    with db.transaction() as conn:
        conn.executemany("INSERT INTO match_log (match_id, claim_id, payload, logged_at) "
                         "VALUES (?, ?, ?, ?)",
                         [(m.match_id, m.claim_id, encode_match(m), T0) for m in matches])


def write_routes(tmp_path: Path, hook: WebhookReceiver, smtp: SmtpReceiver | None) -> Path:
    (tmp_path / "templates").symlink_to(REPO / "alerts" / "templates")
    email = smtp.apprise_url() if smtp else "mailto://127.0.0.1:9?to=nobody@example.org"
    path = tmp_path / "routes.yaml"
    path.write_text(
        "receivers:\n"
        f"  - name: desk-email\n    urls: ['{email}']\n"
        f"  - name: desk-hook\n    urls: ['{hook.url('/alerts')}']\n"
        "route:\n"
        f"  receiver: {'desk-email' if smtp else 'desk-hook'}\n"
        f"  group_wait: {WAIT:g}s\n  group_interval: 5m\n  repeat_interval: 4h\n"
        "  routes:\n"
        "    - matchers: ['relation = denial']\n      receiver: desk-hook\n"
        f"      continue: {'true' if smtp else 'false'}\n"
        "    - matchers: ['relation = denial']\n      receiver: desk-email\n",
        encoding="utf-8")
    return path


class Harness:
    def __init__(self, tmp_path: Path, hook: WebhookReceiver, smtp: SmtpReceiver | None) -> None:
        self.routes = write_routes(tmp_path, hook, smtp)
        self.state_path = tmp_path / "state.sqlite3"
        self.db = Database(self.state_path)
        self.registry = CollectorRegistry()

    def stage(self, channels: Channels | None = None) -> EmbeddedAlertStage:
        return EmbeddedAlertStage(
            self.db, load_stage_config(self.routes, {}), lambda: CLAIMS,
            channels or build_channels(timeout_seconds=5.0), Metrics(self.registry),
            retry=RETRY, clock=lambda: T0, rng=random.Random(1))

    def restart(self) -> None:
        """A new process on the same state file: new database handle, new metrics."""
        self.db.close()
        self.db = Database(self.state_path)
        self.registry = CollectorRegistry()

    def count(self, outcome: str, receiver: str = "desk-hook") -> float:
        value = self.registry.get_sample_value(
            "monitor_alerts_total", {"receiver": receiver, "outcome": outcome})
        return value or 0.0


@pytest.fixture
def harness(tmp_path: Path, hook: WebhookReceiver) -> Iterator[Harness]:
    """The webhook receiver alone (delivery paths)."""
    made = Harness(tmp_path, hook, None)
    yield made
    made.db.close()


def test_three_denials_make_one_webhook_message_and_one_email(
        tmp_path: Path, hook: WebhookReceiver, smtp: SmtpReceiver) -> None:
    harness = Harness(tmp_path, hook, smtp)
    stage = harness.stage()
    log_matches(harness.db, denial("ria", "RIA Novosti"), denial("tass", "TASS"),
                denial("belta", "BelTA"))
    stage.run_once(T0)
    stage.run_once(T0 + WAIT - 1)
    assert hook.requests == [] and smtp.messages == []
    stage.run_once(T0 + WAIT)
    (message,) = hook.wait_for(1)
    body = json.dumps(message.body, ensure_ascii=False)
    assert all(source in body for source in ("RIA Novosti", "TASS", "BelTA"))
    (mail,) = smtp.wait_for(1)
    assert "DENIAL" in mail.subject
    stage.run_once(T0 + 10 * WAIT)
    assert len(hook.requests) == 1 and len(smtp.messages) == 1
    assert harness.count("sent") == 1 and harness.count("sent", "desk-email") == 1
    assert harness.registry.get_sample_value("monitor_alert_outbox_size") == 0
    history = stage.outbox.history(CLAIM)
    assert {entry.receiver for entry in history} == {"desk-hook", "desk-email"}
    assert all(entry.status == "sent" for entry in history)
    harness.db.close()


def test_a_silenced_claim_sends_nothing_and_is_counted(harness: Harness,
                                                       hook: WebhookReceiver) -> None:
    now = datetime.fromtimestamp(T0, UTC)
    SilenceStore(harness.db).add([f"claim = {CLAIM}"], now + timedelta(hours=1),
                                 "known story", "test", now)
    stage = harness.stage()
    log_matches(harness.db, denial("ria", "RIA Novosti"))
    stage.run_once(T0)
    stage.run_once(T0 + 10 * WAIT)
    assert hook.requests == []
    assert harness.count("suppressed_silence") == 1
    assert stage.outbox.history() == []


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
    stage.run_once(T0)
    stage.run_once(T0 + 10 * WAIT)
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
    stage.run_once(T0)
    stage.run_once(T0 + 10 * WAIT)
    (message,) = hook.wait_for(1)
    body = json.dumps(message.body, ensure_ascii=False)
    assert "TASS" in body and "Old Wire" not in body
    assert harness.count("suppressed_backlog") == 1 and harness.count("sent") == 1
    assert stage.idle()


def test_a_receiver_answering_500_is_retried_and_gets_the_alert_once(
        harness: Harness, hook: WebhookReceiver) -> None:
    stage = harness.stage()
    log_matches(harness.db, denial("ria", "RIA Novosti"))
    hook.fail(500, times=1)
    stage.run_once(T0)
    stage.run_once(T0 + WAIT)
    assert [d.status for d in hook.requests] == [500]
    assert stage.next_wakeup() == T0 + WAIT + RETRY.base_delay_seconds
    stage.run_once(T0 + WAIT + RETRY.base_delay_seconds)
    assert [d.status for d in hook.requests] == [500, 200]
    keys = {d.headers.get("idempotency-key") for d in hook.requests}
    assert len(keys) == 1 and None not in keys  # the retry is recognisably the same message
    stage.run_once(T0 + 100 * WAIT)
    assert len(hook.accepted) == 1
    assert (harness.count("failed"), harness.count("retried"), harness.count("sent")) == (1, 1, 1)


def test_429_retry_after_is_honoured(harness: Harness, hook: WebhookReceiver) -> None:
    stage = harness.stage()
    log_matches(harness.db, denial("ria", "RIA Novosti"))
    hook.fail(429, retry_after=120, times=1)
    stage.run_once(T0)
    stage.run_once(T0 + WAIT)
    stage.run_once(T0 + WAIT + 119)  # backoff alone would have retried by now
    assert [d.status for d in hook.requests] == [429]
    stage.run_once(T0 + WAIT + 120)
    assert [d.status for d in hook.requests] == [429, 200]


def test_a_permanent_rejection_is_dead_lettered_then_replayed(
        harness: Harness, hook: WebhookReceiver) -> None:
    stage = harness.stage()
    log_matches(harness.db, denial("ria", "RIA Novosti"))
    hook.fail(400)
    stage.run_once(T0)
    stage.run_once(T0 + WAIT)
    (dead,) = stage.outbox.dead_letters()
    assert dead.attempts == 1 and "400" in (dead.last_error or "")
    assert harness.count("dead_lettered") == 1
    stage.run_once(T0 + 100 * WAIT)
    assert len(hook.requests) == 1
    hook.recover()
    stage.outbox.replay(dead.id, T0 + 101 * WAIT)
    stage.run_once(T0 + 101 * WAIT)
    assert len(hook.accepted) == 1 and stage.outbox.dead_letters() == []


def test_a_restart_between_enqueue_and_delivery_delivers_once(
        harness: Harness, hook: WebhookReceiver) -> None:
    crashing = harness.stage(Channels({}, CrashingChannel()))
    log_matches(harness.db, denial("ria", "RIA Novosti"))
    crashing.run_once(T0)
    with pytest.raises(Crash):
        crashing.run_once(T0 + WAIT)  # enqueued, then the process dies while sending
    harness.restart()
    stage = harness.stage()
    stage.run_once(T0 + WAIT + 1)
    stage.run_once(T0 + 100 * WAIT)
    assert len(hook.requests) == 1
    assert [entry.status for entry in stage.outbox.history()] == ["sent"]


def test_a_restart_after_sending_does_not_send_again(harness: Harness,
                                                     hook: WebhookReceiver) -> None:
    stage = harness.stage()
    log_matches(harness.db, denial("ria", "RIA Novosti"))
    stage.run_once(T0)
    stage.run_once(T0 + WAIT)
    assert len(hook.accepted) == 1
    harness.restart()
    again = harness.stage()
    assert again.position() == 1
    again.run_once(T0 + WAIT + 1)
    again.run_once(T0 + 100 * WAIT)
    log_matches(harness.db, denial("tass", "TASS"))  # new activity still flows
    again.run_once(T0 + 101 * WAIT)
    again.run_once(T0 + 102 * WAIT)
    assert len(hook.requests) == 2
    assert "TASS" in json.dumps(hook.requests[1].body)


def test_an_undecodable_match_is_set_aside(harness: Harness, hook: WebhookReceiver) -> None:
    stage = harness.stage()
    with harness.db.transaction() as conn:
        conn.execute("INSERT INTO match_log (match_id, claim_id, payload, logged_at) "
                     "VALUES ('bad', ?, ?, ?)", (CLAIM, b"{not json", T0))
    stage.run_once(T0)
    assert stage.position() == 1
    assert harness.registry.get_sample_value("monitor_dead_letters_total",
                                             {"stage": "alert"}) == 1
    with harness.db.transaction() as conn:
        assert conn.execute("SELECT stage FROM dead_letters").fetchall() == [("alert",)]

"""The alert stage as the service builds it, for tests: real routes and templates, real
channels (or a channel that dies after sending), a clock the test moves, a stage log of either
transport."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from prometheus_client import CollectorRegistry

from monitor.alerting.channels import build_channels
from monitor.alerting.core import AlertCore
from monitor.alerting.deliver import Channels, DeliveryResult
from monitor.alerting.render import Rendered
from monitor.alerting.silences import Silence
from monitor.alerting.stage import MAX_POLL_SECONDS, AlertStage, load_stage_config
from monitor.bus.log import StageLog
from monitor.config.claims import load_claims
from monitor.metrics import Metrics
from monitor.model import Match
from monitor.retry import RetryPolicy
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
    """The process dying in the middle of a step (not an error any runner would retry)."""


class _SendThenCrash:
    """Hands the message to the real channel, then dies before the stage hears back."""

    def __init__(self, channels: Channels) -> None:
        self._channels = channels

    def send(self, rendered: Rendered, url: str) -> DeliveryResult:
        self._channels.send(rendered, url)
        raise Crash(f"died after sending to {url}")


def send_then_crash() -> Channels:
    real = build_channels(timeout_seconds=5.0)
    return Channels({}, _SendThenCrash(real), closers=(real.close,))


def denial(match_id: str, source: str, claim_id: str = CLAIM) -> Match:
    match = make_match(claim_id=claim_id, relation="denial", source=source)
    return replace(match, match_id=match_id,
                   item=replace(match.item, item_id=match_id,
                                url=f"https://wire.example/{match_id}"))


def write_routes(tmp_path: Path, hook: WebhookReceiver, smtp: SmtpReceiver | None) -> Path:
    """Denials to the webhook; with ``smtp`` also (continue) to the mailbox."""
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


def alert_core(routes: Path, metrics: Metrics, channels: Channels | None = None,
               retry: RetryPolicy = RETRY) -> AlertCore:
    return AlertCore(load_stage_config(routes, {}), lambda: CLAIMS,
                     channels or build_channels(timeout_seconds=5.0), metrics, retry=retry,
                     rng=random.Random(1))


def alert_stage(transport: StageLog, routes: Path, clock: Callable[[], float], *,
                registry: CollectorRegistry | None = None, channels: Channels | None = None,
                silences: Callable[[float], Sequence[Silence]] = lambda now: [],
                max_poll_seconds: float = MAX_POLL_SECONDS) -> AlertStage:
    """A stage as a new process would build it (``registry``: a fresh one by default)."""
    metrics = Metrics(registry or CollectorRegistry())
    return AlertStage(transport, alert_core(routes, metrics, channels), silences, metrics,
                      clock=clock, max_poll_seconds=max_poll_seconds)


def alerts_total(stage_registry: CollectorRegistry, outcome: str,
                 receiver: str = "desk-hook") -> float:
    value = stage_registry.get_sample_value("monitor_alerts_total",
                                            {"receiver": receiver, "outcome": outcome})
    return value or 0.0

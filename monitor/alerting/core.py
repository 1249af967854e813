"""The alerting core: silences and routes, due groups, one delivery attempt.

The alert stage (:mod:`monitor.alerting.stage`) reads matches and records what happened on its
logs; ``monitor dlq replay`` sends a dead letter again. Everything a match goes through between
reading and recording is here, so that both route, group, render, retry, count and log alike:

- :meth:`AlertCore.destinations`: a match that is background (published before its claim was
  made), backlog (from a feed's first poll) or silenced is counted and logged with the reason
  and gets no destination; any other match gets its routes.
- :meth:`AlertCore.due`: the grouper's due notifications, counting rate-limit holds.
- :meth:`AlertCore.attempt`: render and send one queued notification to every URL of its
  receiver, and say what the shell must record: :class:`Sent`, :class:`Retry` or
  :class:`GiveUp`. It records nothing itself.

The idempotency key of each message is ``<notification id>-<n>`` (n numbers the messages of
the notification: per URL, per claim); a notification id is stable across retries, restarts
and (Kafka) instances, so a receiver reading the key can drop a repeat.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from jinja2 import TemplateError

from monitor.alerting.deliver import Channels, DeliveryResult
from monitor.alerting.grouping import Grouper, Notification
from monitor.alerting.messages import decode_payload
from monitor.alerting.render import AlertGroup, Rendered, channel_for_url, render
from monitor.alerting.routes import RoutedTo, route_match
from monitor.alerting.silences import Silence, active_silence
from monitor.config.alerts import AlertsConfig, RateLimit
from monitor.config.claims import ClaimConfig
from monitor.errors import InvalidInputError
from monitor.metrics import AlertOutcome, Metrics
from monitor.model import Match
from monitor.retry import RetryPolicy

log = logging.getLogger(__name__)

Claims = Callable[[], Mapping[str, ClaimConfig]]


@dataclass(frozen=True, slots=True)
class AlertStageConfig:
    """What the stage needs from alerts/routes.yaml, with every receiver's URLs resolved
    (they hold secrets: never logged, never stored)."""

    alerts: AlertsConfig
    urls: Mapping[str, list[str]]
    template_dir: Path
    public_url: str | None = None  # the claim desk seen from outside: alerts link to it


class Queued(Protocol):
    """A notification waiting to be sent (the stage's queue, a dead letter replayed)."""

    @property
    def id(self) -> str: ...

    @property
    def receiver(self) -> str: ...

    @property
    def payload(self) -> bytes: ...

    @property
    def attempts(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Sent:
    detail: str


@dataclass(frozen=True, slots=True)
class Retry:
    delay_seconds: float
    error: str


@dataclass(frozen=True, slots=True)
class GiveUp:
    error: str


Attempt = Sent | Retry | GiveUp


class AlertCore:
    """Routing, grouping decisions and delivery attempts; no storage, no clock of its own.

    ``attempt`` blocks on the channels (bounded by their timeouts); nothing else blocks.
    """

    def __init__(self, config: AlertStageConfig, claims: Claims, channels: Channels,
                 metrics: Metrics, *, retry: RetryPolicy | None = None,
                 rng: random.Random | None = None) -> None:
        self.config, self.claims = config, claims
        self._channels, self._metrics = channels, metrics
        self._retry, self._rng = retry or RetryPolicy(), rng or random.Random()
        self.rate_limits: dict[str, RateLimit] = {
            r.name: r.rate_limit for r in config.alerts.receivers if r.rate_limit}
        for receiver in config.alerts.receivers:
            metrics.init_receiver(receiver.name)

    def reload(self, config: AlertStageConfig) -> None:
        """Route and render with a new routes.yaml from now on. Alerts already queued keep
        their receiver (one the new file drops fails them into the DLQ, named there, for
        ``monitor dlq replay``); rate limits are counted by the groupers and change at the
        next start."""
        self.config = config
        for receiver in config.alerts.receivers:
            self._metrics.init_receiver(receiver.name)

    def new_grouper(self) -> Grouper:
        return Grouper(self.rate_limits)

    def destinations(self, match: Match, claim: ClaimConfig | None,
                     silences: Sequence[Silence], now: float) -> list[RoutedTo]:
        """Where ``match`` goes; empty when it is background (an item published before the
        claim was made), backlog (an item of a feed's first poll) or a silence covers it (each
        counted and logged)."""
        tags = claim.tags if claim is not None else ()
        routed = route_match(match, tags, self.config.alerts.route)
        if claim is not None and is_background(match, claim):
            for destination in routed:
                self.count(destination.receiver, AlertOutcome.SUPPRESSED_BACKGROUND)
            log.info("alert: match %s of %s is background: published %s, before the claim was "
                     "made (%s); recorded, not alerted", match.match_id, match.claim_id,
                     match.item.published_at and match.item.published_at.date(), claim.made_at,
                     extra={"claim_id": match.claim_id})
            return []
        if match.item.backlog:
            for destination in routed:
                self.count(destination.receiver, AlertOutcome.SUPPRESSED_BACKLOG)
            log.info("alert: match %s of %s is backlog: first poll of feed %s, which already "
                     "listed the item; recorded, not alerted", match.match_id, match.claim_id,
                     match.item.feed_id, extra={"claim_id": match.claim_id})
            return []
        silence = active_silence(match, tags, silences, datetime.fromtimestamp(now, UTC))
        if silence is None:
            return routed
        for destination in routed:
            self.count(destination.receiver, AlertOutcome.SUPPRESSED_SILENCE)
        log.info("alert: match %s of %s silenced by %s (%s)", match.match_id, match.claim_id,
                 silence.id, silence.reason, extra={"claim_id": match.claim_id})
        return []

    def due(self, grouper: Grouper, now: float) -> list[Notification]:
        """The grouper's due notifications; groups held by a rate limit are counted."""
        due = grouper.due(now)
        for receiver, holds in grouper.pop_held().items():
            self.count(receiver, AlertOutcome.SUPPRESSED_RATE_LIMIT, holds)
            log.warning("alert: %s is over its rate limit; %d group(s) held for later",
                        receiver, holds, extra={"receiver": receiver})
        return due

    def attempt(self, entry: Queued, now: float) -> Attempt:
        """Render and send ``entry`` once; count and log the outcome for the shell to record."""
        del now  # outcomes carry delays, the shell adds them to its own clock
        try:
            messages = self.render(entry)
        except (InvalidInputError, KeyError, ValueError, TemplateError) as exc:
            return self._give_up(entry, f"alert: cannot render {entry.id}: {exc!r}")
        with self._metrics.alert_delivery_duration.labels(entry.receiver).time():
            results = [self._channels.send(replace(rendered, idempotency_key=f"{entry.id}-{n}"),
                                           url)
                       for n, (url, rendered) in enumerate(messages)]
        failures = [r for r in results if not r.ok]
        if not failures:
            self.count(entry.receiver, AlertOutcome.SENT)
            log.info("alert: %s sent to %s (%d message(s))", entry.id, entry.receiver,
                     len(results), extra={"receiver": entry.receiver})
            return Sent("; ".join(r.detail for r in results))
        return self._failed(entry, failures)

    def render(self, entry: Queued) -> list[tuple[str, Rendered]]:
        """(url, message) per URL and per claim in the notification; KeyError for a receiver
        no longer in routes.yaml."""
        receiver = self.config.alerts.receiver(entry.receiver)
        claims = self.claims()
        by_claim: dict[str, list[Match]] = {}
        for match in decode_payload(entry.payload):
            by_claim.setdefault(match.claim_id, []).append(match)
        groups = [AlertGroup(claim_or_stub(claims, claim_id), tuple(found))
                  for claim_id, found in by_claim.items()]
        return [(url, render(group, channel_for_url(url), template_dir=self.config.template_dir,
                             template=receiver.template, public_url=self.config.public_url))
                for url in self.config.urls[entry.receiver] for group in groups]

    def _failed(self, entry: Queued, failures: list[DeliveryResult]) -> Attempt:
        self.count(entry.receiver, AlertOutcome.FAILED)
        error = "; ".join(f"{r.detail or r.status}" for r in failures)
        retry_after = max((r.retry_after_seconds for r in failures
                           if r.retry_after_seconds is not None), default=None)
        delay = None if any(r.permanent for r in failures) else self._retry.next_delay(
            entry.attempts + 1, retry_after, self._rng)
        if delay is None:
            return self._give_up(entry, error)
        self.count(entry.receiver, AlertOutcome.RETRIED)
        log.warning("alert: %s to %s failed (attempt %d): %s; next try in %.0f s", entry.id,
                    entry.receiver, entry.attempts + 1, error, delay,
                    extra={"receiver": entry.receiver})
        return Retry(delay, error)

    def _give_up(self, entry: Queued, error: str) -> GiveUp:
        self.count(entry.receiver, AlertOutcome.DEAD_LETTERED)
        log.error("alert: %s to %s dead-lettered after %d attempt(s): %s; "
                  "`monitor dlq replay %s` re-sends it", entry.id, entry.receiver,
                  entry.attempts + 1, error, entry.id, extra={"receiver": entry.receiver})
        return GiveUp(error)

    def count(self, receiver: str, outcome: AlertOutcome, amount: int = 1) -> None:
        self._metrics.alerts.labels(receiver, outcome.value).inc(amount)

    def close(self) -> None:
        """Release the channels (HTTP connections, log filters)."""
        self._channels.close()


def claim_or_stub(claims: Mapping[str, ClaimConfig], claim_id: str) -> ClaimConfig:
    """The claim, or a minimal stand-in when claims.yaml no longer has it (still alert)."""
    claim = claims.get(claim_id)
    if claim is not None:
        return claim
    return ClaimConfig.model_construct(id=claim_id, text=f"(claim {claim_id} is no longer in "
                                                          "claims.yaml)")


def is_background(match: Match, claim: ClaimConfig) -> bool:
    """Published before the claim was made (:meth:`ClaimConfig.predates`), or linked after
    the fact by a backtest (``monitor claims backtest --apply``): recorded, not alerted."""
    return match.evidence.backtest or claim.predates(match.item.published_at)

"""Embedded mode's alert stage: local match log -> silences, routes, groups -> outbox -> channels.

One ``run_once(now)`` does three steps, each committed before the next starts:

1. **Intake.** Matches after the stage's position ("alert" in ``stage_offsets``) are read from
   ``match_log``. A silenced match is counted and logged with the silence id; the others are
   routed and join their groups (a match already handled for a receiver is skipped). The new
   position and the grouper snapshot are written in ONE transaction, so after a crash the
   stage resumes with exactly the groups it had when it last advanced.
2. **Grouping.** Each due notification goes into the outbox together with the grouper snapshot
   that no longer holds it (one transaction: :meth:`Outbox.enqueue`), so a notification is
   neither lost nor queued twice.
3. **Delivery.** Due outbox rows are rendered per URL (format from the URL, the receiver's
   template override) and sent. A row is ``sent`` only when every URL of the receiver
   accepted it; a failure anywhere is retried (or dead-lettered) as a whole, so on a PARTIAL
   failure the URLs that did accept get the message again on the retry. The outbox's own
   window (a crash between a channel accepting and ``mark_sent``) can likewise repeat one
   message once; the stable notification id lets webhook/e-mail receivers drop the repeat.

Rendering happens at delivery, not at enqueue: the payload keeps the matches, so a template fix
applies to what is still queued, and replayed dead letters are rendered afresh.

Not thread-safe: one thread runs it (``run``); others only ``wake`` it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import TemplateError

from monitor.alerting.deliver import Channels, DeliveryResult
from monitor.alerting.grouping import Grouper, Notification
from monitor.alerting.messages import decode_payload, encode_payload
from monitor.alerting.outbox import AlreadyHandled, Outbox, OutboxEntry, write_grouper_state
from monitor.alerting.render import AlertGroup, Rendered, channel_for_url, render
from monitor.alerting.retry import RetryPolicy
from monitor.alerting.routes import route_match
from monitor.alerting.silence_store import SilenceStore
from monitor.alerting.silences import active_silence
from monitor.config.alerts import AlertsConfig, load_alerts, resolve_urls
from monitor.config.claims import ClaimConfig
from monitor.errors import InvalidInputError
from monitor.match.registry import ClaimRegistry
from monitor.metrics import AlertOutcome, Metrics
from monitor.model import Match, decode_match
from monitor.store import Database

log = logging.getLogger(__name__)

STAGE = "alert"
MAX_IDLE_SECONDS = 1.0  # the match stage does not signal: new matches are picked up this fast


@dataclass(frozen=True, slots=True)
class AlertStageConfig:
    """What the stage needs from alerts/routes.yaml, with every receiver's URLs resolved
    (they hold secrets: never logged, never stored)."""

    alerts: AlertsConfig
    urls: Mapping[str, list[str]]
    template_dir: Path


class EmbeddedAlertStage:
    """``run()`` = while not stopping: ``run_once(clock())``; waits for ``wake`` when idle."""

    def __init__(self, database: Database, config: AlertStageConfig,
                 claims: Callable[[], Mapping[str, ClaimConfig]], channels: Channels,
                 metrics: Metrics, *, retry: RetryPolicy | None = None,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 batch_size: int = 200) -> None:
        self._db, self._config, self._claims = database, config, claims
        self._channels, self._metrics = channels, metrics
        self._retry, self._clock = retry or RetryPolicy(), clock
        self._rng, self._batch_size = rng or random.Random(), batch_size
        self.outbox = Outbox(database)
        self._silences = SilenceStore(database)
        self._limits = {r.name: r.rate_limit for r in config.alerts.receivers if r.rate_limit}
        state = self.outbox.load_grouper_state()
        self._grouper = (Grouper(self._limits) if state is None
                         else Grouper.from_dict(state, self._limits))
        self.wake = threading.Event()
        for receiver in config.alerts.receivers:
            metrics.init_receiver(receiver.name)

    def position(self) -> int:
        with self._db.transaction() as conn:
            row = conn.execute("SELECT seq FROM stage_offsets WHERE stage = ?",
                               (STAGE,)).fetchone()
        return int(row[0]) if row else 0

    def run_once(self, now: float) -> int:
        """Intake, grouping and delivery at ``now``; returns how many things it did."""
        done = self._intake(now) + self._enqueue_due(now) + self._deliver_due(now)
        self._metrics.alert_outbox_size.set(self.outbox.size())
        self._metrics.alert_oldest_pending_age.set(self.outbox.oldest_pending_age(now))
        return done

    # -- 1. intake ---------------------------------------------------------------------------

    def _intake(self, now: float) -> int:
        start = self.position()
        with self._db.transaction() as conn:
            batch = conn.execute("SELECT seq, payload FROM match_log WHERE seq > ? ORDER BY seq "
                                 "LIMIT ?", (start, self._batch_size)).fetchall()
        if not batch:
            return 0
        claims = self._claims()
        silences = self._silences.list(include_expired=False,
                                       now=datetime.fromtimestamp(now, UTC))
        dead: list[tuple[bytes, str]] = []
        for _seq, payload in batch:
            try:
                match = decode_match(bytes(payload))
            except InvalidInputError as exc:
                dead.append((bytes(payload), str(exc)))
                continue
            self._take(match, claims.get(match.claim_id), silences, now)
        self._commit(int(batch[-1][0]), dead, now)
        return len(batch)

    def _take(self, match: Match, claim: ClaimConfig | None, silences: list[Any],
              now: float) -> None:
        tags = claim.tags if claim is not None else ()
        destinations = route_match(match, tags, self._config.alerts.route)
        silence = active_silence(match, tags, silences, datetime.fromtimestamp(now, UTC))
        if silence is not None:
            for routed in destinations:
                self._count(routed.receiver, AlertOutcome.SUPPRESSED_SILENCE)
            log.info("alert: match %s of %s silenced by %s (%s)", match.match_id,
                     match.claim_id, silence.id, silence.reason,
                     extra={"claim_id": match.claim_id})
            return
        for routed in destinations:
            if not self.outbox.handled(match.match_id, routed.receiver):
                self._grouper.add(match, routed, now)

    def _commit(self, seq: int, dead: list[tuple[bytes, str]], now: float) -> None:
        with self._db.transaction() as conn:
            conn.executemany(
                "INSERT INTO dead_letters (stage, payload, error, at) VALUES (?, ?, ?, ?)",
                [(STAGE, payload, error, now) for payload, error in dead])
            write_grouper_state(conn, self._grouper.to_dict(), now)
            conn.execute("INSERT INTO stage_offsets (stage, seq) VALUES (?, ?) "
                         "ON CONFLICT (stage) DO UPDATE SET seq = excluded.seq", (STAGE, seq))
        for payload, error in dead:
            self._metrics.dead_letters.labels(STAGE).inc()
            log.error("alert: match set aside as a dead letter: %s (%d bytes)", error,
                      len(payload))

    # -- 2. grouping -------------------------------------------------------------------------

    def _enqueue_due(self, now: float) -> int:
        due = self._grouper.due(now)
        for receiver, holds in self._grouper.pop_held().items():
            self._count(receiver, AlertOutcome.SUPPRESSED_RATE_LIMIT, holds)
            log.warning("alert: %s is over its rate limit; %d group(s) held for later",
                        receiver, holds, extra={"receiver": receiver})
        for notification in due:
            self._enqueue(notification, now)
        return len(due)

    def _enqueue(self, notification: Notification, now: float) -> None:
        before = self._grouper.to_dict()
        self._grouper.mark_sent(notification, now)
        match_ids = {m.match_id: m.claim_id for m in notification.matches}
        try:
            self.outbox.enqueue(notification.notification_id, notification.receiver,
                                encode_payload(notification), match_ids, now,
                                grouper_state=self._grouper.to_dict())
        except AlreadyHandled as exc:  # handled by an earlier life: keep the grouper moving
            log.warning("%s", exc, extra={"receiver": notification.receiver})
            self.outbox.save_grouper_state(self._grouper.to_dict(), now)
        except Exception:  # nothing was written: forget the in-memory advance too
            self._grouper = Grouper.from_dict(before, self._limits)
            raise

    # -- 3. delivery -------------------------------------------------------------------------

    def _deliver_due(self, now: float) -> int:
        entries = self.outbox.due(now)
        for entry in entries:
            self._deliver(entry, now)
        return len(entries)

    def _deliver(self, entry: OutboxEntry, now: float) -> None:
        try:
            messages = self._render(entry)
        except (InvalidInputError, KeyError, ValueError, TemplateError) as exc:
            self._give_up(entry, now, f"alert: cannot render {entry.id}: {exc!r}")
            return
        with self._metrics.alert_delivery_duration.labels(entry.receiver).time():
            results = [
                self._channels.send(replace(rendered, idempotency_key=f"{entry.id}-{n}"), url)
                for n, (url, rendered) in enumerate(messages)]
        failures = [r for r in results if not r.ok]
        if not failures:
            self.outbox.mark_sent(entry.id, now, "; ".join(r.detail for r in results))
            self._count(entry.receiver, AlertOutcome.SENT)
            log.info("alert: %s sent to %s (%d message(s))", entry.id, entry.receiver,
                     len(results), extra={"receiver": entry.receiver})
            return
        self._failed(entry, failures, now)

    def _render(self, entry: OutboxEntry) -> list[tuple[str, Rendered]]:
        """(url, message) per URL and per claim in the notification; KeyError for a receiver
        no longer in routes.yaml."""
        receiver = self._config.alerts.receiver(entry.receiver)
        claims = self._claims()
        matches = decode_payload(entry.payload)
        by_claim: dict[str, list[Match]] = {}
        for match in matches:
            by_claim.setdefault(match.claim_id, []).append(match)
        groups = [AlertGroup(_claim_or_stub(claims, claim_id), tuple(found))
                  for claim_id, found in by_claim.items()]
        return [(url, render(group, channel_for_url(url), template_dir=self._config.template_dir,
                             template=receiver.template))
                for url in self._config.urls[entry.receiver] for group in groups]

    def _failed(self, entry: OutboxEntry, failures: list[DeliveryResult], now: float) -> None:
        self._count(entry.receiver, AlertOutcome.FAILED)
        error = "; ".join(f"{r.detail or r.status}" for r in failures)
        retry_after = max((r.retry_after_seconds for r in failures
                           if r.retry_after_seconds is not None), default=None)
        delay = None if any(r.permanent for r in failures) else self._retry.next_delay(
            entry.attempts + 1, retry_after, self._rng)
        if delay is None:
            self._give_up(entry, now, error)
            return
        self.outbox.mark_failed(entry.id, now, now + delay, error)
        self._count(entry.receiver, AlertOutcome.RETRIED)
        log.warning("alert: %s to %s failed (attempt %d): %s; next try in %.0f s", entry.id,
                    entry.receiver, entry.attempts + 1, error, delay,
                    extra={"receiver": entry.receiver})

    def _give_up(self, entry: OutboxEntry, now: float, error: str) -> None:
        self.outbox.dead_letter(entry.id, now, error)
        self._count(entry.receiver, AlertOutcome.DEAD_LETTERED)
        log.error("alert: %s to %s dead-lettered after %d attempt(s): %s; "
                  "`monitor dlq replay %s` re-sends it", entry.id, entry.receiver,
                  entry.attempts + 1, error, entry.id, extra={"receiver": entry.receiver})

    def _count(self, receiver: str, outcome: AlertOutcome, amount: int = 1) -> None:
        self._metrics.alerts.labels(receiver, outcome.value).inc(amount)

    # -- the loop ----------------------------------------------------------------------------

    def next_wakeup(self) -> float | None:
        """When grouping or a retry next needs the stage; None when nothing waits."""
        with self._db.transaction() as conn:
            (retry_at,) = conn.execute("SELECT MIN(next_attempt_at) FROM alert_outbox "
                                       "WHERE status = 'pending'").fetchone()
        times = [t for t in (self._grouper.next_wakeup(), retry_at) if t is not None]
        return min(times, default=None)

    def idle(self) -> bool:
        """Caught up: every logged match taken in, nothing grouped or queued (``--once``)."""
        with self._db.transaction() as conn:
            (last,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM match_log").fetchone()
        return (self.position() >= int(last) and self._grouper.pending_count() == 0
                and self.outbox.size() == 0)

    def close(self) -> None:
        """Release the channels (HTTP connections, log filters); call after ``run`` returns."""
        self._channels.close()

    def run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            now = self._clock()
            try:
                done = self.run_once(now)
            except Exception:  # a bug or a disk error: log it, back off, keep the stage alive
                log.exception("alert: step failed; retrying")
                stopping.wait(5.0)
                continue
            if not done:
                wakeup = self.next_wakeup()
                wait = MAX_IDLE_SECONDS if wakeup is None else wakeup - self._clock()
                self.wake.wait(min(max(wait, 0.01), MAX_IDLE_SECONDS))
                self.wake.clear()


def _claim_or_stub(claims: Mapping[str, ClaimConfig], claim_id: str) -> ClaimConfig:
    """The claim, or a minimal stand-in when claims.yaml no longer has it (still alert)."""
    claim = claims.get(claim_id)
    if claim is not None:
        return claim
    return ClaimConfig.model_construct(id=claim_id, text=f"(claim {claim_id} is no longer in "
                                                          "claims.yaml)")


def load_stage_config(alerts_path: Path, environ: Mapping[str, str]) -> AlertStageConfig:
    """Read routes.yaml and resolve every receiver's URLs now: a missing secret is a
    ConfigError naming the receiver and the variable, at start rather than at first alert."""
    alerts = load_alerts(alerts_path)
    urls = {receiver.name: resolve_urls(receiver, environ) for receiver in alerts.receivers}
    return AlertStageConfig(alerts, urls, alerts_path.parent / "templates")


def claims_of(registry: ClaimRegistry) -> Callable[[], Mapping[str, ClaimConfig]]:
    """The registry's current claims by id, re-read from it on each call."""

    def current() -> dict[str, ClaimConfig]:
        registry.refresh()
        return {prepared.claim.id: prepared.claim for prepared in registry.index.claims}

    return current

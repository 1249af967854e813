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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.alerting.core import AlertCore, AlertStageConfig, GiveUp, Retry, Sent
from monitor.alerting.deliver import Channels
from monitor.alerting.grouping import Grouper, Notification
from monitor.alerting.messages import encode_payload
from monitor.alerting.outbox import AlreadyHandled, Outbox, OutboxEntry, write_grouper_state
from monitor.alerting.retry import RetryPolicy
from monitor.alerting.silence_store import SilenceStore
from monitor.config.alerts import load_alerts, resolve_urls
from monitor.config.claims import ClaimConfig
from monitor.errors import InvalidInputError
from monitor.match.registry import ClaimRegistry
from monitor.metrics import Metrics
from monitor.model import Match, decode_match
from monitor.store import Database

__all__ = ["AlertStageConfig", "EmbeddedAlertStage", "claims_of", "load_stage_config"]

log = logging.getLogger(__name__)

STAGE = "alert"
MAX_IDLE_SECONDS = 1.0  # the match stage does not signal: new matches are picked up this fast


class EmbeddedAlertStage:
    """``run()`` = while not stopping: ``run_once(clock())``; waits for ``wake`` when idle."""

    def __init__(self, database: Database, config: AlertStageConfig,
                 claims: Callable[[], Mapping[str, ClaimConfig]], channels: Channels,
                 metrics: Metrics, *, retry: RetryPolicy | None = None,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 batch_size: int = 200) -> None:
        self._db, self._metrics = database, metrics
        self._core = AlertCore(config, claims, channels, metrics, retry=retry, rng=rng)
        self._clock, self._batch_size = clock, batch_size
        self.outbox = Outbox(database)
        self._silences = SilenceStore(database)
        state = self.outbox.load_grouper_state()
        self._grouper = (self._core.new_grouper() if state is None
                         else Grouper.from_dict(state, self._core.rate_limits))
        self.wake = threading.Event()

    def reload_routes(self, config: AlertStageConfig) -> None:
        self._core.reload(config)

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
        claims = self._core.claims()
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
        for routed in self._core.destinations(match, claim, silences, now):
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
        due = self._core.due(self._grouper, now)
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
            self._grouper = Grouper.from_dict(before, self._core.rate_limits)
            raise

    # -- 3. delivery -------------------------------------------------------------------------

    def _deliver_due(self, now: float) -> int:
        entries = self.outbox.due(now)
        for entry in entries:
            self._deliver(entry, now)
        return len(entries)

    def _deliver(self, entry: OutboxEntry, now: float) -> None:
        outcome = self._core.attempt(entry, now)
        if isinstance(outcome, Sent):
            self.outbox.mark_sent(entry.id, now, outcome.detail)
        elif isinstance(outcome, Retry):
            self.outbox.mark_failed(entry.id, now, now + outcome.delay_seconds, outcome.error)
        elif isinstance(outcome, GiveUp):
            self.outbox.dead_letter(entry.id, now, outcome.error)

    # -- the loop ----------------------------------------------------------------------------

    def next_wakeup(self) -> float | None:
        """When grouping or a retry next needs the stage; None when nothing waits."""
        with self._db.transaction() as conn:
            (retry_at,) = conn.execute("SELECT MIN(next_attempt_at) FROM alert_outbox "
                                       "WHERE status = 'pending'").fetchone()
        times = [t for t in (self._grouper.next_wakeup(), retry_at) if t is not None]
        return min(times, default=None)

    def caught_up(self) -> bool:
        """Every logged match taken in (grouped, queued, or found handled)."""
        with self._db.transaction() as conn:
            (last,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM match_log").fetchone()
        return self.position() >= int(last)

    def pending(self) -> int:
        """Alerts not delivered yet: matches waiting in a group, notifications queued."""
        return self._grouper.pending_count() + self.outbox.size()

    def idle(self) -> bool:
        """Caught up: every logged match taken in, nothing grouped or queued (``--once``)."""
        return self.caught_up() and self.pending() == 0

    def close(self) -> None:
        """Release the channels (HTTP connections, log filters); call after ``run`` returns."""
        self._core.close()

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

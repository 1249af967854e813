"""The alert stage: matches -> silences, routes, groups -> channels, with the alert log as the
record of what was done and the dead letters for what was given up. Written once over
:class:`monitor.bus.log.StageLog`: the embedded transport keeps the logs in the state file,
the Kafka one on ``monitor.matches``, ``monitor.alerts`` and ``monitor.dlq``.

Handled once per (match_id, receiver), across restarts and (Kafka) instances, with nothing kept
but the logs (see :mod:`monitor.alerting.alert_log` for the record and
:mod:`monitor.alerting.progress` for the commit rule). One :meth:`AlertStage.step`:

1. **Poll**, and apply what the group changed first: a revoked partition's groups, queued
   notifications and unwritten records are dropped (its next owner rebuilds them from the
   logs); an assigned partition's alert records are read back before any of its matches is
   looked at. A pair already named there is skipped from then on, and a notification
   ``pending`` without an outcome (its writer died, or lost the partition, between writing
   "pending" and the outcome) is delivered again with the same id, so the same idempotency key.
2. **Intake.** A match is routed (silenced, background and backlog matches are counted, not
   alerted); each new pair joins its group and holds its partition's commit back. A match
   that cannot be decoded becomes a dead letter and the stage goes on. Matches taken in,
   the stage polls once more and takes in what came meanwhile: through Kafka the broker
   makes a match commit readable partition by partition, and a fetch in between brought part
   of it (the rest then waited for another ``pending`` write).
3. **Pending.** A due notification is split per source partition; each part is written as a
   ``pending`` record (and acknowledged) before it is sent. Only then are its pairs released,
   so the commit may pass them: from here on the alert log carries the notification. The
   ``pending`` records of a round go out in one write (one SQLite transaction, one flush).
4. **Delivery** through the shared core (:mod:`monitor.alerting.core`) on the threads of a
   :class:`~monitor.alerting.dispatch.DeliveryPool`: each part is handed over as soon as its
   ``pending`` record is written, different receivers and groups at the same time (at most
   ``deliveries_per_receiver`` per receiver, one at a time per group, in order). The step then
   waits for its deliveries (``settle``) only while nothing new comes in: new matches end the
   wait, and a slow receiver's deliveries stay in flight across steps (``SETTLE_SECONDS``)
   while the others go on. The outcomes that came back by the end of the wait are written in
   one write: ``sent``, or after the last retry a dead letter (headers
   stage/error/receiver/id/partition/attempts) with a ``dead`` record. A notification waiting
   for its retry does not hold up its group's next one.
5. **Commit** each partition up to its first record still held: with the step's next write
   (one transaction for the records and the offsets), or alone when nothing is to be written.
   Matches that come in while the step waits for its deliveries end the step there: they
   are taken in at once, and the outcomes and the commit go with their ``pending`` records.

A transport failure (:class:`monitor.errors.BusError`) loses nothing: what was not written stays
in memory and is written first on the next try, and nothing is committed past it; the runner
retries the step. Anything else raised here is a bug and stops the process.

In Kafka mode an alerter the group dropped without its knowing cannot write (the stage log's
writes are fenced by the group generation, :mod:`monitor.bus.kafka_log`), so a part is only
ever sent by the partition's owner of the moment, or again with the same id by the next one.

Windows that can repeat (never lose): a crash between a channel accepting and the outcome
record repeats that part once, with the same idempotency key (an outcome waits for its group
write at most until the step's wait ends, ``SETTLE_SECONDS``); a partition revoked while one
of its parts is in flight drops that outcome, and the new owner sends the part again with the
same key; a group split by a rebalance while waiting (``group_wait``) is sent as it stands
and the rest follows from the new owner. :meth:`AlertStage.close` waits for the deliveries in
flight and records their outcomes, so a stop repeats nothing.
The grouper's timing (group_interval, rate limits) is not recorded: after a restart a group
starts afresh.

One thread steps the stage (the delivery threads only call the core and hand results back);
:meth:`idle`, :meth:`pending` and :meth:`next_wakeup` may be read
from any thread (they read what the last step left).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.alerting.alert_log import AlertRecord, Ledger, alert_output, decode_alert_record
from monitor.alerting.core import AlertCore, AlertStageConfig, Attempt, GiveUp, Retry, Sent
from monitor.alerting.dispatch import DEFAULT_PER_RECEIVER, DeliveryPool
from monitor.alerting.grouping import Notification
from monitor.alerting.messages import encode_payload
from monitor.alerting.progress import CommitTracker, MemoryOutbox, Pair, PendingAlert, StepView
from monitor.alerting.silences import Silence
from monitor.bus.log import (
    DeadLetter,
    Polled,
    Record,
    StageLog,
    dead_letter,
    report_set_aside,
)
from monitor.config.alerts import load_alerts, resolve_urls
from monitor.config.claims import ClaimConfig
from monitor.errors import BusError, InvalidInputError, RecoverableError
from monitor.metrics import Metrics
from monitor.model import Match, decode_match

__all__ = ["AlertStage", "AlertStageConfig", "load_stage_config"]

log = logging.getLogger(__name__)

STAGE = "alert"
MAX_POLL_SECONDS = 1.0
RETRY_POLL_SECONDS = 0.1  # records wait to be written: poll briefly, then write them
SETTLE_SECONDS = 5.0  # a step waits this long at most for its deliveries when nothing comes in
INPUT_CHECK_SECONDS = 0.01  # while waiting, look for new matches this often
Silences = Callable[[float], Sequence[Silence]]


@dataclass(frozen=True, slots=True)
class _Outcome:
    """An outcome record not written yet, with the dead letter of a notification given up."""

    partition: int
    record: AlertRecord
    dead: DeadLetter | None = None


class AlertStage:
    """``step()`` does one round; :func:`monitor.runner.run_stage` loops it. See the module doc.

    Blocks in ``poll`` (up to ``max_poll_seconds``, less when something is due), on the
    transport's writes, and while its deliveries are in flight and nothing new comes in (up to
    ``SETTLE_SECONDS``); the channels block only the delivery threads.
    """

    name = STAGE

    def __init__(self, transport: StageLog, core: AlertCore, silences: Silences,
                 metrics: Metrics, *, clock: Callable[[], float] = time.time,
                 max_poll_seconds: float = MAX_POLL_SECONDS,
                 deliveries_per_receiver: int = DEFAULT_PER_RECEIVER) -> None:
        self._log, self._core, self._silences = transport, core, silences
        self._metrics, self._clock, self._max_poll_seconds = metrics, clock, max_poll_seconds
        self._pool = DeliveryPool(self._attempt, per_receiver=deliveries_per_receiver)
        self._grouper = core.new_grouper()
        self._ledger, self._tracker, self._outbox = Ledger(), CommitTracker(), MemoryOutbox()
        self._owned: set[int] = set()  # partitions whose alert records are read back
        self._unread: set[int] = set()  # assigned, alert records not read back yet
        self._inbox: dict[int, list[Record]] = {}  # polled, not taken in yet
        self._claim_partition: dict[str, int] = {}
        self._dead: list[tuple[Record, DeadLetter]] = []  # unreadable matches, not written
        self._unlogged: list[PendingAlert] = []  # parts whose "pending" is not written
        self._unwritten: list[_Outcome] = []
        self._committed: dict[int, int] = {}
        self._view = StepView()
        self._failed = False  # a step raised what no retry mends: close() records nothing

    # -- one round -------------------------------------------------------------------------

    def step(self) -> int:
        """Poll, take in, write pending parts, deliver, commit; returns how much it did."""
        step = self._view.begin()
        idle = False
        try:
            done = self._round()
            lag = self._log.lag()
            self._metrics.consumer_lag.labels(STAGE).set(lag)
            idle = lag == 0 and self._nothing_left()
            return done
        except RecoverableError:
            raise
        except BaseException:
            self._failed = True
            raise
        finally:
            self._publish(step, idle)

    def _round(self) -> int:
        polled = self._log.poll(self._poll_timeout())
        self._receive(polled)
        self._read_back()
        now = self._clock()
        done = self._intake(now)
        if done:  # the rest of a commit that became readable partition by partition
            self._receive(self._log.poll(0.0))
            done += self._intake(now)
        done += self._enqueue_due(now)
        self._collect()
        self._write()
        done += self._deliver_due(now)
        self._settle()
        if not any(self._inbox.values()):
            self._write()
        # else new matches came in while we waited: they are taken in first, and these
        # outcomes and this commit go with their pending records, in one write
        self._update_gauges(now)
        return done

    # -- 1. partitions -----------------------------------------------------------------------

    def _receive(self, polled: Polled) -> None:
        """Apply the group's changes, then keep the records of our partitions for intake."""
        for partition in sorted(polled.revoked & (self._owned | self._unread)):
            self._forget(partition)
        self._unread |= polled.assigned - self._owned  # a kept partition keeps its state
        for record in polled.records:
            if record.partition in self._owned or record.partition in self._unread:
                self._inbox.setdefault(record.partition, []).append(record)

    def _forget(self, partition: int) -> None:
        dropped = self._grouper.drop(self._tracker.forget(partition))
        queued = self._outbox.forget(partition)  # outcomes still in flight are dropped
        self._pool.forget(lambda entry: entry.partition != partition)
        self._unlogged = [p for p in self._unlogged if p.partition != partition]
        self._unwritten = [o for o in self._unwritten if o.partition != partition]
        self._dead = [d for d in self._dead if d[0].partition != partition]
        self._ledger.forget(partition)
        for state in (self._committed, self._inbox):
            state.pop(partition, None)
        self._owned.discard(partition)
        self._unread.discard(partition)
        if dropped or queued:
            log.info("alert: partition %d moved away; its %d grouped match(es) and %d queued "
                     "notification(s) go to its next owner", partition, dropped, queued)

    def _read_back(self) -> None:
        """Read the alert records of newly assigned partitions (a failure leaves them, and
        their polled matches, for the next try), and the silences: the first read opens
        the silence book (through Kafka a consumer, metadata, end offsets: ~150 ms that the
        first matches would otherwise wait for)."""
        if not self._unread:
            return
        for partition in sorted(self._unread):
            records = self._log.read_back("alerts", [partition])
            for record in records:
                try:
                    self._ledger.apply(partition, decode_alert_record(record.value))
                except InvalidInputError as exc:
                    log.error("alert: alert record %s unreadable, ignored: %s", record.place,
                              exc)
            self._queue_in_doubt(partition)
            self._unread.discard(partition)
            self._owned.add(partition)
            log.info("alert: partition %d: %d alert record(s) read back", partition,
                     len(records))
        self._silences(self._clock())

    def _queue_in_doubt(self, partition: int) -> None:
        now = self._clock()
        for pending in self._ledger.in_doubt(partition):
            due = max(now, pending.next_attempt_at or now)  # a Retry-After outlives us
            self._outbox.add(PendingAlert(pending.id, pending.receiver, pending.payload or b"",
                                          partition, pending.claim_ids, pending.match_ids,
                                          pending.at, due, pending.attempts))
            log.warning("alert: %s to %s was pending when its last owner stopped; sending it "
                        "again with the same id%s", pending.id, pending.receiver,
                        "" if due == now else f" in {due - now:.0f} s",
                        extra={"receiver": pending.receiver})

    # -- 2. intake -----------------------------------------------------------------------------

    def _intake(self, now: float) -> int:
        if not any(self._inbox.get(p) for p in self._owned):
            return 0
        # Before the records leave the inbox: silences read from a broker may fail (BusError),
        # and the step is then tried again with nothing taken in.
        silences = self._silences(now)
        claims = self._core.claims()
        records = [r for p in sorted(self._owned) for r in self._inbox.pop(p, ())]
        for record in records:
            try:
                match = decode_match(record.value)
            except InvalidInputError as exc:
                letter = dead_letter(STAGE, record, str(exc), self._log.source)
                self._dead.append((record, letter))
                self._tracker.consumed(record.partition, record.offset, [_dead_pair(record)])
                continue
            self._claim_partition[match.claim_id] = record.partition
            held = self._take(match, record.partition, claims.get(match.claim_id), silences,
                              now)
            self._tracker.consumed(record.partition, record.offset, held)
        return len(records)

    def _take(self, match: Match, partition: int, claim: ClaimConfig | None,
              silences: Sequence[Silence], now: float) -> list[Pair]:
        held = []
        for routed in self._core.destinations(match, claim, silences, now):
            if self._ledger.handled(partition, match.match_id, routed.receiver):
                continue
            if self._grouper.add(match, routed, now):
                held.append((match.match_id, routed.receiver))
        return held

    # -- 3. pending ----------------------------------------------------------------------------

    def _enqueue_due(self, now: float) -> int:
        due = self._core.due(self._grouper, now)
        for notification in due:
            self._grouper.mark_sent(notification, now)
            self._unlogged.extend(self._parts(notification, now))
        return len(due)

    def _parts(self, notification: Notification, now: float) -> list[PendingAlert]:
        by_partition: dict[int, list[Match]] = {}
        for match in notification.matches:
            by_partition.setdefault(self._claim_partition[match.claim_id], []).append(match)
        parts = []
        for partition, matches in sorted(by_partition.items()):
            part_id = notification.notification_id + (
                "" if len(by_partition) == 1 else f"-p{partition}")
            part = Notification(notification.key, notification.receiver, tuple(matches),
                                notification.first)
            parts.append(PendingAlert(
                part_id, notification.receiver, encode_payload(part), partition,
                tuple(sorted({m.claim_id for m in matches})), part.match_ids, now, now,
                lane=str(notification.key)))
        return parts

    def _write(self) -> None:
        """Write every record and dead letter not written yet, and commit what earlier writes
        released (step 5), in one write: one transaction, not one for the records and one
        for the commit. A BusError leaves all of it for the next try."""
        if not (self._dead or self._unlogged or self._unwritten):
            self._commit()
            return
        pending = [(part.partition, _pending_record(part)) for part in self._unlogged]
        outcomes = [(o.partition, o.record) for o in self._unwritten]
        dead = [letter for _, letter in self._dead]
        dead += [o.dead for o in self._unwritten if o.dead is not None]
        positions = self._positions_to_commit()
        self._log.write([alert_output(p, r) for p, r in pending + outcomes], dead,
                        positions or None)
        self._committed.update(positions)
        for partition, record in pending + outcomes:
            self._ledger.apply(partition, record)
        for part in self._unlogged:
            self._outbox.add(part)
            self._tracker.release((m, part.receiver) for m in part.match_ids)
        self._tracker.release(_dead_pair(unreadable) for unreadable, _ in self._dead)
        report_set_aside(self._metrics, [letter for _, letter in self._dead])
        self._dead, self._unlogged, self._unwritten = [], [], []

    # -- 4. delivery ---------------------------------------------------------------------------

    def _deliver_due(self, now: float) -> int:
        """Hand every due part to the delivery pool (its "pending" record is written)."""
        entries = self._outbox.due(now)
        for entry in entries:
            self._outbox.start(entry)
            self._pool.submit(entry, entry.ordered_in)
        return len(entries)

    def _attempt(self, entry: PendingAlert) -> Attempt:
        """On a delivery thread: one attempt through the core (which records nothing)."""
        return self._core.attempt(entry, self._clock())

    def _settle(self) -> None:
        """Wait for the deliveries in flight while nothing else needs the stage: no new match
        (looked for every ``INPUT_CHECK_SECONDS``), nothing due, at most ``SETTLE_SECONDS``;
        their outcomes are then written together."""
        wakeup = self._next_wakeup()
        budget = SETTLE_SECONDS if wakeup is None else min(
            SETTLE_SECONDS, max(0.0, wakeup - self._clock()))
        deadline = time.monotonic() + budget
        while self._pool.in_flight() and (left := deadline - time.monotonic()) > 0:
            self._pool.wait(min(INPUT_CHECK_SECONDS, left))
            self._collect()
            if not self._pool.in_flight():
                break
            polled = self._log.poll(0.0)
            self._receive(polled)
            if polled.records or polled.assigned or polled.revoked:
                break  # new matches: take them in now, the deliveries go on meanwhile

    def _collect(self) -> None:
        """Take the outcomes of finished deliveries, to be written (a delivery's error, a
        bug, is raised here)."""
        now = self._clock()
        for delivered in self._pool.take_done():
            if self._outbox.awaits(delivered.entry):
                self._record(delivered.entry, delivered.outcome, now)

    def _record(self, entry: PendingAlert, outcome: Attempt, now: float) -> None:
        pending = _pending_record(entry)
        if isinstance(outcome, Retry):  # recorded, so that a restart keeps the delay
            retry_at = now + outcome.delay_seconds
            self._outbox.retry(entry, retry_at)
            record = pending.retried(entry.attempts + 1, outcome.error, retry_at)
            self._unwritten.append(_Outcome(entry.partition, record))
            return
        self._outbox.remove(entry.id)
        if isinstance(outcome, Sent):
            record = pending.outcome("sent", now, entry.attempts + 1, outcome.detail)
            self._unwritten.append(_Outcome(entry.partition, record))
        elif isinstance(outcome, GiveUp):
            record = pending.outcome("dead", now, entry.attempts + 1, outcome.error)
            headers = {"stage": STAGE, "error": outcome.error, "receiver": entry.receiver,
                       "id": entry.id, "partition": str(entry.partition),
                       "attempts": str(record.attempts)}
            letter = DeadLetter(entry.id.encode("utf-8"), entry.payload, headers)
            self._unwritten.append(_Outcome(entry.partition, record, letter))

    # -- 5. commit, gauges ---------------------------------------------------------------------

    def _commit(self) -> None:
        changed = self._positions_to_commit()
        if changed:
            self._log.commit(changed)
            self._committed.update(changed)

    def _positions_to_commit(self) -> dict[int, int]:
        """Each owned partition's position up to its first record still held, where it moved
        since the last commit."""
        return {p: o for p, o in self._tracker.positions().items()
                if p in self._owned and self._committed.get(p) != o}

    def _update_gauges(self, now: float) -> None:
        self._metrics.alert_outbox_size.set(self._outbox.size())
        self._metrics.alert_oldest_pending_age.set(self._outbox.oldest_pending_age(now))

    def _poll_timeout(self) -> float:
        if self._pool.in_flight() or any(self._inbox.values()):
            return 0.0  # the step waits for its deliveries after intake (_settle)
        if self._dead or self._unlogged or self._unwritten or self._unread:
            return min(RETRY_POLL_SECONDS, self._max_poll_seconds)
        wakeup = self._next_wakeup()
        if wakeup is None:
            return self._max_poll_seconds
        return max(0.0, min(self._max_poll_seconds, wakeup - self._clock()))

    def _next_wakeup(self) -> float | None:
        times = [t for t in (self._grouper.next_wakeup(), self._outbox.next_attempt_at())
                 if t is not None]
        return min(times, default=None)

    def _nothing_left(self) -> bool:
        """Caught up, for a member that owns partitions (one that owns none yet has not read
        anything it could be caught up with)."""
        unfinished = (self._dead or self._unlogged or self._unwritten or self._unread
                      or any(self._inbox.values()))
        return (bool(self._owned) and not unfinished and self._grouper.pending_count() == 0
                and self._outbox.size() == 0 and self._tracker.held_count() == 0)

    # -- read from other threads ----------------------------------------------------------------

    def _publish(self, step: int, idle: bool) -> None:
        pending = self._grouper.pending_count() + self._outbox.size() + len(self._unlogged)
        self._view.left(step, idle, pending, self._next_wakeup())

    def idle(self) -> bool:
        """Nothing grouped, queued, unwritten or held, and no match left to read, as found by
        a step that began after the caller began to wait (see :meth:`StepView.idle`):
        ``monitor run --once`` asks it once the matches are in."""
        return self._view.idle()

    def pending(self) -> int:
        """Alerts not delivered yet: matches waiting in a group, notifications queued."""
        return self._view.pending()

    def next_wakeup(self) -> float | None:
        """When grouping or a retry next needs the stage; None when nothing waits."""
        return self._view.next_wakeup()

    # -- the rest of the stage contract ---------------------------------------------------------

    def reload_routes(self, config: AlertStageConfig) -> None:
        self._core.reload(config)

    def failure_level(self, error: BaseException) -> int:
        return self._log.failure_level(error)

    def is_ready(self) -> bool:
        """The transport works and the stage owns partitions with their alert records read."""
        return self._log.is_ready() and bool(self._owned)

    def close(self) -> None:
        """Wait for the deliveries in flight and record their outcomes, then release the
        transport (Kafka: leave the group) and the channels."""
        try:
            self._pool.close()
            if not self._failed:
                self._finish()
        finally:
            try:
                self._log.close()
            finally:
                self._core.close()

    def _finish(self) -> None:
        """Record what the last deliveries came to; a transport that fails now leaves them
        in doubt, to be sent again with the same id at the next start."""
        try:
            self._collect()
            self._write()
            self._commit()  # what that write released
        except BusError as exc:
            log.warning("alert: stopping; %d outcome(s) not recorded (%s): sent again with "
                        "the same id at the next start", len(self._unwritten), exc)


def _pending_record(part: PendingAlert) -> AlertRecord:
    return AlertRecord("pending", part.id, part.receiver, part.claim_ids, part.match_ids,
                       part.created_at, 0, "", part.payload)


def _dead_pair(record: Record) -> Pair:
    """What an unreadable record holds in the commit tracker until its dead letter is
    written."""
    return (f"dead-letter {record.place}", STAGE)


def load_stage_config(alerts_path: Path, environ: Mapping[str, str],
                      public_url: str | None = None) -> AlertStageConfig:
    """Read routes.yaml and resolve every receiver's URLs now: a missing secret is a
    ConfigError naming the receiver and the variable, at start rather than at first alert.
    ``public_url`` (MONITOR_HTTP__PUBLIC_URL) makes every alert link to its claim's page."""
    alerts = load_alerts(alerts_path)
    urls = {receiver.name: resolve_urls(receiver, environ) for receiver in alerts.receivers}
    return AlertStageConfig(alerts, urls, alerts_path.parent / "templates", public_url)

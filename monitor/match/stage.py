"""The match stage: items in, matches out, exactly once, in both modes.

One step reads a batch from the item log, embeds the batch's new texts in one call to the
model (:meth:`MatchProcessor.prepare`; a text embedded before comes from the vector cache, so
a batch redelivered after a crash is not embedded again), matches every item against the
registry's current claims and hands the matches, each item's features
(:mod:`monitor.match.features`, kept for backtests), the dead letters (items that cannot be
decoded) and the new read position to the transport in one atomic step
(:meth:`monitor.bus.log.StageLog.transact`: one SQLite transaction in embedded mode, one Kafka
transaction in Kafka mode). A crash anywhere repeats nothing and loses nothing: the next owner
of the batch starts from the last committed position.

A match whose id is already on the match log is not written again
(:mod:`monitor.match.committed`): an item version the item log holds twice is matched twice
but recorded once. The committed ids are read back whenever the stage gets partitions; the
records of a step whose read-back failed are held and handled in the next step.

A step takes as many records as fit in about ``STEP_SECONDS`` of matching (:class:`StepSize`,
from what the last steps spent on a record and on a commit), not the transport's whole
batch: with sentence vectors an item costs tens of milliseconds, and in a burst of 200 items
the first alert would otherwise wait for all 200 to be matched and committed. But never fewer
than ``LEAST_STEP_RECORDS`` when that many wait: the new items of one poll are matched and
committed together (split, the last of them waited for another model call and commit); for
the same reason a step polls once more before it commits and matches what came meanwhile
(through Kafka, a poll's items reach the stage's fetches a few at a time). Steps grow while a
backlog lasts, so the model still gets many texts per call; without vectors steps
are large anyway, so the cost of a commit is spread over many items.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime

from monitor.bus.log import (
    DeadLetter,
    Output,
    Polled,
    Record,
    StageLog,
    dead_letter,
    report_set_aside,
)
from monitor.errors import InvalidInputError
from monitor.match.committed import CommittedMatches
from monitor.match.features import (
    ItemFeatures,
    encode_features,
    feature_id,
    item_features,
    matched_vectors,
)
from monitor.match.index import ClaimIndex
from monitor.match.matcher import match_features
from monitor.match.registry import ClaimRegistry
from monitor.match.reprints import ReprintTracker
from monitor.match.semantic import BatchCosines, Cosines
from monitor.metrics import Metrics
from monitor.model import Item, Match, decode_item, encode_match

log = logging.getLogger(__name__)

STAGE = "match"
POLL_SECONDS = 1.0  # how long an idle step waits for items before it returns
STEP_SECONDS = 0.2  # about how long a burst's first step matches before it is committed
MOST_STEP_SECONDS = 1.0  # ... and its later steps, while a backlog lasts
# At least this many records a step, when they are there: what one poll of a busy feed brings.
# On a slow or shared machine 0.2 s held only 6-8 headlines, so a poll's ten were two steps and
# the last ones waited for a second model call and commit (a Kafka transaction, 20-70 ms): that
# set the end-to-end p95 (bench/README.md, "End to end"). A burst's first step is that long.
LEAST_STEP_RECORDS = 16
MAX_STEP_RECORDS = 1000  # the transport's own batch size bounds each poll of a step too


class StepSize:
    """How many records the next step takes.

    About ``target_seconds`` of matching at the recent cost per record, and at least
    ``COMMIT_SHARE`` times what a commit costs (a Kafka transaction takes several round trips
    to the broker). While steps come back full (a backlog), the target doubles up to
    ``most_seconds``: the first items of a burst are committed quickly, the rest in larger
    steps that embed many texts in one call (the model gains ~30% from 1 to 20 texts).
    Moving averages, so one slow item does not shrink every step. Never fewer than ``least``.
    """

    COMMIT_SHARE = 3.0

    def __init__(self, target_seconds: float = STEP_SECONDS,
                 most_seconds: float = MOST_STEP_SECONDS, least: int = LEAST_STEP_RECORDS,
                 most: int = MAX_STEP_RECORDS) -> None:
        self._base, self._most_seconds, self._most = target_seconds, most_seconds, most
        self._least = min(least, most)
        self._target = target_seconds
        self._per_record: float | None = None
        self._commit = 0.0
        self.records = self._least  # before any step was timed

    def took(self, records: int, matching_seconds: float, commit_seconds: float = 0.0) -> None:
        if records > 0:
            full = records >= self.records
            self._target = min(self._most_seconds, 2 * self._target) if full else self._base
            cost = max(matching_seconds, 1e-6) / records
            self._per_record = _average(self._per_record, cost)
            self._commit = _average(self._commit, commit_seconds)
        else:
            self._target = self._base  # idle: the next item is the first of a burst
        if self._per_record is not None:
            work = max(self._target, self.COMMIT_SHARE * self._commit)
            self.records = max(self._least, min(self._most, int(work / self._per_record)))


def _average(average: float | None, sample: float) -> float:
    return sample if average is None else 0.7 * average + 0.3 * sample


def utc_today() -> date:
    return datetime.now(UTC).date()


class MatchProcessor:
    """Matches items against the registry's current claims, refreshing them between batches."""

    def __init__(self, registry: ClaimRegistry, metrics: Metrics,
                 today: Callable[[], date] = utc_today,
                 clock: Callable[[], float] = time.time) -> None:
        self._registry, self._metrics, self._today = registry, metrics, today
        self._clock = clock
        self._reprints = ReprintTracker()
        # The last prepared batch: its index, item positions and cosines with the claims.
        self._batch: tuple[ClaimIndex, dict[str, int], BatchCosines] | None = None
        metrics.claims_tracked.set(registry.tracked())

    def refresh_claims(self) -> None:
        # The registry may be shared with the alert stage, which can reload it first.
        self._registry.refresh()
        self._metrics.claims_tracked.set(self._registry.tracked())

    def process(self, item: Item) -> list[Match]:
        return self.match(item)[1]

    def prepare(self, items: Sequence[Item]) -> None:
        """Embed the items' texts in one call (the model's threads share the batch), so
        that :meth:`match` finds each vector in the embedder's cache, and compare them with
        the claims together: the claim matrix is read once for many items, not once each."""
        index = self._registry.index
        self._batch = None
        if index.vectors is not None and index.embedder is not None and items:
            with self._metrics.embed_duration.time():
                vectors = matched_vectors(items, index.embedder)
            self._batch = (index, {feature_id(i.item_id, i.content_hash): n
                                   for n, i in enumerate(items)},
                           BatchCosines(index.vectors, vectors))

    def _prepared_cosines(self, item: Item) -> Cosines | None:
        """The item's cosines from :meth:`prepare`'s batch, if it was in it (against the
        claims matched now)."""
        if self._batch is None or self._batch[0] is not self._registry.index:
            return None
        index, positions, cosines = self._batch
        position = positions.get(feature_id(item.item_id, item.content_hash))
        return None if position is None else cosines.row(position)

    def match(self, item: Item) -> tuple[ItemFeatures, list[Match]]:
        """The item's features (what the stage keeps of it) and its matches. The duration
        metric times this: after :meth:`prepare`, matching without the model's time."""
        index = self._registry.index
        with self._metrics.match_duration.time():
            features = item_features(item, index.embedder if index.vectors is not None else None)
            matches = match_features(item, features, index, today=self._today(),
                                     cosines=self._prepared_cosines(item))
        now = self._clock()
        matches = [self._reprints.mark(match, now) for match in matches]
        self._metrics.match_items.labels("matched" if matches else "unmatched").inc()
        for match in matches:
            self._metrics.matches.labels(match.relation).inc()
            self._metrics.claim_matches.labels(match.claim_id, match.relation).inc()
            reprint = match.evidence.reprint_of
            log.info("match %s %s (%.0f): %s [%s]%s", match.claim_id, match.relation,
                     match.score, item.title, match.evidence.relation_cue,
                     f" reprint of {reprint}" if reprint else "",
                     extra={"claim_id": match.claim_id, "item_id": item.item_id})
        return features, matches


class MatchStage:
    """``step()`` handles one batch; :func:`monitor.runner.run_stage` loops it."""

    name = STAGE

    def __init__(self, transport: StageLog, processor: MatchProcessor, metrics: Metrics
                 ) -> None:
        self._log, self._processor, self._metrics = transport, processor, metrics
        self._size = StepSize()
        self._committed = CommittedMatches()
        self._read_back_due = False
        self._held: list[Record] = []  # polled, not matched yet (a read-back failed)

    def step(self) -> int:
        """Match the next batch; returns how many records it consumed (0: none came)."""
        self._processor.refresh_claims()
        records = self._next_records()
        if records:
            self._log.begin(records)  # Kafka: the transaction's round trips go on meanwhile
            started = time.perf_counter()
            outputs: list[Output] = []
            dead: list[DeadLetter] = []
            ids: set[str] = set()
            self._match(records, outputs, dead, ids)
            late = self._came_meanwhile(records)
            if late is None:  # the group changed meanwhile: matched again once it is applied
                return 0
            if late:
                self._match(late, outputs, dead, ids)
            matched = time.perf_counter()
            self._log.transact(records, outputs, dead)
            self._committed.add(ids)
            self._size.took(len(records), matched - started, time.perf_counter() - matched)
            report_set_aside(self._metrics, dead)
        else:
            self._size.took(0, 0.0)
        self._metrics.consumer_lag.labels(STAGE).set(self._log.lag())
        return len(records)

    def _came_meanwhile(self, records: list[Record]) -> list[Record] | None:
        """One more poll, for records that came while the step matched (up to its size),
        added to ``records``: mostly the rest of a write a poll caught half-way (a poll's
        items span partitions, which the broker appends one by one); in a step of their own
        they waited for this one's commit. None when the group's partitions changed: the
        step's records are then held and the change applied, as a poll's (:meth:`_receive`):
        those of a revoked partition are dropped (its new owner matches them), and nothing of
        the step is committed, even when nothing is left held."""
        room = self._size.records - len(records)
        if room <= 0:
            return []
        polled = self._log.poll(0.0, max_records=room)
        if polled.assigned or polled.revoked:
            self._held = list(records)
            self._receive(polled)
            return None
        records.extend(polled.records)
        return polled.records

    def _receive(self, polled: Polled) -> None:
        self._held = [r for r in self._held if r.partition not in polled.revoked]
        self._held.extend(polled.records)
        self._read_back_due = self._read_back_due or bool(polled.assigned)

    def _next_records(self) -> list[Record]:
        """The held records and the next poll's, once the committed match ids are known."""
        self._receive(self._log.poll(0.0 if self._held else POLL_SECONDS,
                                     max_records=self._size.records))
        if self._read_back_due:  # a BusError leaves the records held for the next step
            records = self._log.read_back("matches", None)
            learnt = self._committed.learn(records)
            self._read_back_due = False
            log.info("match: %d committed match(es) read back from the match log; %d match "
                     "id(s) known, none is written again", learnt, len(self._committed))
        records, self._held = self._held, []
        return records

    def _match(self, records: Sequence[Record], outputs: list[Output], dead: list[DeadLetter],
               ids: set[str]) -> None:
        """Adds the outputs (features, matches not committed or in ``ids`` before), dead
        letters and match ids of ``records``."""
        items: list[Item] = []
        for record in records:
            try:
                items.append(decode_item(record.value))
            except InvalidInputError as exc:
                dead.append(dead_letter(STAGE, record, str(exc), self._log.source))
        self._processor.prepare(items)
        repeated = 0
        for item in items:
            features, matches = self._processor.match(item)
            outputs.append(_features_output(features))
            for match in matches:
                if match.match_id in self._committed or match.match_id in ids:
                    repeated += 1
                    continue
                ids.add(match.match_id)
                outputs.append(_output(match))
        if repeated:
            log.info("match: %d match(es) already on the match log not written again (their "
                     "items reached the stage twice)", repeated)

    def caught_up(self) -> bool:
        """Every item the stage can see is matched and committed (read from any thread)."""
        return self._log.lag() == 0

    def is_ready(self) -> bool:
        return self._log.is_ready()

    def failure_level(self, error: BaseException) -> int:
        return self._log.failure_level(error)

    def close(self) -> None:
        self._log.close()


def _output(match: Match) -> Output:
    return Output("matches", match.claim_id.encode(), encode_match(match), match.match_id)


def _features_output(features: ItemFeatures) -> Output:
    # Keyed by item: the compacted topic keeps an item's latest version.
    return Output("features", features.item_id.encode(), encode_features(features),
                  features.feature_id)

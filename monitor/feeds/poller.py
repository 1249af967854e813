"""Poll one feed once: fetch -> parse -> skip what was seen -> commit (publish, mark seen, state).

A poll ends in one commit (:meth:`monitor.feeds.state.PollStateStore.commit_poll`): its new
items, their seen-marks and the feed's new state (validators, body hash, backoff). In embedded
mode that is one SQLite transaction, for shared pollers one Kafka transaction: both or
neither. With a state file and Kafka, an item is marked seen only after the broker
acknowledged it, and the validators advance only when every new item was acknowledged. Either
way a failed publish (PublishError) marks nothing seen it did not deliver, and the next poll
(here or at the feed's next owner) fetches the body again and publishes what is missing.

A feed's first successful poll (no stored state for it: a first run, or a feed just added to
feeds.yaml) publishes what the feed already lists as usual, marked ``backlog``: those items are
matched and linked in the claim record but not alerted as news. Until a poll of the feed has
succeeded, every poll is its first (a feed that fails at first, or whose first publish fails
half-way, still delivers its backlog as backlog). A later version of a backlog item (the wire
re-issues it with a new title) comes from a later poll and is news like any other update.

Parsing is CPU work under the GIL: it goes to a ``BodyParser`` (``parse_pool.py``), in this
process with at most ``parse_threads`` polls parsing at once (the cores by default), or in a
pool of worker processes; the polls waiting on the network keep running meanwhile. A pool's
workers also encode a feed's first-poll items as the bus carries them (``encode_item``), which
the publishers take instead of encoding them here.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from monitor.bus import ItemPublisher
from monitor.clock import SYSTEM_CLOCK, Clock
from monitor.config.feeds import FeedConfig
from monitor.errors import FeedHandedOver, FetchError, ParseError, PublishError
from monitor.feeds.fetch import FetchCancelled, Fetcher, Validators
from monitor.feeds.parse import FeedSource, TextLimits
from monitor.feeds.parse_pool import BodyParser, InlineParser
from monitor.feeds.parse_worker import EncodedFeed
from monitor.feeds.schedule import SchedulePolicy, next_delay_seconds
from monitor.feeds.state import PollStateStore
from monitor.metrics import Metrics, PollOutcome
from monitor.model import FeedState, Item

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PollResult:
    feed_id: str
    outcome: PollOutcome
    new_items: int
    next_check_at: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _BodyOutcome:
    outcome: PollOutcome
    new_items: int
    validators: Validators
    body_hash: str | None
    max_age_seconds: float | None
    items: tuple[Item, ...] = ()  # new: published, marked seen and stored with the state
    payloads: tuple[bytes, ...] = ()  # their encode_item bytes if the parser made them


class FeedPoller:
    """Polls feeds one at a time per call; safe to call from several threads for different feeds."""

    def __init__(
        self, fetcher: Fetcher, store: PollStateStore, publisher: ItemPublisher, metrics: Metrics,
        *, policy: SchedulePolicy, text_limits: TextLimits, bus_name: str,
        clock: Clock = SYSTEM_CLOCK, rng: random.Random | None = None,
        publish_failure_level: Callable[[BaseException], int] | None = None,
        parse_threads: int | None = None, parser: BodyParser | None = None,
    ) -> None:
        self._fetcher, self._store, self._publisher = fetcher, store, publisher
        self._metrics, self._policy, self._text_limits = metrics, policy, text_limits
        self._bus_name, self._clock = bus_name, clock
        self._rng = rng or random.Random()
        self._redirects_reported: set[tuple[str, str]] = set()
        self._publish_failure_level = publish_failure_level
        self._parser = parser or InlineParser(parse_threads)  # parse_threads: in-process only

    def poll(self, feed: FeedConfig) -> PollResult:
        # In flight from here to the end, whatever happens: a poll that hangs shows in metrics.
        self._metrics.feeds.poll_started(feed.id, feed.interval_seconds, self._clock.now())
        try:
            with self._metrics.poll_duration.time():
                state = self._store.load(feed.id)
                now = self._clock.now()
                try:
                    body = self._poll_body(feed, state, now)
                    return self._finish_success(feed, state, now, body)
                except FetchCancelled as exc:  # our shutdown, not the feed's failure:
                    log.info("poll %s: %s", feed.id, exc, extra={"feed_id": feed.id})
                    return PollResult(feed.id, PollOutcome.FETCH_ERROR, 0, now, str(exc))
                except (FetchError, ParseError, PublishError) as exc:
                    retry_after = exc.retry_after_seconds if isinstance(exc, FetchError) else None
                    return self._finish_failure(feed, state, now, exc, retry_after)
        finally:
            self._metrics.feeds.poll_ended(feed.id)

    def _poll_body(self, feed: FeedConfig, state: FeedState, now: float) -> _BodyOutcome:
        old = Validators(state.etag, state.last_modified)
        fetched = self._fetcher.fetch(feed.url, old, datetime.fromtimestamp(now, UTC))
        self._report_permanent_redirect(feed, fetched.permanent_redirect)
        if fetched.not_modified:
            return _BodyOutcome(PollOutcome.NOT_MODIFIED, 0, fetched.validators, state.body_hash,
                                fetched.max_age_seconds)
        body_hash = hashlib.sha256(fetched.body).hexdigest()
        if body_hash == state.body_hash:
            return _BodyOutcome(PollOutcome.UNCHANGED, 0, fetched.validators, body_hash,
                                fetched.max_age_seconds)
        source = FeedSource(feed.id, feed.source, feed.language)
        # The feed's first poll (no success yet): what it lists is backlog, and all new as a
        # rule, so the parser encodes it too; a later body has a new item or two among those
        # seen, which this process encodes alone.
        backlog = state.last_success_at is None
        parsed = self._parser.parse(fetched.body, fetched.content_type, source,
                                    datetime.fromtimestamp(now, UTC), self._text_limits,
                                    backlog=backlog, encode=backlog)
        if parsed.warning:
            log.debug("parse %s: feed is malformed but readable: %s", feed.id, parsed.warning,
                      extra={"feed_id": feed.id})
        self._metrics.feed_parses.labels(parsed.parser).inc()
        self._metrics.entries_without_id.labels(feed.id).inc(parsed.entries_without_id)
        new = self._new_items(feed, parsed.items, now, parsed.bytes_replaced > 0)
        payloads = (tuple(parsed.payloads[index] for index in new)
                    if isinstance(parsed, EncodedFeed) else ())
        outcome = PollOutcome.NEW_ITEMS if new else PollOutcome.NO_NEW_ITEMS
        return _BodyOutcome(outcome, len(new), fetched.validators, body_hash,
                            fetched.max_age_seconds, tuple(parsed.items[i] for i in new),
                            payloads)

    def _new_items(self, feed: FeedConfig, items: Sequence[Item], now: float,
                   bytes_replaced: bool) -> list[int]:
        """The indexes in ``items`` of the new ones; the others' seen-marks are touched."""
        seen = self._store.seen_hashes([item.item_id for item in items])
        new = [index for index, item in enumerate(items)
               if seen.get(item.item_id) != item.content_hash
               and not (bytes_replaced and item.item_id in seen and _damaged(item))]
        new_ids = {items[index].item_id for index in new}
        known = [item.item_id for item in items if item.item_id not in new_ids]
        self._store.touch_seen(known, now)
        self._metrics.duplicates_skipped.labels(feed.id).inc(len(known))
        return new

    def _commit(self, feed: FeedConfig, new_state: FeedState, body: _BodyOutcome,
                now: float) -> None:
        """Publish the new items, mark them seen, store the state: one transaction where the
        store and the bus allow it (PublishError when not every item was acknowledged)."""
        new = body.items
        report = self._store.commit_poll(self._publisher, new_state, new, now, body.payloads)
        self._metrics.items_published.labels(feed.id).inc(len(report.acknowledged))
        backlog = sum(item.backlog for item in report.acknowledged)
        if backlog:
            log.info("poll %s: first poll of the feed: %d item(s) published as backlog "
                     "(matched and kept in the record, not alerted)", feed.id, backlog,
                     extra={"feed_id": feed.id})
        if report.failure:
            self._metrics.publish_errors.labels(self._bus_name).inc()
            missing = len(new) - len(report.acknowledged)
            error = FeedHandedOver if report.handed_over else PublishError
            raise error(f"{report.failure} ({missing} of {len(new)} items kept for retry)")

    def _finish_success(self, feed: FeedConfig, state: FeedState, now: float,
                        body: _BodyOutcome) -> PollResult:
        delay = next_delay_seconds(feed.interval_seconds, 0, self._policy,
                                   max_age_seconds=body.max_age_seconds, rng=self._rng)
        new_state = replace(
            state, etag=body.validators.etag, last_modified=body.validators.last_modified,
            body_hash=body.body_hash, consecutive_failures=0, last_success_at=now,
            last_error=None, next_check_at=now + delay,
        )
        self._commit(feed, new_state, body, now)
        if state.consecutive_failures:
            log.info("poll %s: recovered after %d failed polls", feed.id,
                     state.consecutive_failures, extra={"feed_id": feed.id})
        self._record(body.outcome, new_state)
        return PollResult(feed.id, body.outcome, body.new_items, now + delay)

    def _finish_failure(self, feed: FeedConfig, state: FeedState, now: float, exc: Exception,
                        retry_after: float | None) -> PollResult:
        outcome = _classify(exc)
        failures = state.consecutive_failures + 1
        delay = next_delay_seconds(feed.interval_seconds, failures, self._policy,
                                   retry_after_seconds=retry_after, rng=self._rng)
        message = f"{outcome.value.split('_')[0]} {feed.id}: {exc}"
        # Logged once when a feed goes bad (or its error changes), not on every retry; a bus
        # outage already reported by the broker watch not once for every feed.
        level = logging.WARNING if str(exc) != state.last_error else logging.DEBUG
        if isinstance(exc, PublishError) and self._publish_failure_level is not None:
            level = min(level, self._publish_failure_level(exc))
        if isinstance(exc, FeedHandedOver):  # said once for its partition (bus.kafka_poll)
            level = logging.DEBUG
        log.log(level, "%s; next try in %.0f s (failure %d)", message, delay, failures,
                extra={"feed_id": feed.id})
        new_state = replace(state, consecutive_failures=failures, last_error=str(exc),
                            next_check_at=now + delay)
        self._store.save(new_state)
        self._record(outcome, new_state)
        return PollResult(feed.id, outcome, 0, now + delay, str(exc))

    def _record(self, outcome: PollOutcome, state: FeedState) -> None:
        self._metrics.feeds.record_poll(outcome, state)

    def _report_permanent_redirect(self, feed: FeedConfig, target: str | None) -> None:
        if target and (feed.id, target) not in self._redirects_reported:
            self._redirects_reported.add((feed.id, target))
            log.warning("fetch %s: %s redirects permanently to %s; update feeds.yaml",
                        feed.id, feed.url, target, extra={"feed_id": feed.id})


def _damaged(item: Item) -> bool:
    """An invalid byte became U+FFFD in this version: an encoding accident, not an update."""
    return "\ufffd" in item.title or "\ufffd" in item.summary


def _classify(exc: Exception) -> PollOutcome:
    if isinstance(exc, FetchError):
        return PollOutcome.FETCH_ERROR
    if isinstance(exc, ParseError):
        return PollOutcome.PARSE_ERROR
    return PollOutcome.PUBLISH_ERROR

"""Poll state shared by a group of pollers: a compacted topic keyed by feed_id.

Each record is one feed's whole state: validators, body hash, backoff, and the items it has
listed (item id -> content hash, last seen). A poll's new items and its feed's record (with
their seen-marks) are written in ONE Kafka transaction (:mod:`monitor.bus.kafka_poll`, one
transactional id per control partition), so a read_committed reader sees both or neither. The
state is read read_committed. Whoever takes a feed over first fences the last owner's producer
(which aborts its open transaction), then reads the feed's latest committed record and
continues from there: what was committed is never published again, what was aborted is
published again by the next poll, the backoff goes on.

Every poller reads every feed's record (not only its own): one story carried by two feeds of
the same outlet is one item, and the two feeds may be polled by different processes.

Window: two feeds of one outlet polled at the same moment by two pollers can both publish a
story they both carry (the match stage still writes its matches once).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict

from kafka.errors import KafkaError

from monitor.bus import ItemPublisher, PublishReport
from monitor.bus.connectivity import BrokerWatch
from monitor.bus.hanging import abort_hanging
from monitor.bus.kafka import (
    TopicRecord,
    read_partitions,
    topic_reader,
    transaction_timeout_seconds,
    written_ends,
)
from monitor.bus.kafka_poll import (
    PollTransactions,
    control_partition,
)
from monitor.config.settings import KafkaSettings
from monitor.errors import BusError, MonitorError
from monitor.model import FeedState, Item, encoded_items

log = logging.getLogger(__name__)

SCHEMA = 1
Seen = dict[str, tuple[str, float]]  # item_id -> (content hash, last seen)


def encode_feed_record(state: FeedState, seen: Seen) -> bytes:
    fields = {k: v for k, v in asdict(state).items() if k != "feed_id"}
    return json.dumps({"schema": SCHEMA, "state": fields,
                       "seen": {item: list(entry) for item, entry in seen.items()}},
                      separators=(",", ":")).encode()


def decode_feed_record(feed_id: str, data: bytes) -> tuple[FeedState, Seen]:
    raw = json.loads(data)
    if raw.get("schema") != SCHEMA:
        raise ValueError(f"unsupported schema {raw.get('schema')!r}")
    state = FeedState(feed_id, **raw["state"])
    seen = {item: (str(entry[0]), float(entry[1])) for item, entry in raw["seen"].items()}
    return state, seen


class KafkaPollState:
    """PollStateStore on the compacted ``kafka.feed_state_topic``, cached in memory; also the
    shared poller's ItemPublisher (its items go in the state's transactions).

    Memory holds what was committed (plus touches and failure counts not written yet): a
    record that cannot be written is kept and goes with the feed's next one; during a broker
    outage (said once by ``watch``) that is logged at DEBUG only.
    """

    def __init__(self, settings: KafkaSettings, watch: BrokerWatch | None = None) -> None:
        self._settings = settings
        self._watch = watch or BrokerWatch(settings)
        self._lock = threading.Lock()
        self._states: dict[str, FeedState] = {}
        self._seen: dict[str, Seen] = {}
        # Bumped by every refresh: a poll that read the state before one (its feed may have
        # changed hands meanwhile) must not commit what it computed from the old state.
        self._epoch = 0
        self._loaded: dict[str, int] = {}  # feed_id -> the epoch its poll loaded in
        self.transactions = PollTransactions(settings, self._watch)
        # A transaction left open (its poller frozen) is aborted by the broker at its
        # timeout, found at the broker's next check (every 10 s by default).
        self._read_timeout_seconds = transaction_timeout_seconds(settings) + 30
        self._hanging_checked = float("-inf")
        self.refresh()

    def own(self, partitions: Iterable[int], generation: int) -> None:
        """Take the producers of these control partitions (fencing their last owners); call
        before :meth:`refresh` reads the state of feeds taken over. KafkaError when one
        cannot start."""
        self.transactions.own(partitions, generation)

    def refresh(self) -> None:
        """Read every feed's latest committed record. No poll commits meanwhile: what this
        process committed is on the topic, so the topic is as new as memory or newer (another
        poller polled the feed since).

        Read up to the high watermark, not to the last stable offset where a read_committed
        reader stops by itself: a transaction another poller has open for other feeds (a
        poll in flight, every second) holds that back, and the record a feed's last owner
        committed after that transaction began would be missed, its items published again.
        The read waits for such transactions to end (the broker aborts one left open after
        its timeout)."""
        topic = self._settings.feed_state_topic
        with self.transactions.paused():
            ends = written_ends(self._settings, topic)
            reader = topic_reader(self._settings)  # read_committed: no aborted poll's state
            try:
                records = read_partitions(reader, topic, ends=ends,
                                          timeout_seconds=self._read_timeout_seconds)
            except BusError:  # a transaction that never ends? Then the next read gets past it
                self.abort_hanging()
                raise
            finally:
                reader.close()
            self._apply(records)
            self._epoch += 1
            self.transactions.state_read()

    def abort_hanging(self, every_seconds: float = 0.0) -> int:
        """Abort this poll group's transactions left hanging on the state and item topics
        (:mod:`monitor.bus.hanging`), at most once per ``every_seconds``; how many. A broker
        that cannot be asked is asked again next time."""
        if time.monotonic() - self._hanging_checked < every_seconds:
            return 0
        self._hanging_checked = time.monotonic()
        settings = self._settings
        try:
            return abort_hanging(settings, [settings.feed_state_topic, settings.items_topic],
                                 f"{settings.poll_group}-",
                                 older_than_seconds=transaction_timeout_seconds(settings) + 10)
        except KafkaError as exc:
            log.debug("poll state: hanging transactions not looked for: %r", exc)
            return 0

    def _apply(self, records: Sequence[TopicRecord]) -> None:
        latest: dict[str, bytes] = {}
        for record in records:  # in offset order per partition; a feed lives in one
            if record.key is not None:
                latest[record.key.decode()] = record.value
        with self._lock:
            for feed_id, value in latest.items():
                try:
                    self._states[feed_id], self._seen[feed_id] = decode_feed_record(feed_id,
                                                                                    value)
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("poll state: unreadable record for feed %s on %s (%s); the "
                                "feed starts afresh", feed_id, self._settings.feed_state_topic,
                                exc)

    def load(self, feed_id: str) -> FeedState:
        """The feed's state, as a poll starts: its commit is refused after a refresh."""
        with self._lock:
            self._loaded[feed_id] = self._epoch
            return self._states.get(feed_id) or FeedState(feed_id)

    def load_all(self) -> list[FeedState]:
        with self._lock:
            return list(self._states.values())

    def save(self, state: FeedState) -> None:
        with self._lock:
            self._states[state.feed_id] = state
            value = encode_feed_record(state, dict(self._seen.get(state.feed_id, {})))
        failure = self._commit(state.feed_id, (), value)
        if failure:  # kept in memory; written with the feed's next record
            level = (self.transactions.failure_level(None) if self._owns(state.feed_id)
                     and not self._restarting(state.feed_id)
                     else logging.DEBUG)  # handed over (its new owner writes it) or restarting
            log.log(level, "poll state: feed %s not written to %s: %s", state.feed_id,
                    self._settings.feed_state_topic, failure)

    def commit_poll(self, publisher: ItemPublisher, state: FeedState, items: Sequence[Item],
                    now: float, payloads: Sequence[bytes] = ()) -> PublishReport:
        """``items``, their seen-marks and ``state`` in one transaction: all or nothing.
        ``publisher`` must be this store (a shared poller publishes through its state)."""
        if publisher is not self:
            raise MonitorError("poll: a shared poller publishes through its KafkaPollState")
        marks = {item.item_id: (item.content_hash, now) for item in items}
        with self._lock:
            seen = {**self._seen.get(state.feed_id, {}), **marks}
        loaded = self._loaded.get(state.feed_id, self._epoch)
        failure = self._commit(state.feed_id, items, encode_feed_record(state, seen),
                               lambda: loaded == self._epoch, payloads)
        if failure:
            moved = (not self._owns(state.feed_id) or loaded != self._epoch
                     or self._restarting(state.feed_id))  # its state is read again
            return PublishReport((), failure, handed_over=moved)
        with self._lock:
            self._states[state.feed_id] = state
            self._seen.setdefault(state.feed_id, {}).update(marks)
        return PublishReport(tuple(items))

    def publish(self, items: Sequence[Item], payloads: Sequence[bytes] = ()) -> PublishReport:
        """ItemPublisher: each feed's items with their seen-marks, one transaction a feed."""
        by_feed: dict[str, list[tuple[Item, bytes]]] = {}
        for item, payload in zip(items, encoded_items(items, payloads), strict=True):
            by_feed.setdefault(item.feed_id, []).append((item, payload))
        acknowledged: list[Item] = []
        failure: str | None = None
        for feed_id, pairs in by_feed.items():
            feed_items = [item for item, _ in pairs]
            report = self.commit_poll(self, self.load(feed_id), feed_items, _now(feed_items),
                                      [payload for _, payload in pairs])
            acknowledged.extend(report.acknowledged)
            failure = failure or report.failure
        return PublishReport(tuple(acknowledged), failure)

    def seen_hashes(self, item_ids: Sequence[str]) -> Mapping[str, str]:
        wanted = set(item_ids)
        with self._lock:
            return {item: entry[0] for seen in self._seen.values()
                    for item, entry in seen.items() if item in wanted}

    def touch_seen(self, item_ids: Sequence[str], now: float) -> None:
        wanted = set(item_ids)
        with self._lock:  # written with the feed's next record
            for seen in self._seen.values():
                for item in wanted & seen.keys():
                    seen[item] = (seen[item][0], now)

    def prune_seen(self, older_than: float) -> int:
        pruned = 0
        with self._lock:
            for seen in self._seen.values():
                old = [item for item, (_, last) in seen.items() if last < older_than]
                for item in old:
                    del seen[item]
                pruned += len(old)
        return pruned

    def _commit(self, feed_id: str, items: Sequence[Item], value: bytes,
                still_valid: Callable[[], bool] = lambda: True,
                payloads: Sequence[bytes] = ()) -> str | None:
        return self.transactions.commit(self._partition(feed_id), items,
                                        [(feed_id.encode(), value)], still_valid, payloads)

    def _partition(self, feed_id: str) -> int:
        return control_partition(feed_id, self._settings.poll_control_partitions)

    def _owns(self, feed_id: str) -> bool:
        return self.transactions.owns(self._partition(feed_id))

    def _restarting(self, feed_id: str) -> bool:
        return self.transactions.restarting(self._partition(feed_id))

    def is_ready(self) -> bool:
        return self.transactions.is_ready()

    def close(self) -> None:
        self.transactions.close()


def _now(items: Sequence[Item]) -> float:
    return max(item.fetched_at.timestamp() for item in items)

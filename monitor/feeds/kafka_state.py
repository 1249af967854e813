"""Poll state shared by a group of pollers: a compacted topic keyed by feed_id.

Each record is one feed's whole state: validators, body hash, backoff, and the items it has
listed (item id -> content hash, last seen). A poller writes a feed's record after the items
of a poll were acknowledged and again when the state changes, waiting for acks=all, in the same
order as the SQLite store (seen-marks only after the items are on the bus). Whoever takes a
feed over reads its latest record first and continues from there: no item is published again,
none is lost, the backoff goes on.

Every poller reads every feed's record (not only its own): one story carried by two feeds of
the same outlet is one item, and the two feeds may be polled by different processes.

Windows: a poller killed between the broker acknowledging a poll's items and the seen-marks
record lets the next owner publish those items again (same item_id and content hash, so the
matcher makes the same match_id and the alerter sends nothing twice). Two feeds of one outlet
polled at the same moment by two pollers can both publish a story they both carry.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict

from kafka import KafkaProducer
from kafka.errors import KafkaError

from monitor.bus.connectivity import BrokerWatch
from monitor.bus.kafka import client_config, read_partitions, topic_reader
from monitor.config.settings import KafkaSettings
from monitor.model import FeedState, Item

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
    """PollStateStore on the compacted ``kafka.feed_state_topic``, cached in memory.

    A record that cannot be written is kept in memory and goes with the feed's next one;
    during a broker outage (said once by ``watch``) that is logged at DEBUG only.
    """

    def __init__(self, settings: KafkaSettings, watch: BrokerWatch | None = None) -> None:
        self._settings = settings
        self._watch = watch or BrokerWatch(settings)
        self._lock = threading.Lock()
        self._states: dict[str, FeedState] = {}
        self._seen: dict[str, Seen] = {}
        self._producer = KafkaProducer(**client_config(settings), acks="all",
                                       enable_idempotence=True)
        self.refresh(keep=())

    def refresh(self, keep: Iterable[str]) -> None:
        """Read every feed's latest record, except the feeds in ``keep`` (polled here right
        now: memory is newer than the topic for them)."""
        reader = topic_reader(self._settings)
        try:
            records = read_partitions(reader, self._settings.feed_state_topic)
        finally:
            reader.close()
        kept = set(keep)
        latest: dict[str, bytes] = {}
        for record in records:  # in offset order per partition; a feed lives in one
            if record.key is not None:
                latest[record.key.decode()] = record.value
        with self._lock:
            for feed_id, value in latest.items():
                if feed_id in kept:
                    continue
                try:
                    self._states[feed_id], self._seen[feed_id] = decode_feed_record(feed_id,
                                                                                    value)
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("poll state: unreadable record for feed %s on %s (%s); the "
                                "feed starts afresh", feed_id, self._settings.feed_state_topic,
                                exc)

    def load(self, feed_id: str) -> FeedState:
        with self._lock:
            return self._states.get(feed_id) or FeedState(feed_id)

    def load_all(self) -> list[FeedState]:
        with self._lock:
            return list(self._states.values())

    def save(self, state: FeedState) -> None:
        with self._lock:
            self._states[state.feed_id] = state
        self._publish(state.feed_id)

    def seen_hashes(self, item_ids: Sequence[str]) -> Mapping[str, str]:
        wanted = set(item_ids)
        with self._lock:
            return {item: entry[0] for seen in self._seen.values()
                    for item, entry in seen.items() if item in wanted}

    def mark_seen(self, items: Iterable[Item], now: float) -> None:
        feeds = set()
        with self._lock:
            for item in items:
                self._seen.setdefault(item.feed_id, {})[item.item_id] = (item.content_hash, now)
                feeds.add(item.feed_id)
        for feed_id in feeds:
            self._publish(feed_id)

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

    def _publish(self, feed_id: str) -> None:
        with self._lock:
            state = self._states.get(feed_id) or FeedState(feed_id)
            value = encode_feed_record(state, dict(self._seen.get(feed_id, {})))
        try:
            self._producer.send(self._settings.feed_state_topic, key=feed_id.encode(),
                                value=value).get(
                timeout=self._settings.delivery_timeout_seconds + 5)
        except KafkaError as exc:  # kept in memory; written with the feed's next record
            log.log(self._watch.level_for_failure(exc), "poll state: feed %s not written to "
                    "%s: %s", feed_id, self._settings.feed_state_topic, exc)

    def close(self) -> None:
        self._producer.close(timeout=5)

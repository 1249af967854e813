"""Which feeds this poller polls: membership of a Kafka consumer group, no coordinator of ours.

Every feed belongs to one partition of a small control topic (a stable hash of its id); the
pollers subscribe to that topic in one consumer group, and each polls the feeds of the
partitions the group gave it. The topic carries no messages: the group protocol is the point.
When a poller joins, leaves or dies (no heartbeat for ``kafka.session_timeout_seconds``), the
group rebalances and the feeds move; in steady state every partition, so every feed, has
exactly one owner.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable, Sequence

from kafka import KafkaConsumer
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from monitor.bus.kafka import client_config
from monitor.config.feeds import FeedConfig
from monitor.config.settings import KafkaSettings
from monitor.feeds.kafka_state import KafkaPollState
from monitor.feeds.scheduler import PollScheduler
from monitor.metrics import Metrics

log = logging.getLogger(__name__)


def control_partition(feed_id: str, partitions: int) -> int:
    """Stable across processes and restarts (Python's hash() is salted per process)."""
    return zlib.crc32(feed_id.encode()) % partitions


class FeedOwnership:
    """``run()`` keeps the group membership alive and calls ``on_change(partitions)`` with the
    control partitions this process owns whenever they change (first call: once joined)."""

    def __init__(self, settings: KafkaSettings, on_change: Callable[[frozenset[int]], None]
                 ) -> None:
        session_ms = int(settings.session_timeout_seconds * 1000)
        self._consumer = KafkaConsumer(
            **client_config(settings), group_id=settings.poll_group, enable_auto_commit=False,
            partition_assignment_strategy=[RoundRobinPartitionAssignor],
            session_timeout_ms=session_ms, heartbeat_interval_ms=min(3000, session_ms // 3))
        self._consumer.subscribe([settings.poll_control_topic])
        self._on_change = on_change
        self.owned: frozenset[int] | None = None  # None until the group has answered

    def run(self, stopping: threading.Event) -> None:
        previous: frozenset[int] | None = None
        while not stopping.is_set():
            self._consumer.poll(timeout_ms=500)
            seen = frozenset(tp.partition for tp in self._consumer.assignment())
            # Act on an assignment only once it held for two polls: during a rebalance it is
            # empty for a moment, and acting on that would drop every feed and take them back.
            if seen == previous and seen != self.owned:
                log.info("poll: this poller now owns control partitions %s",
                         sorted(seen) or "none")
                self.owned = seen
                self._on_change(seen)
            previous = seen

    def is_ready(self) -> bool:
        return self.owned is not None

    def close(self) -> None:
        self._consumer.close()  # leaves the group: the others take the feeds at once


class SharedFeeds:
    """This poller's share of the enabled feeds, kept in step with the group.

    On every change (the group's answer, or a reloaded feeds.yaml) the feeds whose control
    partition this process owns are scheduled and the others dropped; the state of feeds
    taken over is read from the state topic first, so polling continues where the last owner
    stopped (a poller that leaves cleanly stops polling before it leaves the group).
    """

    def __init__(self, settings: KafkaSettings, state: KafkaPollState,
                 scheduler: PollScheduler, metrics: Metrics) -> None:
        self._partitions = settings.poll_control_partitions
        self._state, self._scheduler, self._metrics = state, scheduler, metrics
        self._lock = threading.Lock()
        self._enabled: list[FeedConfig] = []
        self._polling: set[str] = set()
        self.ownership = FeedOwnership(settings, lambda _owned: self._apply())

    def set_feeds(self, enabled: Sequence[FeedConfig]) -> None:
        with self._lock:
            self._enabled = list(enabled)
        self._apply()

    def _apply(self) -> None:
        owned = self.ownership.owned
        if owned is None:
            return
        with self._lock:
            mine = [feed for feed in self._enabled
                    if control_partition(feed.id, self._partitions) in owned]
            ids = {feed.id for feed in mine}
            self._state.refresh(keep=self._polling & ids)
            states = {state.feed_id: state for state in self._state.load_all()}
            added, removed, changed = self._scheduler.update(mine, states)
            for feed in mine:
                if feed.id in added:
                    self._metrics.init_feed(feed.id, feed.interval_seconds, states.get(feed.id))
            for feed_id in removed:
                self._metrics.remove_feed(feed_id)
            self._polling = ids
        log.info("poll: polling %d of %d feeds (taken over %s, handed over %s, changed %s)",
                 len(ids), len(self._enabled), added or "none", removed or "none",
                 changed or "none")

    def run(self, stopping: threading.Event) -> None:
        self.ownership.run(stopping)

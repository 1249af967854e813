"""Which feeds this poller polls: membership of a Kafka consumer group, no coordinator of ours.

Every feed belongs to one partition of a small control topic (a stable hash of its id); the
pollers subscribe to that topic in one consumer group, and each polls the feeds of the
partitions the group gave it. The topic carries no messages: the group protocol is the point.
When a poller joins, leaves or dies (no heartbeat for ``kafka.session_timeout_seconds``), the
group rebalances and the feeds move; in steady state every partition, so every feed, has
exactly one owner.

Each control partition also has a transactional id (:mod:`monitor.bus.kafka_poll`): a poller
that takes a partition over starts its producer first, which fences the last owner and aborts
that owner's open transaction, and only then reads the feeds' committed state. A poller whose
producer was fenced (it lost the partition before the group told it) stops polling those feeds
and takes them back after the group's next rebalance, when the group still says so, or when
the group still gives them to it a session timeout later in the same generation: a poller
that really lost them would have heard of the rebalance by then (its heartbeats fail), so the
fence came from the broker itself (a transaction it aborted on its timeout, seen after a
broker restart) and nobody else polls those feeds. Taking a partition back is always safe:
its producer starts afresh, fencing any other, and the state is read again before a commit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from kafka import KafkaConsumer
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.errors import KafkaError

from monitor.bus.kafka import broker_errors_as_bus_errors, client_config
from monitor.bus.kafka_poll import control_partition
from monitor.bus.startup import transient
from monitor.config.feeds import FeedConfig
from monitor.config.settings import KafkaSettings
from monitor.errors import BusError
from monitor.feeds.kafka_state import KafkaPollState
from monitor.feeds.scheduler import PollScheduler
from monitor.metrics import Metrics

log = logging.getLogger(__name__)

HANGING_CHECK_SECONDS = 60.0


__all__ = ["FeedOwnership", "SharedFeeds", "control_partition"]


class FeedOwnership:
    """``run()`` keeps the group membership alive and calls ``on_change(partitions)`` with the
    control partitions this process owns whenever they change (first call: once joined)."""

    def __init__(self, settings: KafkaSettings,
                 on_change: Callable[[frozenset[int], int], None]) -> None:
        session_ms = int(settings.session_timeout_seconds * 1000)
        self._consumer = KafkaConsumer(
            **client_config(settings), group_id=settings.poll_group, enable_auto_commit=False,
            partition_assignment_strategy=[RoundRobinPartitionAssignor],
            session_timeout_ms=session_ms, heartbeat_interval_ms=min(3000, session_ms // 3))
        self._consumer.subscribe([settings.poll_control_topic])
        self._on_change = on_change
        self.owned: frozenset[int] | None = None  # None until the group has answered
        # partition -> (group generation, monotonic time) of its producer's fence
        self._fenced: dict[int, tuple[int, float]] = {}
        self._fence_hold_seconds = settings.session_timeout_seconds
        self._fence_lock = threading.Lock()  # lost() runs on poll threads
        self._generation = -1
        self.generation = -1  # of the group when ``owned`` was taken
        self._restart = False  # a producer broke: start it and read the state again
        self._failure: str | None = None

    def run(self, stopping: threading.Event,
            housekeeping: Callable[[], object] = lambda: None) -> None:
        """Until ``stopping``; ``housekeeping`` is called once a round (it keeps its own pace)."""
        previous: frozenset[int] | None = None
        while not stopping.is_set():
            housekeeping()
            try:
                self._consumer.poll(timeout_ms=500)
            except KafkaError as exc:
                if not transient(exc):
                    raise
                # kafka-python 3.0.12 raises a broker outage out of poll (seen in the chaos
                # test: the thread died, the poller left its group and its feeds stood
                # still). The membership resumes when the broker is back; the broker watch
                # says the outage once.
                log.debug("poll: group membership waits for the broker: %r", exc)
                stopping.wait(0.5)
                continue
            self._generation = self._consumer.group_metadata().generation_id
            seen = frozenset(tp.partition for tp in self._consumer.assignment())
            usable = seen - self._held_back(seen)
            # Act on an assignment only once it held for two polls: during a rebalance it is
            # empty for a moment, and acting on that would drop every feed and take them back.
            # A new generation with the same partitions: we may have lost and regained them
            # (a pause longer than the session), so the producers start afresh.
            if seen == previous and (usable != self.owned or self._restart
                                     or self._generation != self.generation):
                self._restart = False
                self._change(usable, self._generation)
            previous = seen

    def _held_back(self, seen: frozenset[int]) -> frozenset[int]:
        """The fenced partitions not to be polled (yet): see the module doc."""
        now, held = time.monotonic(), set()
        with self._fence_lock:
            fenced = list(self._fenced.items())
        for partition, (generation, at) in fenced:
            if generation == self._generation and now - at < self._fence_hold_seconds:
                held.add(partition)
                continue
            with self._fence_lock:
                if self._fenced.get(partition) == (generation, at):
                    del self._fenced[partition]
            if generation == self._generation and partition in seen:
                log.info("poll: control partition %d is still this poller's %g s after its "
                         "producer was fenced, in the same generation of the group: the "
                         "broker fenced it, not another poller; polling its feeds again",
                         partition, self._fence_hold_seconds)
        return frozenset(held)

    def _change(self, owned: frozenset[int], generation: int) -> None:
        try:
            self._on_change(owned, generation)
        except BusError as exc:  # tried again on the next round; said once per error
            self._restart = True
            text = f"poll: cannot take control partitions {sorted(owned)} yet: {exc}"
            log.log(logging.DEBUG if text == self._failure else logging.WARNING, "%s", text)
            self._failure = text
            return
        self._failure = None
        if owned != self.owned:
            log.info("poll: this poller now owns control partitions %s",
                     sorted(owned) or "none")
        self.owned, self.generation = owned, generation

    def lost(self, partition: int, fenced: bool) -> None:
        """``partition``'s producer is gone. Fenced: another poller took it, drop it until the
        group's next rebalance; else start it again. Called from a poll's thread."""
        if fenced:
            with self._fence_lock:
                self._fenced[partition] = (self._generation, time.monotonic())
        else:
            self._restart = True

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
        self._settings, self._partitions = settings, settings.poll_control_partitions
        self._state, self._scheduler, self._metrics = state, scheduler, metrics
        self._lock = threading.Lock()
        self._enabled: list[FeedConfig] = []
        self.ownership = FeedOwnership(settings, self._apply)
        state.transactions.on_lost = self.ownership.lost

    def set_feeds(self, enabled: Sequence[FeedConfig]) -> None:
        with self._lock:
            self._enabled = list(enabled)
        if self.ownership.owned is not None:
            self._apply(self.ownership.owned, self.ownership.generation)

    def _apply(self, owned: frozenset[int], generation: int) -> None:
        """BusError when the producers or the state cannot be read (nothing changed then)."""
        with self._lock:
            mine = [feed for feed in self._enabled
                    if control_partition(feed.id, self._partitions) in owned]
            ids = {feed.id for feed in mine}
            with broker_errors_as_bus_errors("poll", "take over feeds of",
                                             self._settings.poll_control_topic):
                self._state.own(owned, generation)  # fences the last owners first
                self._state.refresh()
            states = {state.feed_id: state for state in self._state.load_all()}
            added, removed, changed = self._scheduler.update(mine, states)
            for feed in mine:
                if feed.id in added:
                    self._metrics.init_feed(feed.id, feed.interval_seconds, states.get(feed.id))
            for feed_id in removed:
                self._metrics.remove_feed(feed_id)
        log.info("poll: polling %d of %d feeds (taken over %s, handed over %s, changed %s)",
                 len(ids), len(self._enabled), added or "none", removed or "none",
                 changed or "none")

    def run(self, stopping: threading.Event) -> None:
        # A transaction left hanging after a broker restart would hold back every reader of
        # the items and the feed state for good (monitor.bus.hanging): looked for each minute.
        self.ownership.run(stopping, lambda: self._state.abort_hanging(
            every_seconds=HANGING_CHECK_SECONDS))

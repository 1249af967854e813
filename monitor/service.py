"""Composition root: builds each stage from settings and runs it until asked to stop.

Nothing here does I/O of its own beyond wiring: every client is created here and passed in.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Protocol

from prometheus_client import CollectorRegistry

from monitor.alerting.channels import build_channels
from monitor.alerting.core import AlertCore
from monitor.alerting.silence_store import SilenceStore
from monitor.alerting.stage import (
    AlertStageConfig,
    EmbeddedAlertStage,
    claims_of,
    load_stage_config,
)
from monitor.bus import ItemPublisher
from monitor.bus.connectivity import BrokerWatch
from monitor.bus.embedded import EmbeddedItemLog
from monitor.bus.kafka_alert import KafkaAlertStage
from monitor.bus.kafka_match import KafkaMatchStage
from monitor.config.claims import load_claims
from monitor.config.feeds import FeedConfig, load_feeds
from monitor.config.settings import Settings
from monitor.errors import ConfigError
from monitor.feed_table import FeedRecord
from monitor.feeds.fetch import Fetcher, FetchLimits
from monitor.feeds.kafka_state import KafkaPollState
from monitor.feeds.ownership import SharedFeeds
from monitor.feeds.parse import TextLimits
from monitor.feeds.poller import FeedPoller
from monitor.feeds.schedule import SchedulePolicy
from monitor.feeds.scheduler import PollScheduler
from monitor.feeds.state import PollStateStore, SQLitePollState
from monitor.health import HealthServer, ReadinessCheck
from monitor.match.embedded_stage import EmbeddedMatchStage
from monitor.match.registry import ClaimRegistry
from monitor.match.semantic import build_embedder
from monitor.match.stage import MatchProcessor
from monitor.metrics import Metrics
from monitor.readiness import FeedsReadiness
from monitor.reload import ConfigWatcher
from monitor.store import Database

log = logging.getLogger(__name__)

_PRUNE_EVERY_SECONDS = 3600.0


def build_fetcher(settings: Settings) -> Fetcher:
    poll = settings.poll
    return Fetcher(FetchLimits(
        user_agent=poll.user_agent, timeout_seconds=poll.timeout_seconds,
        max_body_bytes=poll.max_body_bytes, max_redirects=poll.max_redirects,
        per_host_concurrency=poll.per_host_concurrency,
        allowed_networks=tuple(poll.allowed_networks),
    ))


def build_publisher(settings: Settings, database: Database) -> tuple[ItemPublisher, str]:
    if settings.embedded:
        return EmbeddedItemLog(database), "embedded"
    from monitor.bus.kafka import KafkaItemPublisher, ensure_topics, item_topics

    ensure_topics(settings.kafka, item_topics(settings.kafka))
    return KafkaItemPublisher(settings.kafka), "kafka"


def matching_registry(settings: Settings, claims_path: Path) -> ClaimRegistry:
    """The claims as the matcher needs them: with sentence vectors unless turned off."""
    return ClaimRegistry(claims_path, build_embedder(settings.match))


def watch_broker(settings: Settings, add_check: Callable[[str, ReadinessCheck], None]
                 ) -> BrokerWatch:
    """The process's one broker watch, started, with its /readyz check ``broker``."""
    watch = BrokerWatch(settings.kafka)
    watch.start()
    grace_seconds = settings.http.readiness_grace_seconds
    add_check("broker", lambda: watch.is_ready(grace_seconds))
    return watch


def build_kafka_match_stage(settings: Settings, claims_path: Path, metrics: Metrics,
                            watch: BrokerWatch | None = None) -> KafkaMatchStage:
    from monitor.bus.kafka import ensure_topics, item_topics

    ensure_topics(settings.kafka, item_topics(settings.kafka))
    processor = MatchProcessor(matching_registry(settings, claims_path), metrics)
    return KafkaMatchStage(settings.kafka, processor, metrics,
                           batch_max=settings.kafka.match_batch_max,
                           session_timeout_seconds=settings.kafka.session_timeout_seconds,
                           watch=watch)


def build_kafka_alert_stage(settings: Settings, config: AlertStageConfig,
                            claim_registry: ClaimRegistry, database: Database,
                            metrics: Metrics, watch: BrokerWatch | None = None
                            ) -> KafkaAlertStage:
    """The Kafka alert stage; silences come from the local state file (``monitor silence``)."""
    from monitor.bus.kafka import ensure_topics, item_topics

    ensure_topics(settings.kafka, item_topics(settings.kafka))
    silences = SilenceStore(database)
    core = AlertCore(config, claims_of(claim_registry), build_channels(), metrics)
    return KafkaAlertStage(
        settings.kafka, core,
        lambda now: silences.list(include_expired=False, now=datetime.fromtimestamp(now, UTC)),
        metrics, batch_max=settings.kafka.alert_batch_max,
        session_timeout_seconds=settings.kafka.session_timeout_seconds, watch=watch)


class _Stage(Protocol):
    def run(self, stopping: threading.Event) -> None: ...

    def close(self) -> None: ...


def run_stage(stage: _Stage, stopping: threading.Event, health: HealthServer, name: str) -> None:
    """Run a stage until ``stopping`` is set, then close it and its health endpoints."""
    try:
        stage.run(stopping)
    finally:
        stage.close()
        health.stop()
        log.info("%s: stopped", name)


@dataclass
class AlertService:
    """``monitor alert``: the Kafka alert stage alone, with its health endpoints."""

    settings: Settings
    claims_path: Path
    alerts_path: Path
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        config = load_stage_config(self.alerts_path, os.environ)  # before any I/O
        self.metrics = Metrics(self.registry)
        self.database = Database(self.settings.state_path)
        self.health = HealthServer(self.settings.http.host, self.settings.http.port,
                                   self.registry)
        self.health.start()
        self.broker = watch_broker(self.settings, self.health.add_check)
        self.stage = build_kafka_alert_stage(self.settings, config,
                                             ClaimRegistry(self.claims_path), self.database,
                                             self.metrics, self.broker)
        self.health.add_check("alert", self.stage.is_ready)
        self.watcher = ConfigWatcher([self.alerts_path], self.reload_config)

    def reload_config(self) -> None:
        """routes.yaml (validated, secrets resolved) takes effect; claims reload on change."""
        load_claims(self.claims_path)
        self.stage.reload_routes(load_stage_config(self.alerts_path, os.environ))
        log.info("reload: alert routes from %s", self.alerts_path)

    def run_until_stopped(self) -> None:
        threading.Thread(target=self.watcher.watch, args=(self.stopping,), name="reload",
                         daemon=True).start()
        try:
            run_stage(self.stage, self.stopping, self.health, "alert")
        finally:
            self.broker.close()
            self.database.close()


@dataclass
class MatchService:
    """``monitor match``: the Kafka match stage alone, with its health endpoints."""

    settings: Settings
    claims_path: Path
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.registry)
        self.health = HealthServer(self.settings.http.host, self.settings.http.port,
                                   self.registry)
        self.health.start()
        self.broker = watch_broker(self.settings, self.health.add_check)
        self.stage = build_kafka_match_stage(self.settings, self.claims_path, self.metrics,
                                             self.broker)
        self.health.add_check("match", self.stage.is_ready)

    def run_until_stopped(self) -> None:
        try:
            run_stage(self.stage, self.stopping, self.health, "match")
        finally:
            self.broker.close()


def build_poller(settings: Settings, store: PollStateStore, publisher: ItemPublisher,
                 bus_name: str, metrics: Metrics, fetcher: Fetcher,
                 broker: BrokerWatch | None = None) -> FeedPoller:
    poll = settings.poll
    return FeedPoller(
        fetcher, store, publisher, metrics,
        policy=SchedulePolicy(poll.backoff_cap_seconds, poll.max_age_cap_seconds,
                              poll.jitter_ratio),
        text_limits=TextLimits(poll.max_title_chars, poll.max_summary_chars,
                               poll.max_body_bytes),
        bus_name=bus_name,
        # An outage the broker watch has reported once is not repeated for every feed.
        publish_failure_level=broker.level_for_failure if broker else None,
    )


@dataclass
class PollService:
    """The poll stage (scheduler + poller + publisher) and, given ``claims_path``, the match
    stage in the same process; one life cycle and one set of health endpoints.

    With ``claims_path`` and ``alerts_path`` the alert stage runs too: in embedded mode on the
    local match log (woken by the match stage, and looking at least every second), in Kafka
    mode as a member of the alert consumer group, exactly as ``monitor alert`` runs it.
    """

    settings: Settings
    feeds: Sequence[FeedConfig]
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    stopping: threading.Event = field(default_factory=threading.Event)
    claims_path: Path | None = None
    alerts_path: Path | None = None
    feeds_path: Path | None = None  # re-read on SIGHUP and when it changes
    # One-shot runs serve no endpoints: nobody scrapes them, and the daemon may hold the port.
    serve_http: bool = True

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.registry, self.settings.metrics)
        alert_config = self._alert_config()  # a missing secret stops start-up before any I/O
        watched = [p for p in (self.feeds_path, self.claims_path, self.alerts_path) if p]
        self.watcher = ConfigWatcher(watched, self.reload_config)
        self.database = Database(self.settings.state_path)
        self.health = (HealthServer(self.settings.http.host, self.settings.http.port,
                                    self.registry) if self.serve_http else None)
        if self.health is not None:
            self.health.start()  # /healthz answers while start-up waits for the broker
        self.publisher, bus_name = build_publisher(self.settings, self.database)
        self.broker = (None if self.settings.embedded
                       else watch_broker(self.settings, self._add_check))
        self.state = self._poll_state()
        self.fetcher = build_fetcher(self.settings)
        poller = build_poller(self.settings, self.state, self.publisher, bus_name,
                              self.metrics, self.fetcher, self.broker)
        self.scheduler = PollScheduler(poller, workers=self.settings.poll.workers,
                                       jitter_ratio=self.settings.poll.jitter_ratio,
                                       rng=random.Random(),
                                       on_skipped=self.metrics.polls_skipped.inc)
        self._add_check("scheduler", lambda: self.scheduler.running)
        self._add_check("feeds", FeedsReadiness(self._feed_records,
                                                self.settings.http.readiness_grace_seconds))
        self._add_check(bus_name, self.publisher.is_ready)
        self.shared: SharedFeeds | None = None
        if isinstance(self.state, KafkaPollState):
            self.shared = SharedFeeds(self.settings.kafka, self.state, self.scheduler,
                                      self.metrics)
            self._add_check("poll-group", self.shared.ownership.is_ready)
        self.match_stage: EmbeddedMatchStage | KafkaMatchStage | None = None
        self.alert_stage: EmbeddedAlertStage | KafkaAlertStage | None = None
        self._threads: list[threading.Thread] = []
        if self.claims_path is not None and isinstance(self.publisher, EmbeddedItemLog):
            claim_registry = matching_registry(self.settings, self.claims_path)
            self.match_stage = self._embedded_match_stage(self.publisher, claim_registry)
            if alert_config is not None:
                self.alert_stage = EmbeddedAlertStage(
                    self.database, alert_config, claims_of(claim_registry), build_channels(),
                    self.metrics)
                self.match_stage.on_matches = self.alert_stage.wake.set
        elif self.claims_path is not None:
            self.match_stage = build_kafka_match_stage(self.settings, self.claims_path,
                                                       self.metrics, self.broker)
            self._add_check("match", self.match_stage.is_ready)
            if alert_config is not None:
                self.alert_stage = build_kafka_alert_stage(
                    self.settings, alert_config, ClaimRegistry(self.claims_path),
                    self.database, self.metrics, self.broker)
                self._add_check("alert", self.alert_stage.is_ready)

    def _add_check(self, name: str, check: ReadinessCheck) -> None:
        if self.health is not None:
            self.health.add_check(name, check)

    def _feed_records(self) -> list[FeedRecord]:
        """The feeds this process polls (a shared poller: its share), as last polled."""
        with self.metrics.feeds.lock:
            return list(self.metrics.feeds.records.values())

    def _alert_config(self) -> AlertStageConfig | None:
        if self.alerts_path is None or self.claims_path is None:
            return None
        return load_stage_config(self.alerts_path, os.environ)

    def _embedded_match_stage(self, items: EmbeddedItemLog, claim_registry: ClaimRegistry
                              ) -> EmbeddedMatchStage:
        processor = MatchProcessor(claim_registry, self.metrics)
        stage = EmbeddedMatchStage(items, self.database, processor, self.metrics)
        items.on_publish = stage.wake.set  # hand new items over at once, not on the next tick
        return stage

    def _poll_state(self) -> SQLitePollState | KafkaPollState:
        """The local state file, or with ``poll.shared`` (Kafka mode) the state topic that
        every poller of the group reads."""
        if not self.settings.poll.shared:
            return SQLitePollState(self.database)
        if self.settings.embedded:
            raise ConfigError("poll.shared (MONITOR_POLL__SHARED) needs Kafka: set "
                              "MONITOR_KAFKA__BOOTSTRAP_SERVERS")
        from monitor.bus.kafka import ensure_topics, poll_topics

        ensure_topics(self.settings.kafka, poll_topics(self.settings.kafka))
        return KafkaPollState(self.settings.kafka, self.broker)

    def start(self) -> None:
        enabled = [feed for feed in self.feeds if feed.enabled]
        self.metrics.feeds_configured.set(len(enabled))
        if self.shared is not None:  # the group decides which of them are ours
            self.scheduler.start([], {})
            self.shared.set_feeds(enabled)
            thread = threading.Thread(target=self.shared.run, args=(self.stopping,),
                                      name="poll-group", daemon=True)
            thread.start()
            self._threads.append(thread)
        else:
            states = {state.feed_id: state for state in self.state.load_all()}
            for feed in enabled:  # failures and last success as stored: a restart forgets none
                self.metrics.init_feed(feed.id, feed.interval_seconds, states.get(feed.id))
            self.scheduler.start(enabled, states)
        if self.match_stage is not None:
            thread = threading.Thread(target=self.match_stage.run, args=(self.stopping,),
                                      name="match", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.alert_stage is not None:
            thread = threading.Thread(target=self.alert_stage.run, args=(self.stopping,),
                                      name="alert", daemon=True)
            thread.start()
            self._threads.append(thread)
        served = (f"metrics on {self.settings.http.host}:{self.health.port}"
                  if self.health is not None else "no metrics endpoint (one-shot)")
        log.info("poll: %d feeds scheduled, %s mode, %s", len(enabled),
                 "embedded" if self.settings.embedded else "kafka", served)

    def reload_config(self) -> None:
        """Validate feeds.yaml, claims.yaml and routes.yaml, then apply them; a ConfigError
        from any leaves everything as it was (claims reload themselves on change as well)."""
        feeds = load_feeds(self.feeds_path) if self.feeds_path else None
        if self.claims_path is not None:
            load_claims(self.claims_path)
        alert_config = self._alert_config()
        if feeds is not None:
            enabled = [feed for feed in feeds if feed.enabled]
            self.feeds = feeds
            self.metrics.feeds_configured.set(len(enabled))
            if self.shared is not None:  # the group's share of the new list
                self.shared.set_feeds(enabled)
            else:
                self._reschedule(enabled)
        if alert_config is not None and self.alert_stage is not None:
            self.alert_stage.reload_routes(alert_config)
            log.info("reload: alert routes from %s", self.alerts_path)

    def _reschedule(self, enabled: list[FeedConfig]) -> None:
        states = {state.feed_id: state for state in self.state.load_all()}
        for feed in enabled:
            self.metrics.init_feed(feed.id, feed.interval_seconds, states.get(feed.id))
        added, removed, changed = self.scheduler.update(enabled, states)
        for feed_id in removed:
            self.metrics.remove_feed(feed_id)
        log.info("reload: feeds added %s, removed %s, changed %s", added or "none",
                 removed or "none", changed or "none")

    def run_until_stopped(self) -> None:
        """Block until ``stopping`` is set (SIGTERM/SIGINT), reloading the configuration on
        SIGHUP or a file change, pruning old seen-marks hourly."""
        retention = self.settings.poll.seen_retention_days * 86400
        last_prune = time.monotonic()
        while not self.stopping.wait(1.0):
            self.watcher.check()
            if time.monotonic() - last_prune < _PRUNE_EVERY_SECONDS:
                continue
            last_prune = time.monotonic()
            pruned = self.state.prune_seen(time.time() - retention)
            if pruned:
                log.info("poll: forgot %d items no feed has listed for %g days", pruned,
                         self.settings.poll.seen_retention_days)

    def drain_matches(self, timeout_seconds: float) -> bool:
        """Wait until the match stage has caught up with the item log (``--once``, tests)."""
        if not isinstance(self.match_stage, EmbeddedMatchStage) or not isinstance(
                self.publisher, EmbeddedItemLog):
            return True
        deadline = time.monotonic() + timeout_seconds
        while self.match_stage.position() < self.publisher.last_seq():
            if time.monotonic() > deadline or self.stopping.is_set():
                return False
            self.match_stage.wake.set()
            time.sleep(0.05)
        return True

    def drain_alerts(self, timeout_seconds: float) -> bool:
        """Wait until the alert stage has taken in every match and delivered every alert, or
        given it up to the DLQ (``--once``, tests). False at the deadline, or as soon as what
        is left waits past it (a group_wait, a retry, a receiver's Retry-After): such an
        alert stays in the outbox for the next run. Call it once no new matches come."""
        if not isinstance(self.alert_stage, EmbeddedAlertStage):
            return True  # Kafka mode: the group's committed offsets are the progress
        deadline = time.monotonic() + timeout_seconds
        while not self.alert_stage.idle():
            remaining = deadline - time.monotonic()
            due_at = self.alert_stage.next_wakeup()
            if remaining <= 0 or self.stopping.is_set() or (
                    self.alert_stage.caught_up() and due_at is not None
                    and due_at - time.time() > remaining):
                log.warning("alert: %d alert(s) still pending%s; they stay queued",
                            self.alert_stage.pending(), "" if due_at is None else
                            f", the next due in {due_at - time.time():.0f} s")
                return False
            self.alert_stage.wake.set()
            time.sleep(0.05)
        return True

    def close(self) -> None:
        """Finish polls in progress, flush the publisher, close everything."""
        # A poll stuck on a slow server ends within the grace, not at its own deadline, and
        # feeds waiting for their host's turn give up: shutdown is bounded whatever the network.
        self.fetcher.stop(grace_seconds=2.0)
        self.scheduler.shutdown()
        self.stopping.set()
        if isinstance(self.match_stage, EmbeddedMatchStage):
            self.match_stage.wake.set()
        if isinstance(self.alert_stage, EmbeddedAlertStage):
            self.alert_stage.wake.set()
        for thread in self._threads:
            thread.join(timeout=60)
        if self.alert_stage is not None:
            self.alert_stage.close()
        if isinstance(self.match_stage, KafkaMatchStage):
            self.match_stage.close()
        if self.shared is not None:  # only now: no poll of ours runs when the feeds move
            self.shared.ownership.close()
        if isinstance(self.state, KafkaPollState):
            self.state.close()
        self.publisher.close()
        if self.broker is not None:
            self.broker.close()
        self.fetcher.close()
        if self.health is not None:
            self.health.stop()
        self.database.close()
        log.info("poll: stopped")


def install_signal_handlers(stopping: threading.Event,
                            reload: threading.Event | None = None) -> None:
    """SIGTERM and SIGINT only ask the service to stop; it finishes its unit of work.
    SIGHUP asks it to reload its configuration files (``reload``), when it can."""

    def ask_to_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stopping.set()

    def ask_to_reload(_signum: int, _frame: FrameType | None) -> None:
        log.info("received SIGHUP; reloading the configuration")
        if reload is not None:
            reload.set()

    signal.signal(signal.SIGTERM, ask_to_stop)
    signal.signal(signal.SIGINT, ask_to_stop)
    signal.signal(signal.SIGHUP, ask_to_reload)

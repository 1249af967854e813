"""Composition root: one process is the transport, chosen once, and a list of parts.

Settings are read once (by the CLI) and passed in. Constructing a :class:`Service` reads the
configuration files (a missing secret stops start-up before any network I/O), opens the state
file and binds the health port; it starts nothing. :meth:`Service.start` prepares the transport
(broker watch, topics), serves /metrics and the health endpoints, and starts each part,
downstream first: the alert stage, the match stage, then the poller (its scheduler, and with
``poll.shared`` the group that shares the feeds), then the claim desk. Each stage runs in a
thread of its own under :func:`monitor.runner.run_stage`; one that stops on an error retrying
cannot mend stops the whole process (``failed`` names it, and the CLI exits non-zero).
:meth:`Service.close` closes the parts in reverse order, then what they shared.

Which parts run is the command's choice: ``monitor run`` all of them (the alert stage only
with a routes file; the claim desk in embedded mode), ``monitor poll`` the poller, ``monitor
match`` and ``monitor alert`` one stage each, ``monitor desk`` the desk. The same parts run in
both modes: only the transport differs.
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
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry

from monitor.bus import ItemPublisher
from monitor.bus.silences import SilenceBook
from monitor.bus.transport import Transport, choose_transport
from monitor.config.claims import ClaimConfig, load_claims
from monitor.config.feeds import FeedConfig, load_feeds
from monitor.config.settings import Settings
from monitor.errors import ConfigError
from monitor.feed_table import FeedRecord
from monitor.feeds.fetch import Fetcher, FetchLimits
from monitor.feeds.parse import TextLimits
from monitor.feeds.parse_pool import BodyParser, build_parser, parse_processes_for
from monitor.feeds.poller import FeedPoller
from monitor.feeds.schedule import SchedulePolicy
from monitor.feeds.scheduler import PollScheduler
from monitor.feeds.state import SQLitePollState
from monitor.health import HealthServer, ReadinessCheck
from monitor.metrics import Metrics
from monitor.readiness import FeedsReadiness
from monitor.reload import ConfigWatcher
from monitor.runner import Stage, StageFailed, stage_thread
from monitor.store import Database

# A stage's modules (the model, Apprise, Kafka's client) load when a process runs that stage,
# so `monitor poll` and one-shot commands start fast.
if TYPE_CHECKING:
    from monitor.alerting.stage import AlertStage, AlertStageConfig
    from monitor.desk.part import DeskPart
    from monitor.feeds.kafka_state import KafkaPollState
    from monitor.feeds.ownership import SharedFeeds
    from monitor.match.registry import ClaimRegistry
    from monitor.match.stage import MatchStage

log = logging.getLogger(__name__)

_PRUNE_EVERY_SECONDS = 3600.0
_STAGE_JOIN_SECONDS = 60.0
AddCheck = Callable[[str, ReadinessCheck], None]


def build_fetcher(settings: Settings) -> Fetcher:
    poll = settings.poll
    return Fetcher(FetchLimits(
        user_agent=poll.user_agent, timeout_seconds=poll.timeout_seconds,
        max_body_bytes=poll.max_body_bytes, max_redirects=poll.max_redirects,
        per_host_concurrency=poll.per_host_concurrency,
        allowed_networks=tuple(poll.allowed_networks),
    ))


def matching_registry(settings: Settings, claims_path: Path) -> ClaimRegistry:
    """The claims as the matcher needs them: with sentence vectors unless turned off."""
    from monitor.match.registry import ClaimRegistry
    from monitor.match.semantic import build_embedder

    return ClaimRegistry(claims_path, build_embedder(settings.match))


class Part(Protocol):
    """One piece of a process with a life of its own: started once, closed once."""

    def start(self, stopping: threading.Event, failed: StageFailed) -> None: ...

    def close(self) -> None: ...


class PollPart:
    """The poll stage: scheduler, poller and publisher; with ``poll.shared`` (Kafka mode) the
    group of pollers that shares the feed list, and the state topic they all read."""

    def __init__(self, settings: Settings, feeds: Sequence[FeedConfig], metrics: Metrics,
                 database: Database, transport: Transport, add_check: AddCheck) -> None:
        if settings.poll.shared and transport.name == "embedded":
            raise ConfigError("poll.shared (MONITOR_POLL__SHARED) needs Kafka: set "
                              "MONITOR_KAFKA__BOOTSTRAP_SERVERS")
        self._settings, self.feeds, self._metrics = settings, list(feeds), metrics
        self._db, self._transport, self._add_check = database, transport, add_check
        self.fetcher = build_fetcher(settings)
        self.state: SQLitePollState | KafkaPollState = SQLitePollState(database,
                                                                       write_behind=True)
        self.publisher: ItemPublisher | None = None
        self._scheduler: PollScheduler | None = None
        self._parser: BodyParser | None = None
        self._shared: SharedFeeds | None = None
        self._threads: list[threading.Thread] = []

    @property
    def scheduler(self) -> PollScheduler:
        if self._scheduler is None:
            raise RuntimeError("poll: the scheduler exists once the service has started")
        return self._scheduler

    def start(self, stopping: threading.Event, failed: StageFailed) -> None:
        settings, transport, poll = self._settings, self._transport, self._settings.poll
        if poll.shared:  # its items go in the feed state's transactions
            self.state.close()  # the state file's store, unused by shared pollers
            self.state = self._shared_state()
            self.publisher = self.state
        else:
            self.publisher = transport.publisher()
        poller = FeedPoller(
            self.fetcher, self.state, self.publisher, self._metrics,
            policy=SchedulePolicy(poll.backoff_cap_seconds, poll.max_age_cap_seconds,
                                  poll.jitter_ratio),
            text_limits=TextLimits(poll.max_title_chars, poll.max_summary_chars,
                                   poll.max_body_bytes),
            bus_name=transport.name, publish_failure_level=transport.publish_failure_level(),
            parser=self._start_parser())
        self._scheduler = PollScheduler(poller, workers=poll.workers,
                                        jitter_ratio=poll.jitter_ratio, rng=random.Random(),
                                        on_skipped=self._metrics.polls_skipped.inc,
                                        on_started=self._metrics.feeds.run_started,
                                        on_bug=lambda exc: _stop(stopping, failed, "poll", exc))
        self._add_check("scheduler", lambda: self.scheduler.running)
        self._add_check("feeds", FeedsReadiness(self._feed_records,
                                                settings.http.readiness_grace_seconds))
        self._add_check(transport.name, self.publisher.is_ready)
        enabled = [feed for feed in self.feeds if feed.enabled]
        self._metrics.feeds_configured.set(len(enabled))
        if poll.shared:
            self._start_shared(enabled, stopping, failed)
            return
        states = {state.feed_id: state for state in self.state.load_all()}
        for feed in enabled:  # failures and last success as stored: a restart forgets none
            self._metrics.init_feed(feed.id, feed.interval_seconds, states.get(feed.id))
        self.scheduler.start(enabled, states)

    def _start_parser(self) -> BodyParser:
        # Worker processes parse once there are many feeds (parse_pool.py); few stay in-process.
        enabled = sum(feed.enabled for feed in self.feeds)
        self._parser = build_parser(parse_processes_for(self._settings.poll.parse_processes,
                                                        enabled))
        return self._parser

    def _shared_state(self) -> KafkaPollState:
        from monitor.bus.kafka import ensure_topics, poll_topics
        from monitor.feeds.kafka_state import KafkaPollState

        kafka = self._settings.kafka
        ensure_topics(kafka, poll_topics(kafka))
        return KafkaPollState(kafka, getattr(self._transport, "watch", None))

    def _start_shared(self, enabled: list[FeedConfig], stopping: threading.Event,
                      failed: StageFailed) -> None:
        from monitor.feeds.kafka_state import KafkaPollState
        from monitor.feeds.ownership import SharedFeeds

        assert isinstance(self.state, KafkaPollState)
        self._shared = SharedFeeds(self._settings.kafka, self.state, self.scheduler,
                                   self._metrics)
        self._add_check("poll-group", self._shared.ownership.is_ready)
        self.scheduler.start([], {})  # the group decides which feeds are ours
        self._shared.set_feeds(enabled)
        shared = self._shared

        def keep_membership() -> None:  # a bug here stops the process, not just the thread
            try:
                shared.run(stopping)
            except BaseException as exc:
                log.exception("poll: the poll group's membership stopped on an error")
                _stop(stopping, failed, "poll", exc)

        thread = threading.Thread(target=keep_membership, name="poll-group", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _feed_records(self) -> list[FeedRecord]:
        """The feeds this process polls (a shared poller: its share), as last polled."""
        with self._metrics.feeds.lock:
            return list(self._metrics.feeds.records.values())

    def reload(self, feeds: Sequence[FeedConfig]) -> None:
        enabled = [feed for feed in feeds if feed.enabled]
        self.feeds = list(feeds)
        self._metrics.feeds_configured.set(len(enabled))
        if self._shared is not None:  # the group's share of the new list
            self._shared.set_feeds(enabled)
            return
        states = {state.feed_id: state for state in self.state.load_all()}
        for feed in enabled:
            self._metrics.init_feed(feed.id, feed.interval_seconds, states.get(feed.id))
        added, removed, changed = self.scheduler.update(enabled, states)
        for feed_id in removed:
            self._metrics.remove_feed(feed_id)
        log.info("reload: feeds added %s, removed %s, changed %s", added or "none",
                 removed or "none", changed or "none")

    def prune_seen(self, older_than: float) -> int:
        return self.state.prune_seen(older_than)

    def stop_polling(self) -> None:
        """Finish polls in progress and take no new ones (before the stages stop)."""
        # A poll stuck on a slow server ends within the grace, not at its own deadline, and
        # feeds waiting for their host's turn give up: shutdown is bounded whatever the network.
        self.fetcher.stop(grace_seconds=2.0)
        if self._scheduler is not None:
            self._scheduler.shutdown()

    def close(self) -> None:
        self.stop_polling()
        for thread in self._threads:
            thread.join(timeout=_STAGE_JOIN_SECONDS)
        if self._shared is not None:  # only now: no poll of ours runs when the feeds move
            self._shared.ownership.close()
        self.state.close()  # a state file's own: the service closes it, after this
        if self.publisher is not None and self.publisher is not self.state:
            self.publisher.close()
        if self._parser is not None:  # after the polls: they wait for their parses
            self._parser.close()
        self.fetcher.close()
        log.info("poll: stopped")


def _stop(stopping: threading.Event, failed: StageFailed, stage: str,
          error: BaseException) -> None:
    """A bug in ``stage``: note it and stop the whole process (it exits non-zero)."""
    failed.record(stage, error)
    stopping.set()


class StagePart:
    """A consuming stage (match, alert), built at start and run by the one runner."""

    def __init__(self, name: str, build: Callable[[], Stage], add_check: AddCheck) -> None:
        self.name, self._build, self._add_check = name, build, add_check
        self.stage: Stage | None = None
        self._thread: threading.Thread | None = None

    def start(self, stopping: threading.Event, failed: StageFailed) -> None:
        self.stage = self._build()
        ready = getattr(self.stage, "is_ready", None)
        if ready is not None:
            self._add_check(self.name, ready)
        self._thread = stage_thread(self.stage, stopping, failed)
        self._thread.start()

    def close(self) -> None:
        """Wait for the stage to end its step and close itself (``stopping`` is set)."""
        if self._thread is not None:
            self._thread.join(timeout=_STAGE_JOIN_SECONDS)


@dataclass
class Service:
    """One process of the pipeline; see the module doc.

    ``claims_path`` adds the match stage (unless ``match`` is False), ``alerts_path`` (with
    claims) the alert stage; ``poll`` False leaves the poller out (``monitor match``,
    ``monitor alert``); ``desk`` (with claims) adds the claim desk.
    """

    settings: Settings
    feeds: Sequence[FeedConfig] = ()
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    stopping: threading.Event = field(default_factory=threading.Event)
    claims_path: Path | None = None
    alerts_path: Path | None = None
    feeds_path: Path | None = None  # re-read on SIGHUP and when it changes
    # One-shot runs serve no endpoints: nobody scrapes them, and the daemon may hold the port.
    serve_http: bool = True
    poll: bool = True
    match: bool = True
    desk: bool = False

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.registry, self.settings.metrics)
        self._alert_config_now = self._alert_config()  # a missing secret stops start-up here
        watched = [p for p in (self.feeds_path, self.claims_path, self.alerts_path) if p]
        self.watcher = ConfigWatcher(watched, self.reload_config)
        self.database = Database(self.settings.state_path)
        self.transport = choose_transport(self.settings, lambda: self.database)
        self.health = (HealthServer(self.settings.http.host, self.settings.http.port,
                                    self.registry) if self.serve_http else None)
        self.failed = StageFailed()
        self.poller = (PollPart(self.settings, self.feeds, self.metrics, self.database,
                                self.transport, self._add_check) if self.poll else None)
        self.match_part = (StagePart("match", self._match_stage, self._add_check)
                           if self.claims_path is not None and self.match else None)
        self.alert_part = (StagePart("alert", self._alert_stage, self._add_check)
                           if self._alert_config_now is not None else None)
        self.desk_part = self._desk_part() if self.desk and self.claims_path else None
        # Downstream first: a stage has its claims loaded and its log open before anything
        # reaches it, and closing in reverse stops the poller first, the alerter last. The
        # desk only reads: it comes last, so it holds up nothing, and shows the claims the
        # stages loaded.
        self.parts: list[Part] = [p for p in (self.alert_part, self.match_part, self.poller,
                                              self.desk_part) if p is not None]
        self._started: list[Part] = []
        self._claims: ClaimRegistry | None = None
        self._silences: SilenceBook | None = None

    # -- building the stages (at start: Kafka clients connect when they are made) -----------

    def _claim_registry(self) -> ClaimRegistry:
        """The process's one set of claims, shared by its stages; with sentence vectors only
        when it matches (the alert stage renders claims, it does not compare them)."""
        from monitor.match.registry import ClaimRegistry

        if self._claims is None:
            assert self.claims_path is not None
            self._claims = (matching_registry(self.settings, self.claims_path)
                            if self.match_part is not None else ClaimRegistry(self.claims_path))
        return self._claims

    def _match_stage(self) -> MatchStage:
        from monitor.match.stage import MatchProcessor, MatchStage

        processor = MatchProcessor(self._claim_registry(), self.metrics)
        return MatchStage(self.transport.stage_log("match"), processor, self.metrics)

    def _alert_stage(self) -> AlertStage:
        from monitor.alerting.channels import build_channels
        from monitor.alerting.core import AlertCore
        from monitor.alerting.migrate_outbox import migrate_outbox
        from monitor.alerting.stage import AlertStage

        assert self._alert_config_now is not None
        migrate_outbox(self.database)  # once, a state file of the old embedded alert stage
        # The state file's silences, or the silences topic every alerter follows.
        self._silences = self.transport.silences()
        core = AlertCore(self._alert_config_now, self._claim_registry().current,
                         build_channels(), self.metrics)
        return AlertStage(self.transport.stage_log("alert"), core, self._silences.active,
                          self.metrics,
                          deliveries_per_receiver=self.settings.alert.deliveries_per_receiver)

    def _desk_part(self) -> DeskPart:
        """The desk shows the stages' claims, or (``monitor desk``) reads the file alone."""
        from monitor.desk.claims import ClaimsOnFile
        from monitor.desk.part import DeskPart

        assert self.claims_path is not None
        stages_read_claims = self.match_part is not None or self._alert_config_now is not None
        claims = (self._current_claims if stages_read_claims
                  else ClaimsOnFile(self.claims_path).current)
        return DeskPart(self.settings, self.transport.match_follower, claims, self.metrics,
                        self._add_check)

    def _current_claims(self) -> dict[str, ClaimConfig]:
        return self._claim_registry().current()

    @property
    def scheduler(self) -> PollScheduler:
        assert self.poller is not None, "this process does not poll"
        return self.poller.scheduler

    @property
    def match_stage(self) -> MatchStage | None:
        return self.match_part.stage if self.match_part else None  # type: ignore[return-value]

    @property
    def alert_stage(self) -> AlertStage | None:
        return self.alert_part.stage if self.alert_part else None  # type: ignore[return-value]

    def _add_check(self, name: str, check: ReadinessCheck) -> None:
        if self.health is not None:
            self.health.add_check(name, check)

    def _alert_config(self) -> AlertStageConfig | None:
        if self.alerts_path is None or self.claims_path is None:
            return None
        from monitor.alerting.stage import load_stage_config

        return load_stage_config(self.alerts_path, os.environ, self.settings.http.public_url)

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self.health is not None:
            self.health.start()  # /healthz answers while start-up waits for the broker
        self.metrics.set_roles(role for role in self._roles().split("+") if role)
        self.transport.prepare()
        for name, check in self.transport.checks().items():
            self._add_check(name, check)
        for part in self.parts:
            part.start(self.stopping, self.failed)
            self._started.append(part)
        served = (f"metrics on {self.settings.http.host}:{self.health.port}"
                  if self.health is not None else "no metrics endpoint (one-shot)")
        roles = self._roles()
        feeds = (f"{sum(f.enabled for f in self.feeds)} feeds scheduled, "
                 if self.poller is not None else "")
        log.info("%s: %s%s mode, %s", roles, feeds, self.transport.name, served)

    def _roles(self) -> str:
        """"poll", "poll+match+alert" ...: what this process runs, for its log lines."""
        return "+".join(name for name, on in (("poll", self.poller), ("match", self.match_part),
                                              ("alert", self.alert_part),
                                              ("desk", self.desk_part)) if on is not None)

    def reload_config(self) -> None:
        """Validate feeds.yaml, claims.yaml and routes.yaml, then apply them; a ConfigError
        from any leaves everything as it was (claims reload themselves on change as well)."""
        feeds = load_feeds(self.feeds_path) if self.feeds_path else None
        if self.claims_path is not None:
            load_claims(self.claims_path)
        alert_config = self._alert_config()
        if feeds is not None and self.poller is not None:
            self.feeds = feeds
            self.poller.reload(feeds)
        if alert_config is not None and self.alert_stage is not None:
            self.alert_stage.reload_routes(alert_config)
            log.info("reload: alert routes from %s", self.alerts_path)

    def run_until_stopped(self) -> None:
        """Block until ``stopping`` is set (SIGTERM/SIGINT, or a stage that failed),
        reloading the configuration on SIGHUP or a file change, pruning old seen-marks
        hourly."""
        retention = self.settings.poll.seen_retention_days * 86400
        last_prune = time.monotonic()
        while not self.stopping.wait(1.0):
            self.watcher.check()
            if self.poller is None or time.monotonic() - last_prune < _PRUNE_EVERY_SECONDS:
                continue
            last_prune = time.monotonic()
            pruned = self.poller.prune_seen(time.time() - retention)
            if pruned:
                log.info("poll: forgot %d items no feed has listed for %g days", pruned,
                         self.settings.poll.seen_retention_days)

    def drain_matches(self, timeout_seconds: float) -> bool:
        """Wait until the match stage has committed every item it can see (``--once``,
        tests). In Kafka mode the lag is the one the stage last measured."""
        stage = self.match_stage
        if stage is None:
            return True
        deadline = time.monotonic() + timeout_seconds
        while not stage.caught_up():
            if time.monotonic() > deadline or self.stopping.is_set():
                return False
            time.sleep(0.05)
        return True

    def drain_alerts(self, timeout_seconds: float) -> bool:
        """Wait until the alert stage has taken in every match and delivered every alert, or
        given it up to the DLQ (``--once``, tests). False at the deadline, or as soon as what
        is left waits past it (a group_wait, a retry, a receiver's Retry-After): such an
        alert stays queued for the next run. Call it once no new matches come."""
        stage = self.alert_stage
        if stage is None:
            return True
        deadline = time.monotonic() + timeout_seconds
        while not stage.idle():
            remaining = deadline - time.monotonic()
            due_at = stage.next_wakeup()
            if remaining <= 0 or self.stopping.is_set() or (
                    due_at is not None and due_at - time.time() > remaining):
                log.warning("alert: %d alert(s) still pending%s; they stay queued",
                            stage.pending(), "" if due_at is None else
                            f", the next due in {due_at - time.time():.0f} s")
                return False
            time.sleep(0.05)
        return True

    def close(self) -> None:
        """Stop polling, let each stage finish its step, close everything in reverse order."""
        if self.poller is not None:
            self.poller.stop_polling()
        self.stopping.set()
        for part in reversed(self._started):
            part.close()
        if self._silences is not None:  # after the alert stage, which reads them
            self._silences.close()
        self.transport.close()
        if self.health is not None:
            self.health.stop()
        self.database.close()


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

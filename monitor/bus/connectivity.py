"""Whether this process reaches the Kafka broker, said once when it goes and once when it is back.

kafka-python reconnects by itself and logs every failed attempt (about a hundred ERROR lines a
process for a 40 s outage; logsetup keeps them below the operator's level), while the stages'
own calls mostly just wait: an idle consumer's ``poll`` returns nothing whether or not the broker
is there. So one :class:`BrokerWatch` per process decides, from a probe of its own (a Kafka
ApiVersions request to a bootstrap server, :mod:`monitor.bus.broker_probe`) run every
``PROBE_INTERVAL_SECONDS`` and at once whenever a stage's call fails, and :class:`Reachability`
logs the transitions Home Assistant's update_coordinator way: one WARNING when the broker
becomes unreachable, one INFO when it answers again. Stages ask the watch at which level
to log their own failures (``level_for_failure``): DEBUG while the outage is known (it has been
said once), INFO when the consumer group moved on meanwhile (a rebalance: retried, nothing
lost), WARNING when the broker answers and the failure is the stage's own.

Readiness: ``BrokerWatch.is_ready(grace)`` fails once the broker has been unreachable for
longer than the grace, and passes again with the first answer.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from kafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)

from monitor.bus.broker_probe import Probe, probe_broker
from monitor.clock import SYSTEM_CLOCK, Clock
from monitor.config.settings import KafkaSettings

log = logging.getLogger(__name__)

PROBE_INTERVAL_SECONDS = 2.0
PROBE_TIMEOUT_SECONDS = 2.0
# A failing stage probes at once unless a probe answered this recently.
_FRESH_SECONDS = 0.5
# The consumer group moved on while a stage's batch was in flight (a rebalance, or a session
# that expired during an outage): the batch is retried and the partition's next owner starts
# from the committed offsets, so this is part of a rebalance, not a fault.
GROUP_MOVED_ON = (CommitFailedError, RebalanceInProgressError, UnknownMemberIdError,
                  IllegalGenerationError)


class Reachability:
    """Up or down since when, with one log line per transition. Thread-safe.

    The clock's monotonic time measures the outage; its wall time only names the start.
    """

    def __init__(self, target: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._target, self._clock = target, clock
        self._lock = threading.Lock()
        self._down_since: float | None = None

    def failed(self, reason: str) -> None:
        with self._lock:
            if self._down_since is not None:
                log.debug("kafka: broker %s still unreachable: %s", self._target, reason)
                return
            self._down_since = self._clock.monotonic()
        since = datetime.fromtimestamp(self._clock.now(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        log.warning("kafka: broker %s unreachable since %s: %s", self._target, since, reason)

    def succeeded(self) -> None:
        with self._lock:
            if self._down_since is None:
                return
            seconds, self._down_since = self._clock.monotonic() - self._down_since, None
        log.info("kafka: broker %s reachable again after %.0f s", self._target, seconds)

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def down_for(self) -> float:
        """Seconds since the broker became unreachable; 0.0 while it answers."""
        down_since = self._down_since
        return 0.0 if down_since is None else self._clock.monotonic() - down_since


class BrokerWatch:
    """One per process, shared by every Kafka stage in it; ``start`` runs the probe thread.

    ``check`` blocks for one probe (at most ``PROBE_TIMEOUT_SECONDS`` per bootstrap server) and
    never raises. Without ``start`` the watch still probes whenever a stage reports a failure.
    """

    def __init__(self, settings: KafkaSettings, *, probe: Probe = probe_broker,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self._servers = tuple(settings.bootstrap_servers)
        self._tls = settings.security_protocol.upper().endswith("SSL")
        self._probe, self._clock = probe, clock
        self.reachability = Reachability(",".join(self._servers), clock=clock)
        self._probe_lock = threading.Lock()
        self._last_probe: float | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kafka-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def check(self) -> bool:
        """Probe the broker now; True when one bootstrap server answered."""
        with self._probe_lock:
            failure = self._probe(self._servers, self._tls, PROBE_TIMEOUT_SECONDS)
            self._last_probe = self._clock.monotonic()
        if failure is None:
            self.reachability.succeeded()
        else:
            self.reachability.failed(failure)
        return failure is None

    def level_for_failure(self, exc: BaseException | None = None) -> int:
        """The level a stage logs one of its Kafka failures at: INFO when the group moved on,
        DEBUG when the broker is unreachable (this watch has said so once), else WARNING."""
        if isinstance(exc, GROUP_MOVED_ON):
            return logging.INFO
        last = self._last_probe
        if last is None or self._clock.monotonic() - last > _FRESH_SECONDS:
            self.check()
        return logging.DEBUG if self.reachability.down else logging.WARNING

    def is_ready(self, grace_seconds: float) -> bool:
        return self.reachability.down_for() <= grace_seconds

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.check()
            self._clock.wait(self._stopping, PROBE_INTERVAL_SECONDS)

    def close(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=PROBE_TIMEOUT_SECONDS * len(self._servers) + 1)

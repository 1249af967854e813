"""The one loop every consuming stage runs in (match and alert, embedded and Kafka alike).

The runner owns what the stages share: the loop, retrying what is known to be transient, and
shutdown. A stage only says how to do one step.

- A :class:`monitor.errors.RecoverableError` (a broker away, a busy state file: the transport
  rewound, nothing of the step is visible) is logged at the level the stage gives (an outage
  is said once per process, not once per step) and the step is tried again after a backoff
  from the one retry policy, for as long as it takes.
- Anything else is a bug, or a state no retry can mend (a fenced producer): it is logged with
  its traceback, the stage is closed, and the error goes up, so that the process stops with a
  non-zero status instead of looking alive while doing nothing.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from monitor.errors import RecoverableError
from monitor.retry import RetryPolicy

log = logging.getLogger(__name__)

# Unlimited attempts: a stage waits out an outage however long it lasts (its readiness check
# says it is not ready meanwhile).
STAGE_RETRY = RetryPolicy(max_attempts=None, base_delay_seconds=0.5, max_delay_seconds=10.0)


class Stage(Protocol):
    name: str

    def step(self) -> int:
        """Do one unit of work (waiting a little when there is none); how much was done."""
        ...

    def failure_level(self, error: BaseException) -> int: ...

    def close(self) -> None: ...


@dataclass
class StageFailed:
    """The first stage of a process that stopped on an error, and the error (the service
    reads it to exit non-zero)."""

    stage: str | None = None
    error: BaseException | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, stage: str, error: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.stage, self.error = stage, error


def run_stage(stage: Stage, stopping: threading.Event, *, retry: RetryPolicy = STAGE_RETRY,
              rng: random.Random | None = None,
              wait: Callable[[float], object] | None = None) -> None:
    """Step ``stage`` until ``stopping`` is set, then close it. Raises what is not transient
    (after closing the stage). ``wait`` sleeps between retries (``stopping.wait`` by default,
    so a stop is never held up by a backoff)."""
    rng = rng or random.Random()
    pause = wait or stopping.wait
    failures = 0
    try:
        while not stopping.is_set():
            try:
                stage.step()
            except RecoverableError as exc:
                failures += 1
                delay = retry.delay(failures, rng=rng)
                log.log(stage.failure_level(exc), "%s: %s; retrying in %.1f s", stage.name,
                        exc, delay)
                pause(delay)
                continue
            if failures:
                log.info("%s: working again after %d failed attempt(s)", stage.name, failures)
                failures = 0
    except Exception:
        log.exception("%s: stopped by an error that retrying cannot mend; the process stops",
                      stage.name)
        raise
    finally:
        stage.close()
        log.info("%s: stopped", stage.name)


def stage_thread(stage: Stage, stopping: threading.Event, failed: StageFailed
                 ) -> threading.Thread:
    """A thread running ``stage``; an error it cannot retry is recorded in ``failed`` and
    stops the whole process (``stopping`` is set), rather than dying unseen."""

    def target() -> None:
        try:
            run_stage(stage, stopping)
        except BaseException as exc:
            failed.record(stage.name, exc)
            stopping.set()

    return threading.Thread(target=target, name=stage.name, daemon=True)

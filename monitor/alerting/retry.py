"""How often and how soon a failed delivery is tried again: one policy object, pure.

The outbox asks two questions after a failure (after arroyo's ``utils/retries.py``):

- :func:`is_retryable` -- is this error worth another attempt at all?
- :meth:`RetryPolicy.next_delay` -- after ``attempt`` failed attempts, how long to wait, or
  ``None`` to give up (the alert then goes to ``monitor.dlq``).

Backoff doubles from ``base_delay_seconds`` up to ``max_delay_seconds`` with equal jitter, as
``monitor/feeds/schedule.py`` does for feeds: never sooner than half the backoff, spread over the
other half, so alerts that failed together do not retry together.

Retry-After (HTTP 429/503) is honoured in full, never shortened: trying sooner than the receiver
asked earns another 429 and wastes an attempt. It may exceed ``max_delay_seconds`` (that cap is
for our own guesses) up to ``max_retry_after_seconds``; a receiver asking for more than that gets
no more waiting, the policy gives up and the alert is dead-lettered, where ops can see it and
replay it, instead of sitting silently in the outbox for hours.

Nothing here reads the clock or sleeps: delays are returned, and the caller adds them to its
injected clock's ``now``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from monitor.errors import RecoverableError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts, exponential backoff with equal jitter and a cap, Retry-After handling.

    ``max_attempts`` counts every attempt, the first included: 1 means never retry.
    """

    max_attempts: int = 6
    base_delay_seconds: float = 5.0
    max_delay_seconds: float = 300.0
    jitter: bool = True
    max_retry_after_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"retry policy: max_attempts must be >= 1, got {self.max_attempts}")
        if not 0 < self.base_delay_seconds <= self.max_delay_seconds:
            raise ValueError("retry policy: need 0 < base_delay_seconds <= max_delay_seconds")
        if self.max_retry_after_seconds < self.max_delay_seconds:
            raise ValueError("retry policy: max_retry_after_seconds < max_delay_seconds")

    def backoff_seconds(self, attempt: int) -> float:
        """The capped backoff after ``attempt`` failed attempts, before jitter."""
        exponent = min(max(attempt, 1) - 1, 60)  # 2**60 base delays exceed any cap
        return min(self.max_delay_seconds, self.base_delay_seconds * 2.0**exponent)

    def next_delay(self, attempt: int, retry_after_seconds: float | None = None,
                   rng: random.Random | None = None) -> float | None:
        """Seconds to wait after ``attempt`` (1-based) failed attempts; None means give up.

        Gives up when ``attempt >= max_attempts`` or when the receiver's Retry-After exceeds
        ``max_retry_after_seconds``. ``rng`` is injected for reproducible jitter.
        """
        if attempt >= self.max_attempts:
            return None
        if retry_after_seconds is not None and retry_after_seconds > self.max_retry_after_seconds:
            return None
        base = self.backoff_seconds(attempt)
        delay = base
        if self.jitter:
            delay = base / 2 + (rng or random.Random()).uniform(0, base / 2)
        if retry_after_seconds is not None:
            delay = max(delay, retry_after_seconds)
        return delay


def is_retryable(error: BaseException) -> bool:
    """Whether another attempt may succeed.

    - a ``RecoverableError`` is retryable unless it says ``permanent`` (a ``DeliveryError``
      for an HTTP 4xx rejection, say);
    - ``InvalidInputError`` and ``ConfigError`` are not: the same input fails the same way;
    - anything else is a bug, not a delivery failure: not retried, so it surfaces at once.
    """
    if isinstance(error, RecoverableError):
        return not bool(getattr(error, "permanent", False))
    return False

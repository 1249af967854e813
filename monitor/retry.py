"""How soon to try again after a failure: one policy for every retry in the monitor, pure.

After arroyo's ``utils/retries.py``, a caller asks two questions after a failure:

- :func:`is_retryable` -- is this error worth another attempt at all?
- :meth:`RetryPolicy.next_delay` -- after ``attempt`` failed attempts, how long to wait, or
  ``None`` to give up.

:func:`parse_retry_after` reads the HTTP header for both kinds of caller (a feed's server, a
webhook receiver).

Backoff doubles from ``base_delay_seconds`` up to ``max_delay_seconds`` with equal jitter: never
sooner than half the backoff, spread over the other half, so that things which failed together
(feeds behind one outage, alerts to one receiver) do not retry together.

A Retry-After (HTTP 429/503) is honoured in full, never shortened: trying sooner than the server
asked earns another refusal. It may exceed ``max_delay_seconds`` (that cap is for our own
guesses) up to ``max_retry_after_seconds``. Asked for more than that, a policy with a number of
attempts gives up (an alert is dead-lettered, where ops can see it, instead of sitting silently
for hours); an unlimited one (``max_attempts=None``: a feed, a stage's run loop) cannot give up
and waits ``max_retry_after_seconds``.

Nothing here reads the clock or sleeps: delays are returned, and the caller adds them to its
injected clock's ``now``. Imports nothing of the monitor but :mod:`monitor.errors`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from monitor.errors import RecoverableError

# 2**60 base delays exceed any cap; the exponent stops there so huge counts cannot overflow.
_MAX_EXPONENT = 60


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts, exponential backoff with equal jitter and a cap, Retry-After handling.

    ``max_attempts`` counts every attempt, the first included: 1 means never retry, ``None``
    means never give up. ``jitter=False`` waits the plain backoff (reproducible, for tests and
    for a caller whose first retry is already spread).
    """

    max_attempts: int | None = 6
    base_delay_seconds: float = 5.0
    max_delay_seconds: float = 300.0
    jitter: bool = True
    max_retry_after_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"retry policy: max_attempts must be >= 1, got {self.max_attempts}")
        if not 0 < self.base_delay_seconds <= self.max_delay_seconds:
            raise ValueError("retry policy: need 0 < base_delay_seconds <= max_delay_seconds")
        if self.max_retry_after_seconds < self.max_delay_seconds:
            raise ValueError("retry policy: max_retry_after_seconds < max_delay_seconds")

    def backoff_seconds(self, attempt: int) -> float:
        """The capped backoff after ``attempt`` failed attempts, before jitter."""
        exponent = min(max(attempt, 1) - 1, _MAX_EXPONENT)
        return min(self.max_delay_seconds, self.base_delay_seconds * 2.0**exponent)

    def next_delay(self, attempt: int, retry_after_seconds: float | None = None,
                   rng: random.Random | None = None) -> float | None:
        """Seconds to wait after ``attempt`` (1-based) failed attempts; None means give up.

        Gives up, unless attempts are unlimited, when ``attempt >= max_attempts`` or when the
        server's Retry-After exceeds ``max_retry_after_seconds``. ``rng`` is injected for
        reproducible jitter.
        """
        if self.max_attempts is not None and (
                attempt >= self.max_attempts or (retry_after_seconds is not None
                                                 and retry_after_seconds
                                                 > self.max_retry_after_seconds)):
            return None
        return self.delay(attempt, retry_after_seconds, rng)

    def delay(self, attempt: int, retry_after_seconds: float | None = None,
              rng: random.Random | None = None) -> float:
        """:meth:`next_delay` without giving up: the jittered backoff, stretched to the
        Retry-After (counted up to ``max_retry_after_seconds``)."""
        delay = self.backoff_seconds(attempt)
        if self.jitter:
            delay = delay / 2 + (rng or random.Random()).uniform(0, delay / 2)
        return self.at_least_retry_after(delay, retry_after_seconds)

    def at_least_retry_after(self, delay: float, retry_after_seconds: float | None) -> float:
        """``delay``, or the Retry-After when longer (counted up to ``max_retry_after_seconds``)."""
        if retry_after_seconds is None:
            return delay
        return max(delay, min(retry_after_seconds, self.max_retry_after_seconds))


def is_retryable(error: BaseException) -> bool:
    """Whether another attempt may succeed.

    - a ``RecoverableError`` is retryable unless it says ``permanent`` (a ``DeliveryError``
      for an HTTP 4xx rejection, say);
    - ``InvalidInputError`` and ``ConfigError`` are not: the same input fails the same way;
    - anything else is a bug, not a passing failure: not retried, so it surfaces at once.
    """
    if isinstance(error, RecoverableError):
        return not bool(getattr(error, "permanent", False))
    return False


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds from ``now``: delta-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # '²'.isdigit() is True too
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - now).total_seconds())

"""When to poll a feed next: a pure function of what the last poll said (after miniflux's
``ScheduleNextCheck``).

- success: the feed's interval, stretched to the server's Cache-Control max-age (up to a cap);
- failure: exponential backoff from the interval, capped, with jitter so that feeds failing
  together do not retry together; never given up, it keeps being tried at the cap. The backoff
  is :class:`monitor.retry.RetryPolicy` with unlimited attempts; the first failure keeps the
  feed on its interval, unjittered (the success jitter spread the feeds already);
- a Retry-After always wins when it asks for more time (up to the cap).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from monitor.retry import RetryPolicy

# max-age only: s-maxage is for shared caches, and a poller is a private one (RFC 9111 5.2.2.10).
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SchedulePolicy:
    backoff_cap_seconds: float = 3600.0
    max_age_cap_seconds: float = 6 * 3600.0
    jitter_ratio: float = 0.1

    def backoff(self, interval_seconds: float, *, jitter: bool = True) -> RetryPolicy:
        """A failing feed's retries: from its interval, doubling up to the cap, never given up;
        a Retry-After counts up to the cap too."""
        cap = self.backoff_cap_seconds
        # min(): an interval beyond the cap is retried at the cap, as every later failure is.
        return RetryPolicy(max_attempts=None, base_delay_seconds=min(interval_seconds, cap),
                           max_delay_seconds=cap, jitter=jitter, max_retry_after_seconds=cap)


def next_delay_seconds(
    interval_seconds: float,
    consecutive_failures: int,
    policy: SchedulePolicy,
    *,
    retry_after_seconds: float | None = None,
    max_age_seconds: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds until the next poll; ``consecutive_failures`` is 0 after a success."""
    rng = rng or random.Random()
    backoff = policy.backoff(interval_seconds, jitter=consecutive_failures > 1)
    if consecutive_failures > 0:
        return backoff.delay(consecutive_failures, retry_after_seconds, rng)
    delay = interval_seconds
    if max_age_seconds:
        delay = max(delay, min(max_age_seconds, policy.max_age_cap_seconds))
    delay += rng.uniform(0, interval_seconds * policy.jitter_ratio)
    return backoff.at_least_retry_after(delay, retry_after_seconds)


def parse_max_age(cache_control: str | None) -> float | None:
    """The max-age of a Cache-Control header, in seconds, or None (RFC 9111 5.2.2.1)."""
    if not cache_control or "no-cache" in cache_control.lower():
        return None
    match = _MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else None

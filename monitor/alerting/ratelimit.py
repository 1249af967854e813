"""Per-receiver rate limits over a sliding window (pure: every call is given ``now``).

A receiver with ``RateLimit(count, per_seconds)`` gets at most ``count`` notifications in any
window of ``per_seconds``. The limiter only answers and records; holding what is over the
limit is the grouper's job (see :mod:`monitor.alerting.grouping`), so nothing is dropped here.
Receivers without a limit are never recorded and always allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.config.alerts import RateLimit


class RateLimiter:
    """Sliding-window counts of notifications per receiver; JSON-able via ``to_dict``."""

    def __init__(self, limits: Mapping[str, RateLimit] | None = None) -> None:
        self._limits = dict(limits or {})
        self._sent_at: dict[str, list[float]] = {}

    def allowance(self, receiver: str, now: float) -> int | None:
        """How many more notifications ``receiver`` may get at ``now``; None means no limit."""
        limit = self._limits.get(receiver)
        if limit is None:
            return None
        recent = self._prune(receiver, now, limit)
        return max(0, limit.count - len(recent))

    def allowed_at(self, receiver: str) -> float | None:
        """The earliest time the next notification fits in the window; None when it fits
        whenever (no limit, or fewer than ``count`` recorded sends)."""
        limit = self._limits.get(receiver)
        sent = self._sent_at.get(receiver, [])
        if limit is None or len(sent) < limit.count:
            return None
        return sent[-limit.count] + limit.per_seconds

    def record(self, receiver: str, now: float) -> None:
        """Count one notification to ``receiver`` at ``now``."""
        limit = self._limits.get(receiver)
        if limit is None:
            return
        recent = self._prune(receiver, now, limit)
        recent.append(now)
        recent.sort()

    def _prune(self, receiver: str, now: float, limit: RateLimit) -> list[float]:
        recent = [t for t in self._sent_at.get(receiver, []) if t > now - limit.per_seconds]
        self._sent_at[receiver] = recent
        return recent

    def to_dict(self) -> dict[str, Any]:
        return {receiver: list(times) for receiver, times in self._sent_at.items() if times}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any],
                  limits: Mapping[str, RateLimit] | None = None) -> RateLimiter:
        """Rebuild from :meth:`to_dict`; the limits come from the current config, not the state,
        so an edited ``rate_limit`` applies at once to the sends already recorded."""
        limiter = cls(limits)
        limiter._sent_at = {str(r): sorted(float(t) for t in times)
                            for r, times in state.items()}
        return limiter

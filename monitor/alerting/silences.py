"""Silences: an editor's "not now" for a claim, a tag, a source or a relation (pure).

The record and its checks are :mod:`monitor.config.silences` (re-exported here); this module
says which silence covers a match. A match that every matcher of an unexpired silence holds for
is suppressed: the alerter counts and logs it with the silence's id, it is never dropped
silently. Storage (the state file, or the silences topic in Kafka mode) is the transport's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from monitor.alerting.routes import MatchLabels, all_hold
from monitor.config.silences import SILENCE_LABELS, Silence, parse_silence_matchers
from monitor.model import Match

__all__ = ["SILENCE_LABELS", "Silence", "active_silence", "parse_silence_matchers"]


def active_silence(match: Match, claim_tags: tuple[str, ...], silences: Iterable[Silence],
                   now: datetime) -> Silence | None:
    """The unexpired silence covering ``match``, or None.

    When several cover it, the one that lasts longest (then the smallest id) is returned, so
    the answer does not depend on the order silences were stored in.
    """
    labels = MatchLabels.of(match, claim_tags)
    covering = [s for s in silences if s.is_active(now) and all_hold(s.matchers, labels)]
    if not covering:
        return None
    return min(covering, key=lambda s: (-s.expires_at.timestamp(), s.id))

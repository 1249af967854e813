"""Silences: an editor's "not now" for a claim, a tag, a source or a relation (pure).

A silence holds matchers in the routing syntax (``claim = lukashenko-generals-2022``,
``tag = belarus``, ``source =~ "TASS|RIA Novosti"``, ``relation != denial``), limited to the
labels claim, tag/tags, source and relation, an expiry and a reason. A match that every
matcher of an unexpired silence holds for is suppressed: the alerter counts and logs it with
the silence's id, it is never dropped silently. Storage and ``monitor silence`` live elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.alerting.routes import MatchLabels, all_hold
from monitor.config.matchers import Matcher, parse_matcher
from monitor.errors import InvalidInputError
from monitor.model import Match

SILENCE_LABELS = ("claim", "tags", "source", "relation")


@dataclass(frozen=True, slots=True)
class Silence:
    """Suppress matches that all ``matchers`` hold for, until ``expires_at`` (exclusive).

    Times must be timezone-aware (UTC); ValueError otherwise, so that a naive datetime never
    compares wrongly against the clock.
    """

    id: str
    matchers: tuple[Matcher, ...]
    expires_at: datetime
    reason: str
    created_by: str
    created_at: datetime

    def __post_init__(self) -> None:
        if self.expires_at.tzinfo is None or self.created_at.tzinfo is None:
            raise ValueError(f"silence {self.id}: expires_at and created_at must be UTC-aware")
        if not self.matchers:
            raise ValueError(f"silence {self.id}: needs at least one matcher")

    def is_active(self, now: datetime) -> bool:
        return now < self.expires_at

    def silences(self, labels: MatchLabels) -> bool:
        return all_hold(self.matchers, labels)


def parse_silence_matchers(texts: Sequence[str]) -> tuple[Matcher, ...]:
    """Parse a silence's matchers; InvalidInputError names the matcher and the problem.

    At least one matcher is required: a silence that matches everything would hide every alert.
    """
    if not texts:
        raise InvalidInputError("silence: give at least one matcher, e.g. 'claim = my-claim'")
    matchers = []
    for index, text in enumerate(texts, start=1):
        try:
            matcher = parse_matcher(text)
        except ValueError as exc:
            raise InvalidInputError(f"silence: matcher {index}: {exc}") from exc
        if matcher.label not in SILENCE_LABELS:
            raise InvalidInputError(
                f"silence: matcher {index} {text!r}: a silence matches on claim, tag, source "
                f"or relation, not {matcher.label!r}")
        matchers.append(matcher)
    return tuple(matchers)


def active_silence(match: Match, claim_tags: tuple[str, ...], silences: Iterable[Silence],
                   now: datetime) -> Silence | None:
    """The unexpired silence covering ``match``, or None.

    When several cover it, the one that lasts longest (then the smallest id) is returned, so
    the answer does not depend on the order silences were stored in.
    """
    labels = MatchLabels.of(match, claim_tags)
    covering = [s for s in silences if s.is_active(now) and s.silences(labels)]
    if not covering:
        return None
    return min(covering, key=lambda s: (-s.expires_at.timestamp(), s.id))

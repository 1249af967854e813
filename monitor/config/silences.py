"""Silences as written by ``monitor silence add``: the record, its checks and its codec.

A silence holds matchers in the routing syntax (``claim = lukashenko-generals-2022``,
``tag = belarus``, ``source =~ "TASS|RIA Novosti"``, ``relation != denial``), limited to the
labels claim, tag/tags, source and relation, an expiry and a reason. What a silence does to a
match is the alert stage's (:mod:`monitor.alerting.silences`); where silences are kept is the
transport's (:mod:`monitor.bus.silences`). Both stores hold the same record; on the Kafka topic
it is the JSON of :func:`encode_silence`, keyed by id.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.config.matchers import Matcher, parse_matcher
from monitor.errors import InvalidInputError

SILENCE_LABELS = ("claim", "tags", "source", "relation")
SCHEMA = 1


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


def new_silence(matchers: Sequence[str], expires_at: datetime, reason: str, created_by: str,
                now: datetime) -> Silence:
    """A new silence with a fresh id; InvalidInputError for no reason, an expiry not in the
    future or a bad matcher."""
    if not reason.strip():
        raise InvalidInputError("silence: give a reason, for the editors who come after you")
    if expires_at <= now:
        raise InvalidInputError(f"silence: expiry {expires_at.isoformat()} is not in the "
                                "future")
    return Silence(uuid.uuid4().hex[:12], parse_silence_matchers(matchers), expires_at,
                   reason.strip(), created_by, now)


def encode_silence(silence: Silence) -> bytes:
    """Matchers in their text form (``str(matcher)`` parses back exactly), times ISO-8601."""
    return json.dumps({
        "schema": SCHEMA, "id": silence.id, "matchers": [str(m) for m in silence.matchers],
        "expires_at": silence.expires_at.isoformat(), "reason": silence.reason,
        "created_by": silence.created_by, "created_at": silence.created_at.isoformat(),
    }, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_silence(data: bytes) -> Silence:
    """InvalidInputError when ``data`` is not a silence of a schema this version reads."""
    try:
        raw = json.loads(data)
        if raw.get("schema") != SCHEMA:
            raise ValueError(f"unsupported schema {raw.get('schema')!r}")
        return Silence(str(raw["id"]), parse_silence_matchers(raw["matchers"]),
                       datetime.fromisoformat(raw["expires_at"]), str(raw["reason"]),
                       str(raw["created_by"]), datetime.fromisoformat(raw["created_at"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidInputError(f"silence: unreadable record: {exc}") from exc

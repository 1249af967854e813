"""Alert grouping in the manner of Prometheus Alertmanager (pure: every call is given ``now``).

A match routed to a receiver joins the group keyed by (receiver, route path, the values of the
route's ``group_by`` labels: claim, relation, source, language). Timing:

- ``group_wait``: a new group waits this long before its first notification, so three wires
  carrying the same denial within a minute become one message listing all three.
- ``group_interval``: after a notification, matches new to the group go out no sooner than
  this after the previous one. A match reaching a group that has been quiet for longer still
  waits ``group_wait`` (a burst after a lull is batched too): a group is due at
  ``max(last_sent + group_interval, first_pending + group_wait)``.
- ``repeat_interval``: NOT a re-send. Alertmanager re-sends still-firing alerts; a match is an
  event, not a state that stays firing or resolves, so re-sending what the desk has already
  seen is noise, and it would break "no duplicate alert". Here a group with nothing pending is
  retired once ``repeat_interval`` has passed since its last notification: the next match for
  that key starts a fresh group (``group_wait`` again, ``first=True``, "new activity"), and the
  grouper's memory stays bounded. Each match is sent at most once per group.
- Rate limits per receiver (:mod:`monitor.alerting.ratelimit`): a due group over its
  receiver's limit is held, not dropped; its matches stay pending and go out, with any that
  joined meanwhile, in the next allowed notification. Holds are counted (:meth:`pop_held`).

``due()`` only proposes; ``mark_sent()`` (call it once the notification is safely in the
outbox) advances the group. State round-trips through ``to_dict``/``from_dict`` as JSON.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.alerting.ratelimit import RateLimiter
from monitor.alerting.routes import RoutedTo
from monitor.config.alerts import RateLimit
from monitor.model import Match, match_fields, match_from_fields

STATE_VERSION = 1


@dataclass(frozen=True, slots=True, order=True)
class GroupKey:
    receiver: str
    route_path: str
    labels: tuple[tuple[str, str], ...]  # (label, value) in the route's group_by order

    def __str__(self) -> str:
        labels = ",".join(f"{label}={value}" for label, value in self.labels)
        return f"{self.receiver}/{self.route_path}/{{{labels}}}"


def _label_value(match: Match, label: str) -> str:
    values = {"claim": match.claim_id, "relation": match.relation,
              "source": match.item.source, "language": match.item.language or ""}
    return values[label]


def group_key(match: Match, routed: RoutedTo) -> GroupKey:
    """The group ``match`` joins at ``routed``; KeyError for a label outside GROUP_LABELS."""
    labels = tuple((label, _label_value(match, label)) for label in routed.group_by)
    return GroupKey(routed.receiver, routed.route_path, labels)


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to send: the group's pending matches. ``first`` is the group's first."""

    key: GroupKey
    receiver: str
    matches: tuple[Match, ...]
    first: bool

    @property
    def match_ids(self) -> tuple[str, ...]:
        return tuple(m.match_id for m in self.matches)

    @property
    def notification_id(self) -> str:
        """Stable for the same group and matches: an idempotency key for channels."""
        text = "\n".join([str(self.key), *sorted(self.match_ids)])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(slots=True)
class _Group:
    key: GroupKey
    timings: tuple[float, float, float]  # group_wait, group_interval, repeat_interval
    pending: list[Match] = field(default_factory=list)
    sent_ids: set[str] = field(default_factory=set)
    first_pending_at: float | None = None
    last_sent_at: float | None = None
    held: bool = False

    def due_at(self) -> float | None:
        if not self.pending or self.first_pending_at is None:
            return None
        wait, interval, _ = self.timings
        ready = self.first_pending_at + wait
        return ready if self.last_sent_at is None else max(ready, self.last_sent_at + interval)

    def retired(self, now: float) -> bool:
        return (not self.pending and self.last_sent_at is not None
                and now >= self.last_sent_at + self.timings[2])

    def knows(self, match_id: str) -> bool:
        return match_id in self.sent_ids or any(m.match_id == match_id for m in self.pending)


class Grouper:
    """Groups routed matches into notifications. Not thread-safe; never reads a clock."""

    def __init__(self, rate_limits: Mapping[str, RateLimit] | None = None) -> None:
        self._groups: dict[GroupKey, _Group] = {}
        self._limiter = RateLimiter(rate_limits)
        self._held: Counter[str] = Counter()

    def add(self, match: Match, routed: RoutedTo, now: float) -> bool:
        """Put ``match`` in its group; False when the group already has it (pending or sent)."""
        key = group_key(match, routed)
        group = self._groups.get(key)
        if group is None or group.retired(now):
            group = self._groups[key] = _Group(key, _timings(routed))
        group.timings = _timings(routed)  # a reloaded config applies from the next match
        if group.knows(match.match_id):
            return False
        group.pending.append(match)
        if group.first_pending_at is None:
            group.first_pending_at = now
        return True

    def due(self, now: float) -> list[Notification]:
        """Notifications to send at ``now``, oldest due first, within each receiver's limit.

        A due group over its limit is held (counted once per hold). Calling ``due`` again
        before ``mark_sent`` proposes the same notifications again.
        """
        self._retire(now)
        ready = [(at, g.key) for g in self._groups.values()
                 if (at := g.due_at()) is not None and at <= now]
        taken: Counter[str] = Counter()
        found = []
        for _, key in sorted(ready):
            group = self._groups[key]
            allowance = self._limiter.allowance(key.receiver, now)
            if allowance is not None and taken[key.receiver] >= allowance:
                self._hold(group)
                continue
            taken[key.receiver] += 1
            found.append(Notification(key, key.receiver, tuple(group.pending),
                                      first=group.last_sent_at is None))
        return found

    def mark_sent(self, notification: Notification, now: float) -> None:
        """Record that ``notification`` was handed over (enqueued) at ``now``."""
        self._limiter.record(notification.receiver, now)
        group = self._groups.get(notification.key)
        if group is None:
            return
        sent = set(notification.match_ids)
        group.pending = [m for m in group.pending if m.match_id not in sent]
        group.sent_ids |= sent
        group.last_sent_at, group.held = now, False
        # Matches that joined between due() and now wait a full cycle from here.
        group.first_pending_at = now if group.pending else None

    def next_wakeup(self) -> float | None:
        """When ``due`` may next return something (rate limits included); None when idle."""
        times = []
        for group in self._groups.values():
            at = group.due_at()
            if at is not None:
                allowed = self._limiter.allowed_at(group.key.receiver)
                times.append(at if allowed is None else max(at, allowed))
        return min(times, default=None)

    def drop(self, pairs: set[tuple[str, str]]) -> int:
        """Forget (match_id, receiver) pairs this process no longer owns (a Kafka rebalance
        moved their partition), waiting or handed over but not recorded yet; returns how many
        were waiting. Handed-over ones are forgotten too: were the partition to come back to
        this process, they must be taken in again, not skipped as sent (a chaos run lost five
        alerts that way: their "pending" write failed in a broker outage, the partition left
        and came back, and the group still listed them as sent)."""
        dropped = 0
        for group in self._groups.values():
            receiver = group.key.receiver
            kept = [m for m in group.pending if (m.match_id, receiver) not in pairs]
            dropped += len(group.pending) - len(kept)
            group.pending = kept
            group.sent_ids -= {match_id for match_id, to in pairs if to == receiver}
            if not kept:
                group.first_pending_at = None
        return dropped

    def pending_count(self) -> int:
        return sum(len(g.pending) for g in self._groups.values())

    def pop_held(self) -> dict[str, int]:
        """Holds per receiver since the last call (for the rate-limited metric)."""
        held, self._held = dict(self._held), Counter()
        return held

    def _hold(self, group: _Group) -> None:
        if not group.held:
            group.held = True
            self._held[group.key.receiver] += 1

    def _retire(self, now: float) -> None:
        for key in [k for k, g in self._groups.items() if g.retired(now)]:
            del self._groups[key]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able snapshot (matches in their wire form); see :meth:`from_dict`."""
        return {"version": STATE_VERSION, "groups": [_group_dict(g) for g in
                                                     self._groups.values()],
                "sent_at": self._limiter.to_dict()}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any],
                  rate_limits: Mapping[str, RateLimit] | None = None) -> Grouper:
        """Rebuild from :meth:`to_dict`; ValueError for an unknown state version."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"grouper: unsupported state version {state.get('version')!r}")
        grouper = cls(rate_limits)
        grouper._limiter = RateLimiter.from_dict(state["sent_at"], rate_limits)
        for raw in state["groups"]:
            group = _group_from(raw)
            grouper._groups[group.key] = group
        return grouper


def _timings(routed: RoutedTo) -> tuple[float, float, float]:
    return (routed.group_wait_seconds, routed.group_interval_seconds,
            routed.repeat_interval_seconds)


def _group_dict(group: _Group) -> dict[str, Any]:
    key = group.key
    return {"receiver": key.receiver, "route_path": key.route_path,
            "labels": [list(pair) for pair in key.labels], "timings": list(group.timings),
            "pending": [match_fields(m) for m in group.pending],
            "sent_ids": sorted(group.sent_ids), "first_pending_at": group.first_pending_at,
            "last_sent_at": group.last_sent_at, "held": group.held}


def _group_from(raw: Mapping[str, Any]) -> _Group:
    key = GroupKey(raw["receiver"], raw["route_path"],
                   tuple((str(label), str(value)) for label, value in raw["labels"]))
    wait, interval, repeat = (float(t) for t in raw["timings"])
    return _Group(key, (wait, interval, repeat),
                  pending=[match_from_fields(m) for m in raw["pending"]],
                  sent_ids=set(raw["sent_ids"]), first_pending_at=raw["first_pending_at"],
                  last_sent_at=raw["last_sent_at"], held=bool(raw["held"]))

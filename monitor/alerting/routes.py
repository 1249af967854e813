"""Which receivers a match goes to: what a matcher means for a match, and the routing tree
walk (pure).

A matcher is ``label op value``, parsed by :mod:`monitor.config.matchers` (its syntax is
configuration). ``=~`` and ``!~`` must match the whole value. A match carries several tags (its
claim's): a positive matcher (``=``, ``=~``) holds when any tag satisfies it, a negative one
(``!=``, ``!~``) when no tag satisfies its positive twin. An absent language is ``""``.

Routing follows Prometheus Alertmanager: depth-first from the root, which matches everything;
a node that matches tries its children in order, the first matching child wins unless it has
``continue: true`` (then later siblings are tried too); when no child matches, the node itself
takes the match. Children inherit receiver, group_by and timings they do not set.
"""

from __future__ import annotations

import operator as op
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from monitor.config.alerts import RouteConfig
from monitor.config.matchers import Matcher
from monitor.model import Match


@dataclass(frozen=True, slots=True)
class MatchLabels:
    """The values matchers look at, taken from a match and its claim's tags."""

    claim: str
    tags: tuple[str, ...]
    relation: str
    score: float
    source: str
    language: str

    @classmethod
    def of(cls, match: Match, claim_tags: tuple[str, ...]) -> MatchLabels:
        return cls(claim=match.claim_id, tags=claim_tags, relation=match.relation,
                   score=match.score, source=match.item.source,
                   language=match.item.language or "")


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": op.ge, ">": op.gt, "<=": op.le, "<": op.lt}


def matcher_holds(matcher: Matcher, labels: MatchLabels) -> bool:
    """Whether ``labels`` satisfy ``matcher`` (any-of for tags, see the module docstring)."""
    if matcher.number is not None:
        return _COMPARE[matcher.operator](labels.score, matcher.number)
    values: tuple[str, ...] = (
        (labels.tags or ("",)) if matcher.label == "tags" else (getattr(labels, matcher.label),))
    if matcher.pattern is not None:
        hit = any(matcher.pattern.fullmatch(value) for value in values)
    else:
        hit = matcher.value in values
    return hit if matcher.operator in ("=", "=~") else not hit


def all_hold(matchers: Sequence[Matcher], labels: MatchLabels) -> bool:
    return all(matcher_holds(matcher, labels) for matcher in matchers)


@dataclass(frozen=True, slots=True)
class RoutedTo:
    """One destination of a match: the receiver, the route that chose it (``root.routes[0]``)
    and the effective grouping and timing of that route."""

    receiver: str
    route_path: str
    group_by: tuple[str, ...]
    group_wait_seconds: float
    group_interval_seconds: float
    repeat_interval_seconds: float


def route_match(match: Match, claim_tags: tuple[str, ...], tree: RouteConfig) -> list[RoutedTo]:
    """Every receiver ``match`` goes to, in tree order; never empty (the root takes the rest).

    ``tree`` must be a validated root (receiver and timings set, see ``RootRoute``); a root
    lacking them raises ValueError.
    """
    return _walk(tree, _root(tree), MatchLabels.of(match, claim_tags))


def _walk(node: RouteConfig, here: RoutedTo, labels: MatchLabels) -> list[RoutedTo]:
    found: list[RoutedTo] = []
    for index, child in enumerate(node.routes):
        if not all_hold(child.matchers, labels):
            continue
        found += _walk(child, _inherit(child, here, f"{here.route_path}.routes[{index}]"),
                       labels)
        if not child.continue_:
            break
    return found or [here]


def _root(tree: RouteConfig) -> RoutedTo:
    wait, interval, repeat = (
        tree.group_wait_seconds, tree.group_interval_seconds, tree.repeat_interval_seconds)
    if (tree.receiver is None or tree.group_by is None
            or wait is None or interval is None or repeat is None):
        raise ValueError("route_match: the tree must be a validated root route (RootRoute)")
    return RoutedTo(tree.receiver, "root", tree.group_by, wait, interval, repeat)


def _inherit(node: RouteConfig, parent: RoutedTo, path: str) -> RoutedTo:
    """``node``'s settings, each taken from the parent where the node leaves it unset."""
    return RoutedTo(
        receiver=node.receiver or parent.receiver, route_path=path,
        group_by=parent.group_by if node.group_by is None else node.group_by,
        group_wait_seconds=_own(node.group_wait_seconds, parent.group_wait_seconds),
        group_interval_seconds=_own(node.group_interval_seconds, parent.group_interval_seconds),
        repeat_interval_seconds=_own(node.repeat_interval_seconds,
                                     parent.repeat_interval_seconds),
    )


def _own(value: float | None, inherited: float) -> float:
    return inherited if value is None else value

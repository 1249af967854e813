"""Which receivers a match goes to: the matcher language and the routing tree walk (pure).

A matcher is ``label op value`` (the syntax of alerts/routes.yaml and of silences):

    relation = denial            claim = lukashenko-generals-2022     language = ru
    source != TASS               tags =~ "ukraine-war|belarus"        score >= 70

Labels: claim, tags (alias tag), relation, score, source, language. ``=~`` and ``!~`` are
regular expressions that must match the whole value. A match carries several tags (its
claim's): a positive matcher (``=``, ``=~``) holds when any tag satisfies it, a negative one
(``!=``, ``!~``) when no tag satisfies its positive twin. An absent language is ``""``.

Routing follows Prometheus Alertmanager: depth-first from the root, which matches everything;
a node that matches tries its children in order, the first matching child wins unless it has
``continue: true`` (then later siblings are tried too); when no child matches, the node itself
takes the match. Children inherit receiver, group_by and timings they do not set.
"""

from __future__ import annotations

import operator as op
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from monitor.model import Match

if TYPE_CHECKING:  # config imports this module for the matcher language
    from monitor.config.alerts import RouteConfig


@dataclass(frozen=True, slots=True)
class Matcher:
    """One parsed ``label op value`` condition; ``str()`` gives text that parses back to it."""

    label: str
    operator: str
    value: str
    pattern: re.Pattern[str] | None = None  # for =~ and !~
    number: float | None = None  # for score

    def __str__(self) -> str:
        return f'{self.label} {self.operator} "{self.value}"'


MATCH_LABELS = ("claim", "tags", "relation", "score", "source", "language")
RELATIONS = ("follow-up", "denial", "corroboration")
_LABEL_ALIASES = {"tag": "tags"}
_NUMERIC_OPERATORS = (">=", ">", "<=", "<")
_MATCHER = re.compile(r"^\s*([A-Za-z_]+)\s*(=~|!~|!=|>=|<=|=|>|<)\s*(.*?)\s*$")
_OPERATOR_CHARS = "=!~<>"


def parse_matcher(text: str) -> Matcher:
    """Parse ``relation = denial``, ``tags =~ "belarus|ukraine-war"``, ``score >= 70`` ...

    ValueError names the matcher and what is wrong with it.
    """
    found = _MATCHER.match(text)
    if not found:
        raise ValueError(f"matcher {text!r}: expected 'label op value', e.g. 'relation = denial'")
    label, operator, raw = found.groups()
    label = _LABEL_ALIASES.get(label, label)
    if label not in MATCH_LABELS:
        raise ValueError(f"matcher {text!r}: unknown label {label!r} "
                         f"(use {', '.join(MATCH_LABELS)})")
    if raw[:1] and raw[0] in _OPERATOR_CHARS:
        bad = operator + raw[:len(raw) - len(raw.lstrip(_OPERATOR_CHARS))]
        raise ValueError(f"matcher {text!r}: unknown operator {bad!r} "
                         "(use =, !=, =~, !~, and for score >=, >, <=, <)")
    quoted = len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'"
    value = raw[1:-1] if quoted else raw
    if not value and not quoted:
        raise ValueError(f"matcher {text!r}: missing value (write \"\" for an empty one)")
    return _typed(text, label, operator, value)


def _typed(text: str, label: str, operator: str, value: str) -> Matcher:
    if label == "score" or operator in _NUMERIC_OPERATORS:
        return _score(text, label, operator, value)
    if operator in ("=~", "!~"):
        try:
            return Matcher(label, operator, value, pattern=re.compile(value))
        except re.error as exc:
            raise ValueError(f"matcher {text!r}: invalid regular expression: {exc}") from exc
    if label == "relation" and value not in RELATIONS:
        raise ValueError(f"matcher {text!r}: unknown relation {value!r} "
                         f"(use {', '.join(RELATIONS)})")
    return Matcher(label, operator, value)


def _score(text: str, label: str, operator: str, value: str) -> Matcher:
    if label != "score" or operator not in _NUMERIC_OPERATORS:
        raise ValueError(f"matcher {text!r}: only score compares, and only with >=, >, <=, <")
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number <= 100:
        raise ValueError(f"matcher {text!r}: score must be a number from 0 to 100")
    return Matcher(label, operator, value, number=number)


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

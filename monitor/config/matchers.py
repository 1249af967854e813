"""The matcher language of alerts/routes.yaml and of silences: ``label op value``, parsed.

    relation = denial            claim = lukashenko-generals-2022     language = ru
    source != TASS               tags =~ "ukraine-war|belarus"        score >= 70

Labels: claim, tags (alias tag), relation, score, source, language. ``=~`` and ``!~`` are
regular expressions that must match the whole value. Parsing is configuration (config/alerts.py
validates routes with it); what a matcher means for a match is
:func:`monitor.alerting.routes.matcher_holds`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


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

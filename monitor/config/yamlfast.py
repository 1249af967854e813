"""A fast reader for plain config YAML: libyaml's C parser, ruamel.yaml's YAML 1.2 meaning.

ruamel.yaml's round-trip parser, which keeps the line of every key for error messages, is pure
Python: a 50,000-feed feeds.yaml (8 MB) takes it 70-120 s. Here PyYAML's C parser (libyaml)
composes the nodes and :func:`load_plain` builds plain dicts, lists and scalars from them,
resolving plain scalars with ruamel.yaml's own YAML 1.2 table (so ``no`` stays a string and
``017`` is not octal, as on the round-trip path).

The contract is "the same data as ruamel.yaml's round-trip load, or :class:`NotPlain`":
whatever this reader is not sure to read the same way is handed back, and the caller parses
the text the round-trip way, within :mod:`monitor.config.yamlguard`'s bounds. Handed back:
any alias (so the alias bounds are never needed here: nothing is shared), nesting near
:data:`~monitor.config.yamlguard.MAX_DEPTH`, duplicate or unhashable keys (ruamel refuses
them with a line), merge keys, explicit tags (even ``!!str``), directives,
numbers and timestamps in any but their plain decimal and date forms, YAML 1.1 line breaks,
and whatever libyaml itself rejects. Nothing here carries line numbers: a caller that finds
the data invalid parses again the round-trip way to say where.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from ruamel.yaml.resolver import implicit_resolvers
from yaml import YAMLError
from yaml._yaml import CParser
from yaml.nodes import Node, ScalarNode, SequenceNode

from monitor.config.yamlguard import MAX_DEPTH

_CORE = "tag:yaml.org,2002:"
# Tags no document can write (tags are URI characters) for untagged nodes. A node with an
# explicit tag, even ``!!str``, is handed back: ruamel keeps it as a TaggedScalar.
_PLAIN, _QUOTED, _SEQ, _MAP = " plain", " quoted", " seq", " map"
# YAML 1.1 reads these as line breaks, ruamel.yaml's scanner too; rare enough to hand back.
_OTHER_BREAKS = ("\x85", "\u2028", "\u2029")


class NotPlain(Exception):
    """The text is not one this reader is sure to read as ruamel.yaml does; the reason why."""


def load_plain(text: str) -> Any:
    """The document in ``text`` as plain Python data; :class:`NotPlain` when unsure."""
    if text.startswith("%") or "\n%" in text:
        raise NotPlain("a directive (%YAML or %TAG) may change how the document reads")
    if any(mark in text for mark in _OTHER_BREAKS):
        raise NotPlain("a NEL or Unicode line separator")
    with _gc_paused():
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
        except YAMLError as exc:
            raise NotPlain(f"libyaml: {exc}") from exc
        finally:
            loader.dispose()
        return None if root is None else _Builder("*" in text).build(root, 0)


@contextmanager
def _gc_paused() -> Iterator[None]:
    # Composing allocates millions of nodes and marks that form no cycles; collections run
    # while they pile up (each one scanning all the survivors so far) double the time.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Loader(CParser):
    """libyaml's parser and composer, tagging every untagged plain scalar ``_PLAIN``."""

    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:  # called for untagged nodes only
            return _PLAIN if implicit[0] else _QUOTED
        return _SEQ if kind is SequenceNode else _MAP

    def descend_resolver(self, parent: Node | None, index: Any) -> None:
        """No path-dependent tags (the composer calls this and the next for every node)."""

    def ascend_resolver(self) -> None:
        pass


def _ruamel_rules() -> dict[str, list[tuple[str, Callable[[str], Any]]]]:
    """ruamel.yaml's YAML 1.2 implicit resolvers (tag, match) by first character, in order."""
    rules: dict[str, list[tuple[str, Callable[[str], Any]]]] = {}
    for versions, tag, regexp, first in implicit_resolvers:
        if (1, 2) in versions:
            match = regexp.match  # ruamel compiles lazily, behind a proxy; once is enough
            for char in first:
                rules.setdefault(char, []).append((tag.removeprefix(_CORE), match))
    return rules


_RULES = _ruamel_rules()
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _null(value: str) -> None:
    return None


def _bool(value: str) -> bool:
    return value.lower() == "true"


def _strict(pattern: re.Pattern[str], convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def construct(value: str) -> Any:
        if not pattern.fullmatch(value):
            raise NotPlain(f"{value!r} is a number or timestamp in a form not read here")
        return convert(value)

    return construct


def _date(value: str) -> date:
    year, month, day = value.split("-")
    try:
        return date(int(year), int(month), int(day))
    except ValueError as exc:  # ruamel's error names the line
        raise NotPlain(f"{value!r} is not a date") from exc


_CONSTRUCT: dict[str, Callable[[str], Any]] = {
    "null": _null, "bool": _bool, "int": _strict(_INT, int), "float": _strict(_FLOAT, float),
    "timestamp": _strict(_DATE, _date),
}


def _scalar(node: ScalarNode) -> Any:
    value = node.value
    if node.tag == _PLAIN:
        for tag, match in _RULES.get(value[:1], ()):
            if match(value):
                construct = _CONSTRUCT.get(tag)
                if construct is None:  # merge (<<) and value (=)
                    raise NotPlain(f"{value!r} has a meaning not read here ({tag})")
                return construct(value)
        return value
    if node.tag == _QUOTED:
        return value
    raise NotPlain(f"tag {node.tag}")


class _Builder:
    """Plain data from the composed nodes; an alias (a node reached twice) is handed back.

    Only a text with a ``*`` can hold an alias, so only then is every node remembered.
    """

    def __init__(self, may_alias: bool) -> None:
        self._seen: set[int] | None = set() if may_alias else None

    def build(self, node: Node, depth: int) -> Any:
        if self._seen is not None:
            if id(node) in self._seen:
                raise NotPlain("an alias")
            self._seen.add(id(node))
        if type(node) is ScalarNode:
            return _scalar(node)
        if depth >= MAX_DEPTH - 1:  # near the bound: the guarded parser says where
            raise NotPlain(f"nested {depth} levels deep")
        if node.tag == _SEQ:
            return [self.build(child, depth + 1) for child in node.value]
        if node.tag == _MAP:
            return self._mapping(node, depth + 1)
        raise NotPlain(f"tag {node.tag}")

    def _mapping(self, node: Node, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        build = self.build
        for key_node, value_node in node.value:
            key = build(key_node, depth)
            try:
                duplicate = key in result
            except TypeError as exc:
                raise NotPlain("a key that is a list or mapping") from exc
            if duplicate:
                raise NotPlain(f"duplicate key {key!r}")
            result[key] = build(value_node, depth)
        return result

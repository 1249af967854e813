"""Bounds on what a YAML config file may cost to read: size, nesting, and alias expansion.

An alias (``*name``) is a reference to an anchored node, so nine lines that each repeat the
previous one nine times (a "billion laughs" alias bomb) stand for 9**9 nodes. The parser shares
them, but everything that walks the document afterwards (validation, copies, error messages
that print a value) walks the expansion. Anchors themselves stay welcome (shared route
settings): only the expansion is bounded.

:class:`BoundedComposer` counts, while it composes, how many nodes each node stands for once
expanded (memoized per node, so counting is linear in the text) and stops at the alias that
crosses :data:`MAX_ALIAS_NODES`, at a recursive alias, or at nesting deeper than
:data:`MAX_DEPTH`, raising :class:`Refused` with that position. Nothing is expanded to count.
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

# 50,000 feeds take 8 MB: twice that is generous for any config file, and it bounds the nodes
# written out; aliases are the only way to stand for more than is written.
MAX_FILE_BYTES = 16 * 1024 * 1024
# Nodes the aliases of one document may add; shared settings need a few hundred.
MAX_ALIAS_NODES = 100_000
# Config files nest a handful of levels (routes a few more); the limit keeps recursion safe.
MAX_DEPTH = 64


class Refused(YAMLError):
    """A document over a bound; ``line`` is 1-based, ``reason`` says which bound and why."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line, self.reason = line, reason


class BoundedComposer(Composer):
    """ruamel's composer, refusing documents that expand past the bounds above."""

    def compose_document(self) -> Any:
        self._sizes: dict[int, int] = {}  # id(node) -> nodes it stands for; kept alive by tree
        self._added = 0
        return super().compose_document()

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:  # an undefined one is ruamel's error
                self._count_alias(event, target)
            return super().compose_node(parent, index)
        if self.depth >= MAX_DEPTH:
            raise Refused(_line(event), f"nested more than {MAX_DEPTH} levels deep")
        node = super().compose_node(parent, index)
        self._sizes[id(node)] = 1 + sum(self._sizes[id(child)] for child in _children(node))
        return node

    def _count_alias(self, event: AliasEvent, target: Node) -> None:
        size = self._sizes.get(id(target))
        if size is None:  # anchored nodes are complete before anything after them is read
            raise Refused(_line(event), f"alias *{event.anchor} refers to a node that "
                                        "contains it (a recursive alias)")
        self._added += size
        if self._added > MAX_ALIAS_NODES:
            raise Refused(_line(event), f"alias *{event.anchor} makes the aliases stand for "
                                        f"more than {MAX_ALIAS_NODES:,} nodes (a YAML alias "
                                        "bomb?); repeat less through anchors")


def guarded(yaml: YAML | None = None) -> YAML:
    """``yaml`` (a new round-trip YAML by default) loading through :class:`BoundedComposer`."""
    yaml = yaml or YAML(typ="rt")
    if yaml.Composer is BoundedComposer:
        return yaml
    if hasattr(yaml, "_composer"):  # ruamel keeps the first composer it made
        raise ValueError("yamlguard: guard a YAML instance before its first load")
    yaml.Composer = BoundedComposer
    return yaml


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _line(event: Any) -> int:
    return int(event.start_mark.line) + 1

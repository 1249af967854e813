"""The package graph of ``monitor/``: no cycles between units, and no unit importing upward.

A unit is a subpackage (``monitor.feeds``) or a top-level module (``monitor.service``); the
package's own ``__init__`` (``__version__``) is the unit ``monitor``. Every import counts: at
module level, inside functions, and under ``if TYPE_CHECKING``, because each is a dependency
someone has to understand. Imports inside one unit are its own business.

On a failure the message prints the whole graph, layer by layer, and the files behind each
offending arrow.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "monitor"

# Bottom to top. A unit may import units of its own layer or of layers below, never above.
LAYERS: tuple[tuple[str, ...], ...] = (
    # What everything may use: the version, the exception tree, secret redaction, the messages
    # and their codecs, the clock, the retry policy, links into the claim desk.
    ("monitor", "monitor.errors", "monitor.redact", "monitor.model", "monitor.clock",
     "monitor.retry", "monitor.links"),
    # Settings and the configuration files.
    ("monitor.config",),
    # Local resources and observability: the state file, metrics (and the per-feed table
    # behind them), logging, the health server and its checks, reloading.
    ("monitor.store", "monitor.metrics", "monitor.feed_table", "monitor.feed_metrics",
     "monitor.logsetup", "monitor.health", "monitor.readiness", "monitor.reload"),
    # Plumbing: broker clients, topics, logs and codecs; the loop a stage runs in.
    ("monitor.bus", "monitor.runner"),
    # The stages, each with its core; the claim desk, which reads what the match stage wrote.
    ("monitor.feeds", "monitor.match", "monitor.alerting", "monitor.desk"),
    # Measuring the stages on labelled data.
    ("monitor.evaluate", "monitor.desk_eval"),
    # Composition: the service, one-shot runs, the status summary.
    ("monitor.service", "monitor.once", "monitor.status"),
    # The command line.
    ("monitor.cli", "monitor.__main__"),
)

STAGES = frozenset(LAYERS[4])
# The stages share a layer but not their insides: an import between two of them must be named
# here with why, or it fails. There is none: what they share lives below them (the claims
# reach the alert stage as a function the service passes in).
STAGE_EDGES: dict[tuple[str, str], str] = {}

Edge = tuple[str, str]
Graph = dict[Edge, list[str]]  # (from unit, to unit) -> "file:line" of each import


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return (REPO / relative).with_suffix(".py").is_file() or (
        REPO / relative / "__init__.py").is_file()


def unit_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def imported_modules(path: Path) -> Iterator[tuple[str, int]]:
    """Every module ``path`` imports, with the line: ``from a import b`` is ``a.b`` when that
    is a module, else ``a``; relative imports are resolved against the file's package."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield (submodule if is_module(submodule) else base), node.lineno


def unit_graph() -> Graph:
    graph: dict[Edge, set[str]] = defaultdict(set)
    for path in sorted(PACKAGE.rglob("*.py")):
        source = unit_of(module_name(path))
        for target, line in imported_modules(path):
            if target != "monitor" and not target.startswith("monitor."):
                continue
            if unit_of(target) != source:
                graph[source, unit_of(target)].add(f"{path.relative_to(REPO)}:{line}")
    return {edge: sorted(places) for edge, places in graph.items()}


def layer_of(unit: str) -> int | None:
    return next((n for n, layer in enumerate(LAYERS) if unit in layer), None)


def cycles(edges: set[Edge]) -> list[list[str]]:
    """The strongly connected components with more than one unit (Tarjan)."""
    successors: dict[str, list[str]] = defaultdict(list)
    for source, target in sorted(edges):
        successors[source].append(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(unit: str) -> None:
        index[unit] = low[unit] = len(index)
        stack.append(unit)
        for successor in successors[unit]:
            if successor not in index:
                visit(successor)
                low[unit] = min(low[unit], low[successor])
            elif successor in stack:
                low[unit] = min(low[unit], index[successor])
        if low[unit] == index[unit]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == unit:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for unit in sorted({unit for edge in edges for unit in edge}):
        if unit not in index:
            visit(unit)
    return found


def units() -> set[str]:
    return {unit_of(module_name(path)) for path in PACKAGE.rglob("*.py")}


def drawn(graph: Graph) -> str:
    """The graph, layer by layer from the top, each unit with the units it imports."""
    present = units()
    lines = ["monitor/ import graph (top layer first):"]
    targets: dict[str, list[str]] = defaultdict(list)
    for source, target in sorted(graph):
        targets[source].append(target.removeprefix("monitor.") if target != "monitor"
                               else "monitor")
    for number in reversed(range(len(LAYERS))):
        lines.append(f"  layer {number}:")
        for unit in (unit for unit in LAYERS[number] if unit in present):
            lines.append(f"    {unit} -> {', '.join(targets[unit]) or '(nothing)'}")
    unplaced = sorted(unit for unit in present if layer_of(unit) is None)
    lines += [f"  unplaced: {unit} -> {', '.join(targets[unit])}" for unit in unplaced]
    return "\n".join(lines)


def described(graph: Graph, edges: list[Edge]) -> str:
    return "\n".join(f"  {source} -> {target}: {', '.join(graph[source, target])}"
                     for source, target in edges)


def checked(graph: Graph) -> set[Edge]:
    return set(graph)


def test_every_unit_has_a_layer() -> None:
    graph = unit_graph()
    unplaced = sorted(unit for unit in units() if layer_of(unit) is None)
    assert not unplaced, (f"units in no layer of LAYERS: {', '.join(unplaced)}; place each "
                          f"where it belongs\n{drawn(graph)}")


def test_no_cycles_between_units() -> None:
    graph = unit_graph()
    edges = checked(graph)
    found = cycles(edges)
    report = [described(graph, sorted(edge for edge in edges
                                      if edge[0] in cycle and edge[1] in cycle))
              for cycle in found]
    assert not found, ("import cycles between units:\n" + "\n".join(
        f"{' <-> '.join(cycle)}\n{lines}" for cycle, lines in zip(found, report, strict=True))
        + f"\n{drawn(graph)}")


def test_no_unit_imports_a_higher_layer() -> None:
    graph = unit_graph()
    upward = sorted(
        (source, target) for source, target in checked(graph)
        if (low := layer_of(source)) is not None and (high := layer_of(target)) is not None
        and high > low)
    assert not upward, (f"imports of a higher layer:\n{described(graph, upward)}\n"
                        f"{drawn(graph)}")


def test_stages_import_each_other_only_where_declared() -> None:
    graph = unit_graph()
    between = sorted(edge for edge in checked(graph)
                     if edge[0] in STAGES and edge[1] in STAGES and edge not in STAGE_EDGES)
    assert not between, (f"imports between stages not in STAGE_EDGES:\n"
                         f"{described(graph, between)}\n{drawn(graph)}")


def test_allowed_edges_still_exist() -> None:
    """An allowance outliving its import would let the import come back unnoticed."""
    graph = unit_graph()
    stale = sorted(STAGE_EDGES.keys() - graph.keys())
    assert not stale, (f"allowed edges that no longer exist, remove them from STAGE_EDGES: "
                       f"{stale}\n{drawn(graph)}")

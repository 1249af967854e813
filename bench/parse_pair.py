"""The project's parse path and fastfeedparser, document by document, robust to a shared machine.

    .venv/bin/python bench/parse_pair.py [--data DIR] [--repeat N]

For each repetition and each document of the benchmark corpus (default
``<repo>/../shared/feeds/bench``), ``parse_feed`` then ``fastfeedparser.parse`` are timed in
CPU seconds, side by side. The figure is the sum over documents of each one's fastest
repetition: a burst of load from the neighbours spoils one document's time in one
repetition, not a whole run. Prints one JSON line: both sums, their ratio, the per-repetition
totals and ratios, and which ``monitor`` was imported.

To compare two versions of the project in the same minutes, run this twice at the same time
from outside the repository, once with ``PYTHONPATH`` set to an old work tree (``git worktree
add``), once with it set to this one: both processes see the same load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import fastfeedparser  # type: ignore[import-untyped]

import monitor.feeds.parse as parse_module
from monitor.errors import ParseError
from monitor.feeds.parse import FeedSource

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "feeds" / "bench"
_SOURCE = FeedSource(feed_id="f", source="bench", language=None)
_FETCHED_AT = datetime(2026, 11, 28, tzinfo=UTC)


def project(body: bytes) -> None:
    with contextlib.suppress(ParseError):  # not a feed: timed too
        parse_module.parse_feed(body, None, _SOURCE, _FETCHED_AT)


def bare_fastfeedparser(body: bytes) -> None:
    # Its own errors on documents it cannot read: timed too.
    with contextlib.suppress(Exception):
        fastfeedparser.parse(body)


VARIANTS: dict[str, Callable[[bytes], None]] = {
    "project": project, "fastfeedparser": bare_fastfeedparser}


def measure(bodies: Sequence[bytes], repeat: int) -> dict[str, object]:
    fastest = {name: [float("inf")] * len(bodies) for name in VARIANTS}
    totals: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for variant in VARIANTS.values():  # warm-up: lazy imports, regex compilation
        variant(min(bodies, key=len))
    for _ in range(repeat):
        total = dict.fromkeys(VARIANTS, 0.0)
        for index, body in enumerate(bodies):
            for name, variant in VARIANTS.items():
                began = time.process_time()
                variant(body)
                seconds = time.process_time() - began
                total[name] += seconds
                fastest[name][index] = min(fastest[name][index], seconds)
        for name in VARIANTS:
            totals[name].append(round(total[name], 3))
    sums = {name: round(sum(times), 3) for name, times in fastest.items()}
    return {
        "benchmark": "parse_pair", "monitor": parse_module.__file__, "documents": len(bodies),
        "repeat": repeat, "sum_of_fastest_s": sums,
        "project_over_fastfeedparser": round(sums["project"] / sums["fastfeedparser"], 2),
        "totals_s": totals,
        "ratios_per_repetition": [round(p / f, 2) for p, f in
                                  zip(totals["project"], totals["fastfeedparser"], strict=True)],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"skipped: no documents under {args.data}")
        return 0
    bodies = [path.read_bytes() for path in sorted(args.data.iterdir())
              if path.is_file() and not path.name.startswith(".")]
    print(json.dumps(measure(bodies, max(1, args.repeat)), separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Parse throughput: the project's bytes -> Items path beside bare feedparser, same bytes, same run.

    .venv/bin/python bench/parse.py [--data DIR] [--repeat N] [--profile N]

Every document of the benchmark corpus (default ``<repo>/../shared/feeds/bench``) is read into
memory first; then, per repetition, each variant is timed over all documents:

- ``project``: ``monitor.feeds.parse.parse_feed`` (feedparser without sanitizing or relative-URI
  resolution, then normalization: canonical URL, plain text, ids, hashes) -> ``Item``s;
- ``feedparser``: bare ``feedparser.parse(body)`` with its default options;
- ``feedparser-nosan``: ``feedparser.parse(body, sanitize_html=False,
  resolve_relative_uris=False)``, the feedparser part of the project path, for reference.

entries/s is the number of entries feedparser finds in the corpus divided by the seconds, the
same entry count for every variant, so the ratio project / feedparser is the ratio of times.
The best time of ``--repeat`` runs is reported. ``--profile N`` also runs cProfile over the
project path on N documents spread over the corpus and prints the top functions.
Exits 0 with "skipped: ..." when the documents are absent.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import platform
import pstats
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import feedparser

from monitor.errors import ParseError
from monitor.feeds.parse import FeedSource, TextLimits, parse_feed

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "feeds" / "bench"


@dataclass(frozen=True, slots=True)
class Document:
    name: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Count:
    """What one variant got out of one document."""

    entries: int  # feedparser entries (for the project path: items + entries without id)
    items: int = 0  # Items the project path produced (after its per-feed de-duplication)
    rejected: bool = False  # the project path raised ParseError: not a feed


@dataclass(slots=True)
class VariantResult:
    name: str
    runs: list[float] = field(default_factory=list)
    entries: int = 0
    items: int = 0
    rejected: int = 0

    @property
    def best(self) -> float:
        return min(self.runs)


Variant = Callable[[Document], Count]


def load_documents(data_dir: Path) -> list[Document]:
    """Every regular, non-hidden file of ``data_dir``, sorted by name, read into memory."""
    files = sorted(p for p in data_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    return [Document(path.name, path.read_bytes()) for path in files]


def data_dir_or_exit(value: Path | None) -> Path:
    """The documents' folder; prints "skipped: ..." and exits 0 when it is absent or empty."""
    data_dir = (value or DEFAULT_DATA).resolve()
    if not data_dir.is_dir() or not any(data_dir.iterdir()):
        print(f"skipped: benchmark feed documents not found at {data_dir} (use --data DIR)")
        raise SystemExit(0)
    return data_dir


def load_average() -> float:
    """The 1-minute load average: other work on the machine skews every figure here."""
    return round(os.getloadavg()[0], 2)


def max_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the variants ---------------------------------------------------------------------------

_FETCHED_AT = datetime(2026, 11, 28, tzinfo=UTC)
_LIMITS = TextLimits()


def project_path(doc: Document) -> Count:
    """The poller's parse step, given no Content-Type (the bytes alone decide the encoding)."""
    source = FeedSource(feed_id=doc.name, source="bench", language=None)
    try:
        parsed = parse_feed(doc.body, None, source, _FETCHED_AT, _LIMITS)
    except ParseError:
        return Count(entries=0, rejected=True)
    return Count(len(parsed.items) + parsed.entries_without_id, items=len(parsed.items))


def bare_feedparser(doc: Document) -> Count:
    return Count(len(feedparser.parse(doc.body).entries))


def feedparser_nosan(doc: Document) -> Count:
    document = feedparser.parse(doc.body, sanitize_html=False, resolve_relative_uris=False)
    return Count(len(document.entries))


VARIANTS: dict[str, Variant] = {
    "project": project_path,
    "feedparser": bare_feedparser,
    "feedparser-nosan": feedparser_nosan,
}


# --- timing ---------------------------------------------------------------------------------


def time_variant(variant: Variant, docs: Sequence[Document]) -> tuple[float, list[Count]]:
    gc.collect()
    counts: list[Count] = []
    start = time.perf_counter()
    for doc in docs:
        counts.append(variant(doc))
    return time.perf_counter() - start, counts


def run(docs: Sequence[Document], repeat: int) -> dict[str, VariantResult]:
    smallest = min(docs, key=lambda doc: len(doc.body))
    for variant in VARIANTS.values():  # warm-up: lazy imports, regex compilation
        variant(smallest)
    results = {name: VariantResult(name) for name in VARIANTS}
    for rep in range(repeat):
        for name, variant in VARIANTS.items():  # interleaved, so that drift hits all alike
            seconds, counts = time_variant(variant, docs)
            result = results[name]
            result.runs.append(seconds)
            result.entries = sum(c.entries for c in counts)
            result.items = sum(c.items for c in counts)
            result.rejected = sum(c.rejected for c in counts)
            print(f"  run {rep + 1}/{repeat} {name:<17} {seconds:8.2f} s", file=sys.stderr)
    return results


def profile_project(docs: Sequence[Document], count: int, top: int = 25) -> None:
    """cProfile the project path on ``count`` documents spread evenly over the corpus."""
    step = max(1, len(docs) // count)
    subset = list(docs[::step])[:count]
    profiler = cProfile.Profile()
    profiler.enable()
    for doc in subset:
        project_path(doc)
    profiler.disable()
    size = sum(len(doc.body) for doc in subset) / 1e6
    print(f"\ncProfile of the project path on {len(subset)} documents ({size:.1f} MB), "
          f"top {top} by cumulative time:")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(top)


# --- report ---------------------------------------------------------------------------------


def report(docs: Sequence[Document], results: dict[str, VariantResult], repeat: int,
           rss_after_load: float, data_dir: Path, load: float) -> dict[str, object]:
    entries = results["feedparser"].entries  # what feedparser finds: the common denominator
    total_bytes = sum(len(doc.body) for doc in docs)
    print(f"\n{len(docs)} documents, {total_bytes / 1e6:.1f} MB, {entries} feedparser entries "
          f"from {data_dir}; best of {repeat} run(s); Python {platform.python_version()}, "
          f"feedparser {feedparser.__version__}; load average at start {load}")
    print(f"{'variant':<18}{'seconds':>9}{'entries/s':>11}{'MB/s':>7}{'items':>8}"
          f"{'items/s':>9}{'rejected':>9}")
    figures: dict[str, dict[str, object]] = {}
    for name, result in results.items():
        rate = entries / result.best
        figures[name] = {
            "seconds": round(result.best, 3), "runs": [round(r, 3) for r in result.runs],
            "entries_per_s": round(rate, 1),
        }
        items = ""
        if name == "project":
            without_id = result.entries - result.items
            figures[name].update(items=result.items, entries_without_id=without_id,
                                 merged_duplicates=entries - result.entries,
                                 rejected_documents=result.rejected,
                                 items_per_s=round(result.items / result.best, 1))
            items = f"{result.items:>8}{result.items / result.best:>9.0f}{result.rejected:>9}"
        print(f"{name:<18}{result.best:>9.2f}{rate:>11.0f}{total_bytes / 1e6 / result.best:>7.2f}"
              f"{items}")
    project = results["project"]
    print(f"project: {project.items} items from {entries} entries; "
          f"{project.entries - project.items} without link, guid or title; "
          f"{entries - project.entries} merged as in-feed duplicates (same item id); "
          f"{project.rejected} document(s) rejected as not a feed")
    ratio = results["feedparser"].best / project.best
    ratio_nosan = results["feedparser-nosan"].best / project.best
    print(f"project / bare feedparser (entries/s): {ratio:.2f}x; "
          f"project / feedparser-nosan: {ratio_nosan:.2f}x")
    if results["feedparser-nosan"].entries != entries:
        print(f"note: feedparser-nosan found {results['feedparser-nosan'].entries} entries")
    peak = max_rss_mb()
    print(f"peak RSS {peak:.0f} MiB (after loading the documents: {rss_after_load:.0f} MiB)")
    return {
        "benchmark": "parse", "documents": len(docs), "bytes": total_bytes, "entries": entries,
        "repeat": repeat, "variants": figures, "ratio_project_vs_feedparser": round(ratio, 3),
        "ratio_project_vs_feedparser_nosan": round(ratio_nosan, 3),
        "peak_rss_mib": round(peak, 1), "rss_after_load_mib": round(rss_after_load, 1),
        "python": platform.python_version(), "feedparser": feedparser.__version__,
        "cpus": os.cpu_count(), "loadavg_1m_at_start": load,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=None,
                        help=f"folder of feed documents (default {DEFAULT_DATA})")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per variant")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also cProfile the project path on N documents")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    data_dir = data_dir_or_exit(args.data)
    load = load_average()
    docs = load_documents(data_dir)
    rss_after_load = max_rss_mb()
    results = run(docs, args.repeat)
    figures = report(docs, results, args.repeat, rss_after_load, data_dir, load)
    if args.profile:
        profile_project(docs, args.profile)
    print(json.dumps(figures, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())

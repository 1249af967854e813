"""Words alone: a hash of every match the matcher makes, to show a faster matcher changes none.

Run it on two trees (old in a worktree, new here) with the same ``PYTHONHASHSEED``; equal lines
mean equal matches: ids, claims, scores, relations and the whole evidence of each.

    PYTHONHASHSEED=0 PYTHONPATH=<tree> .venv/bin/python bench/match_hashes.py \
        [--sets 10375,100000,mixed]

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
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

# Appended, not put first: PYTHONPATH=<tree> decides which tree's matcher runs.
sys.path.append(str(Path(__file__).resolve().parents[1]))

from bench.match import REPO, TODAY, claim_set, load_claim_texts, load_items  # noqa: E402
from monitor.config.claims import ClaimConfig, load_claims  # noqa: E402
from monitor.errors import ParseError  # noqa: E402
from monitor.feeds.parse import FeedSource, parse_feed  # noqa: E402
from monitor.match.index import ClaimIndex  # noqa: E402
from monitor.match.matcher import match_item  # noqa: E402
from monitor.match.text import mostly_cyrillic  # noqa: E402
from monitor.model import Item  # noqa: E402


def digest(index: ClaimIndex, items: Iterable[Item]) -> list[object]:
    found, count = hashlib.sha256(), 0
    for item in items:
        for m in match_item(item, index, today=TODAY):
            found.update(repr((m.match_id, m.claim_id, m.score, m.relation,
                               m.evidence)).encode())
            count += 1
    return [count, found.hexdigest()[:16]]


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
    args = parser.parse_args()
    if not (args.data / "clef2020-task2").is_dir():
        print(f"skipped: evaluation data not found at {args.data}")
        return 0
    texts, items = load_claim_texts(args.data), load_items(args.data, 2000)
    hashes: dict[str, list[object]] = {}
    for name in args.sets.split(","):
        if name != "mixed":
            hashes[name] = digest(ClaimIndex(claim_set(texts, int(name))), items)
            continue
        russian = [i for i in load_items(args.data, 100_000) if i.language == "ru"]
        index = ClaimIndex(mixed_claims(texts, russian))
        hashes["mixed-feeds"] = digest(index, feed_items(args.data.parent / "feeds" / "real"))
        hashes["mixed-bench"] = digest(index, items)
    print(json.dumps(hashes))
    return 0


if __name__ == "__main__":
    sys.exit(main())

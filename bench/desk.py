"""The claim desk at scale: how fast its view takes in the match log, and how long its pages,
API and Atom feeds take to answer, over ``--matches`` stored matches.

Matches are synthetic (the desk reads what the match stage wrote; their text does not change
what is measured): ``--claims`` claims, one of them given ``--busy`` match records and the rest
sharing the remainder, every fifth item re-issued once (a second version of the item, which the
record and the counts fold). They are encoded as the match stage encodes them and applied to a
:class:`monitor.desk.store.StoredDeskView` in batches of 500, as the follower applies what it
reads; then the desk's Flask application answers each route through its test client (no
sockets: the figure is the desk's own work), first on a cold view and then again.

    .venv/bin/python bench/desk.py [--matches 100000] [--claims 80] [--busy 1000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from monitor.config.claims import ClaimConfig
from monitor.desk.app import create_app
from monitor.desk.auth import Access
from monitor.desk.store import Linked, StoredDeskView
from monitor.model import Evidence, Item, Match, encode_match

BATCH = 500
RELATIONS = ("follow-up", "follow-up", "follow-up", "denial", "corroboration")
OUTLETS = ("TASS", "RIA Novosti", "BelTA", "Ukrinform", "Reuters", "Interfax", "Meduza")
START = datetime(2026, 10, 1, tzinfo=UTC)


def claims(count: int) -> list[ClaimConfig]:
    return [ClaimConfig(id=f"claim-{n:04d}", text=f"Claim number {n} as the desk wrote it",
                        made_at=date(2026, 9, 1), tags=("bench", f"tag-{n % 7}"))
            for n in range(count)]


def match(serial: int, claim_id: str, version: int) -> Match:
    outlet = OUTLETS[serial % len(OUTLETS)]
    moment = START + timedelta(seconds=37 * serial)
    item = Item(item_id=f"item-{serial}", feed_id=outlet.lower(), source=outlet,
                url=f"https://{outlet.lower().replace(' ', '')}.example/{serial}", guid=None,
                title=f"Story {serial}: what {outlet} reported about the claim (v{version})",
                summary="A summary of the story, as long as a wire's lead paragraph. " * 3,
                language=("ru", "uk", "en", "be")[serial % 4], published_at=moment,
                fetched_at=moment + timedelta(minutes=2), content_hash=f"v{version}")
    evidence = Evidence(matched_terms=("claim", "number"), compared_with="en",
                        relation_cue="denies" if serial % 5 == 3 else "",
                        relation_confidence=0.8, quote="a quote from the story",
                        speaker="a spokesman")
    return Match(match_id=f"{claim_id}-{serial}-v{version}", claim_id=claim_id, item=item,
                 score=70.0 + serial % 30, relation=RELATIONS[serial % len(RELATIONS)],
                 evidence=evidence, matcher_version="bench")


def log_of(total: int, claim_ids: list[str], busy: int) -> list[Linked]:
    """``total`` match records in log order: ``busy`` of them for the first claim."""
    records: list[Linked] = []
    serial = 0
    while len(records) < total:
        claim_id = claim_ids[0] if serial < busy else claim_ids[1 + serial % (len(claim_ids) - 1)]
        versions = 2 if serial % 5 == 0 else 1
        for version in range(1, versions + 1):
            made = match(serial, claim_id, version)
            records.append(Linked(made, encode_match(made)))
        serial += 1
    return records[:total]


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--matches", type=int, default=100_000)
    parser.add_argument("--claims", type=int, default=80)
    parser.add_argument("--busy", type=int, default=1000, help="match records of the first claim")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    tracked = claims(args.claims)
    made = time.perf_counter()
    records = log_of(args.matches, [c.id for c in tracked], args.busy)
    print(f"{len(records):,} match records made in {time.perf_counter() - made:.1f} s "
          f"({args.claims} claims)")

    with tempfile.TemporaryDirectory() as folder:
        view = StoredDeskView(Path(folder, "desk.sqlite3"))
        view.start_over("bench")
        started = time.perf_counter()
        for at in range(0, len(records), BATCH):
            view.apply(records[at:at + BATCH], {0: at + BATCH})
        took = time.perf_counter() - started
        size = Path(folder, "desk.sqlite3").stat().st_size
        print(f"view: {len(records):,} records applied in {took:.2f} s "
              f"({len(records) / took:,.0f} records/s), {size / 2**20:.0f} MiB on disk")

        client = create_app(view, lambda: tracked, Access(), None).test_client()
        busy, quiet = tracked[0].id, tracked[-1].id
        others = (len(records) - args.busy) // max(1, args.claims - 1)
        print(f"the first claim has {args.busy:,} records, the others about {others:,} each")
        routes = {
            "list /": "/",
            "list filtered": "/?tag=tag-3&relation=denial&language=uk&q=number",
            "claim page (first)": f"/claims/{busy}",
            "claim page (another)": f"/claims/{quiet}",
            "api claims": "/api/claims",
            "api claim (first)": f"/api/claims/{busy}",
            "api items since (first)": f"/api/claims/{busy}/items?since=2026-10-02T00:00:00Z",
            "atom (first)": f"/claims/{busy}.atom",
        }
        print(f"{'route':28} {'first':>9} {'then, median of ' + str(args.repeat):>22}")
        for name, path in routes.items():
            def get(path: str = path) -> None:
                answer = client.get(path)
                if answer.status_code != 200:
                    raise SystemExit(f"{path}: status {answer.status_code}")
            first = timed(get)
            then = statistics.median(timed(get) for _ in range(args.repeat))
            print(f"{name:28} {first * 1000:>7.1f} ms {then * 1000:>19.1f} ms")
        view.close()


if __name__ == "__main__":
    main()

"""CPU of a first poll's commit in the state file, SQL alone: seen check, item log, seen-marks,
state, COMMIT (checkpoints included), statement by statement.

    .venv/bin/python bench/commit_sql.py [--polls 4000] [--items 32] [--group 1]
        [--checkpoint-pages N]

Each poll has ``--items`` items of its own with random ids and ~1 KB payloads (a cold round of
``bench/poll.py``: 32 items a feed, 1 KB encoded, ids from URLs), committed as
``SQLitePollState.commit_poll`` commits them for the embedded item log, ``--group`` polls a
transaction (what group commit does when polls queue). ``--checkpoint-pages`` overrides the
state file's ``wal_autocheckpoint`` (SQLite's default is 1,000). One thread, no network and no
GIL contention: what it shows is the SQL's own cost, which grows with the tables.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.parse import load_average  # noqa: E402
from monitor.bus.embedded import EmbeddedItemLog  # noqa: E402
from monitor.feeds import state  # noqa: E402
from monitor.model import FeedState, Item, encode_item  # noqa: E402
from monitor.store import Database  # noqa: E402

Poll = tuple[FeedState, list[Item], list[bytes]]


def make_polls(polls: int, items: int, rng: random.Random) -> list[Poll]:
    fetched = datetime.now(UTC)
    made: list[Poll] = []
    for n in range(polls):
        batch = [Item(item_id, f"f{n}", "wire", f"https://wire.example/{item_id}", None,
                      "t" * 80, "s" * 600, "en", None, fetched, f"{rng.getrandbits(64):016x}",
                      backlog=True)
                 for item_id in (f"{rng.getrandbits(128):032x}" for _ in range(items))]
        made.append((FeedState(f"f{n}", '"etag"', None, "h" * 64, 0, 1.0, None, 61.0), batch,
                     [encode_item(item) for item in batch]))
    return made


@contextmanager
def timed(spent: Counter[str], name: str) -> Iterator[None]:
    started = time.process_time()
    yield
    spent[name] += time.process_time() - started


def run(args: argparse.Namespace, path: Path) -> Counter[str]:
    database = Database(path)
    conn = database._connection  # noqa: SLF001 - statement by statement, as commit_poll runs
    if args.checkpoint_pages is not None:
        conn.execute(f"PRAGMA wal_autocheckpoint={args.checkpoint_pages}")
    log, store = EmbeddedItemLog(database), state.SQLitePollState(database)
    spent: Counter[str] = Counter()
    polls = make_polls(args.polls, args.items, random.Random(args.seed))
    for n, (feed_state, items, payloads) in enumerate(polls):
        now = time.time()
        with timed(spent, "seen check"):
            store.seen_hashes([item.item_id for item in items])
        rows = log.rows(items, now, payloads)
        if n % args.group == 0:
            with timed(spent, "BEGIN"):
                conn.execute("BEGIN IMMEDIATE")
        with timed(spent, "item log"):
            log.append(conn, rows)
        with timed(spent, "seen-marks"):
            state._mark_seen(conn, items, now)  # noqa: SLF001
        with timed(spent, "state"):
            state._save(conn, feed_state)  # noqa: SLF001
        if (n + 1) % args.group == 0 or n + 1 == len(polls):
            with timed(spent, "COMMIT"):
                conn.execute("COMMIT")
    database.close()
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--polls", type=int, default=4000)
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--group", type=int, default=1, help="polls a transaction")
    parser.add_argument("--checkpoint-pages", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    load = load_average()
    with tempfile.TemporaryDirectory(prefix="monitor-bench-commit-") as tmp:
        spent = run(args, Path(tmp) / "state.sqlite3")
    per_poll = {name: 1000 * seconds / args.polls for name, seconds in spent.items()}
    pages = args.checkpoint_pages or "the state file's"
    print(f"{args.polls} polls x {args.items} items, {args.group} a transaction, checkpoint "
          f"pages {pages} (load {load}): CPU ms a poll {sum(per_poll.values()):.3f}: "
          + ", ".join(f"{name} {ms:.3f}" for name, ms in per_poll.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

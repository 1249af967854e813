"""Polls with items that commit at once are written in one transaction: each poll's items,
seen-marks and state all or none, as when written alone."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.bus.embedded import EmbeddedItemLog, ItemRow
from monitor.errors import StoreError
from monitor.feeds.state import SQLitePollState
from monitor.model import FeedState, Item
from monitor.store import Database
from tests.support.waiting import eventually

FEEDS = 6


def _item(item_id: str, feed_id: str) -> Item:
    return Item(item_id, feed_id, "wire", None, None, f"title {item_id}", "summary", "en",
                None, datetime(2026, 12, 1, tzinfo=UTC), f"hash-{item_id}", backlog=True)


def _commit_at_once(store: SQLitePollState, db: Database, log: EmbeddedItemLog,
                    polls: Sequence[tuple[FeedState, list[Item]]]) -> list[BaseException | None]:
    """Commit ``polls`` from threads of their own while the file's lock is held here: the
    first takes its group (itself) and waits for the lock, the others queue behind it and
    make the next group. What each raised, None if nothing."""
    outcomes: list[BaseException | None] = [None] * len(polls)

    def commit(index: int) -> None:
        state, items = polls[index]
        try:
            report = store.commit_poll(log, state, items, 100.0)
            assert report.acknowledged == tuple(items)
        except BaseException as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=commit, args=(index,)) for index in range(len(polls))]
    with db.transaction():  # the file's lock: every poll waits behind it
        threads[0].start()
        eventually(lambda: store._committer.locked(), 10, "the first poll's group")  # noqa: SLF001
        for thread in threads[1:]:
            thread.start()
        eventually(lambda: len(store._waiting) == len(polls) - 1, 10,  # noqa: SLF001
                   "the other polls queued for the next group")
    for thread in threads:
        thread.join(10)
    return outcomes


def test_polls_that_commit_at_once_share_a_transaction(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.sqlite3")
    store, log = SQLitePollState(db), EmbeddedItemLog(db)
    # Every feed lists a story of its own and one they share (one outlet, several feeds).
    polls = [(FeedState(f"f{n}", etag=f'"{n}"', last_success_at=100.0),
              [_item(f"own-{n}", f"f{n}"), _item("shared", f"f{n}")]) for n in range(FEEDS)]
    statements: list[str] = []
    db._connection.set_trace_callback(statements.append)  # noqa: SLF001
    assert _commit_at_once(store, db, log, polls) == [None] * FEEDS
    db._connection.set_trace_callback(None)  # noqa: SLF001
    # The first poll alone, then the others together (and the test's own transaction).
    assert statements.count("BEGIN IMMEDIATE") == 1 + 2
    logged = [item.item_id for _, item in log.read_after(0)]
    assert sorted(logged) == sorted([f"own-{n}" for n in range(FEEDS)] + ["shared"])
    assert set(store.seen_hashes(logged)) == set(logged)
    reader = SQLitePollState(Database(tmp_path / "state.sqlite3"))
    assert [reader.load(f"f{n}").etag for n in range(FEEDS)] == [f'"{n}"' for n in range(FEEDS)]


class _FailingFor(EmbeddedItemLog):
    """An item log whose append fails for one item id, as a full disk would."""

    def __init__(self, database: Database, item_id: str) -> None:
        super().__init__(database)
        self._item_id = item_id

    def append(self, conn: sqlite3.Connection, rows: Sequence[ItemRow]) -> None:
        if any(row[0] == self._item_id for row in rows):
            raise StoreError("state file: database or disk is full")
        super().append(conn, rows)


def test_a_group_that_fails_writes_nothing_of_any_of_its_polls(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.sqlite3")
    store, log = SQLitePollState(db), _FailingFor(db, "own-3")
    for n in range(FEEDS):
        store.save(FeedState(f"f{n}", etag='"old"'))
    polls = [(FeedState(f"f{n}", etag='"new"', last_success_at=100.0),
              [_item(f"own-{n}", f"f{n}")]) for n in range(FEEDS)]
    outcomes = _commit_at_once(store, db, log, polls)
    failed = [n for n, exc in enumerate(outcomes) if exc is not None]
    assert failed == list(range(1, FEEDS))  # the failing poll's group, all of it
    assert all(isinstance(outcomes[n], StoreError) for n in failed)
    assert [item.item_id for _, item in log.read_after(0)] == ["own-0"]  # its own group
    failed_ids = [f"own-{n}" for n in failed]
    assert not set(failed_ids) & {item.item_id for _, item in log.read_after(0)}
    assert store.seen_hashes(failed_ids) == {}
    reader = SQLitePollState(Database(tmp_path / "state.sqlite3"))
    assert {reader.load(f"f{n}").etag for n in failed} == {'"old"'}
    assert {store.load(f"f{n}").etag for n in failed} == {'"old"'}


@pytest.mark.parametrize("writes", [1, 3])
def test_polls_committed_one_after_another_each_return_once_written(
        tmp_path: Path, writes: int) -> None:
    db = Database(tmp_path / "state.sqlite3")
    store, log = SQLitePollState(db), EmbeddedItemLog(db)
    for n in range(writes):
        report = store.commit_poll(log, FeedState("wire", etag=f'"{n}"'),
                                   [_item(f"story-{n}", "wire")], 100.0 + n)
        assert [item.item_id for item in report.acknowledged] == [f"story-{n}"]
        assert log.count() == n + 1
    assert SQLitePollState(Database(tmp_path / "state.sqlite3")).load("wire").etag \
        == f'"{writes - 1}"'

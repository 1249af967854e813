"""The state file's poll state: what a poll commits is on disk, and loads come from memory."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from monitor.bus.embedded import EmbeddedItemLog
from monitor.errors import StoreError
from monitor.feeds.fetch import ThreadPools
from monitor.feeds.netguard import AddressPolicy, Deadlines, GuardedBackend
from monitor.feeds.state import SQLitePollState
from monitor.model import FeedState
from monitor.store import Database


def test_a_poll_without_items_writes_its_state_to_the_file(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.sqlite3")
    store = SQLitePollState(db)
    state = FeedState("wire", etag='"v2"', last_success_at=100.0, next_check_at=160.0)
    report = store.commit_poll(EmbeddedItemLog(db), state, [], 100.0)
    assert report.acknowledged == () and report.failure is None
    assert SQLitePollState(Database(tmp_path / "state.sqlite3")).load("wire") == state


def test_loads_come_from_what_this_store_committed(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.sqlite3")
    store = SQLitePollState(db)
    assert store.load("wire") == FeedState("wire")  # nothing stored: a fresh state
    store.save(FeedState("wire", consecutive_failures=2, last_error="timed out"))
    # Written behind the store's back (no process does this; it shows where loads come from):
    with db.transaction() as conn:
        conn.execute("UPDATE feed_state SET last_error = 'changed' WHERE feed_id = 'wire'")
    assert store.load("wire").last_error == "timed out"
    assert SQLitePollState(db).load("wire").last_error == "changed"


def test_a_failed_write_leaves_the_loaded_state_as_it_was(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.sqlite3")
    store = SQLitePollState(db)
    store.save(FeedState("wire", etag='"v1"'))
    db.close()  # every later statement fails
    with pytest.raises(Exception):  # noqa: B017 - sqlite3.ProgrammingError: closed database
        store.save(FeedState("wire", etag='"v2"'))
    assert store.load("wire").etag == '"v1"'


def test_a_busy_state_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = SQLitePollState(Database(path))
    other = Database(path)
    other._connection.execute("PRAGMA busy_timeout = 0")  # noqa: SLF001
    store._db._connection.execute("PRAGMA busy_timeout = 50")  # noqa: SLF001
    other._connection.execute("BEGIN IMMEDIATE")  # noqa: SLF001 - another process writing
    try:
        with pytest.raises(StoreError, match="locked"):
            store.save(FeedState("wire"))
    finally:
        other._connection.execute("ROLLBACK")  # noqa: SLF001


def test_each_thread_has_its_own_connection_pool() -> None:
    pools = ThreadPools(GuardedBackend(AddressPolicy(), Deadlines()))
    mine = pools.current()
    assert pools.current() is mine
    theirs: list[object] = []
    thread = threading.Thread(target=lambda: theirs.append(pools.current()))
    thread.start()
    thread.join()
    assert theirs and theirs[0] is not mine
    pools.close()

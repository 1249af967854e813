"""The state file's poll state: what a poll commits is on disk, and loads come from memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.bus.embedded import EmbeddedItemLog
from monitor.errors import StoreError
from monitor.feeds.state import SQLitePollState
from monitor.feeds.state_writer import StateWriter
from monitor.model import FeedState
from monitor.store import Database
from tests.support.waiting import eventually


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


def test_after_load_all_a_feed_without_a_row_loads_fresh_without_a_query(
        tmp_path: Path) -> None:
    # A cold start: 10,000 feeds' first polls each asked the file for a row it did not have.
    db = Database(tmp_path / "state.sqlite3")
    SQLitePollState(db).save(FeedState("old", etag='"v1"'))
    store = SQLitePollState(db)
    assert [state.feed_id for state in store.load_all()] == ["old"]
    statements: list[str] = []
    db._connection.set_trace_callback(statements.append)  # noqa: SLF001
    assert store.load("new") == FeedState("new")
    assert store.load("old").etag == '"v1"'
    assert statements == []


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


def test_written_behind_a_state_reaches_the_file_and_a_newer_poll_is_not_overwritten(
        tmp_path: Path) -> None:
    db = Database(tmp_path / "state.sqlite3")
    store = SQLitePollState(db, write_behind=True)
    reader = SQLitePollState(Database(tmp_path / "state.sqlite3"))
    for n in range(200):  # 200 feeds' polls that published nothing
        store.commit_poll(EmbeddedItemLog(db), FeedState(f"f{n}", etag=f'"{n}"'), [], 1.0)
    store.commit_poll(EmbeddedItemLog(db), FeedState("f7", etag='"old"'), [], 1.0)
    store.save(FeedState("f7", etag='"newer"', consecutive_failures=1))  # a later, failed poll
    store.close()  # writes what still waits
    on_disk = {state.feed_id: state for state in reader.load_all()}
    assert len(on_disk) == 200
    assert on_disk["f7"].etag == '"newer"' and on_disk["f7"].consecutive_failures == 1
    assert on_disk["f150"].etag == '"150"'
    assert store.load("f7").etag == '"newer"'


def test_load_all_reads_the_states_still_waiting(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.sqlite3")
    store = SQLitePollState(db, write_behind=True)
    try:
        store.commit_poll(EmbeddedItemLog(db), FeedState("wire", etag='"v3"'), [], 1.0)
        assert [state.etag for state in store.load_all()] == ['"v3"']
    finally:
        store.close()


def test_a_busy_file_keeps_the_states_for_the_next_try(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.sqlite3"
    db = Database(path)
    db._connection.execute("PRAGMA busy_timeout = 20")  # noqa: SLF001
    other = Database(path)
    other._connection.execute("BEGIN IMMEDIATE")  # noqa: SLF001 - another process writing
    store = SQLitePollState(db, write_behind=True)
    store.commit_poll(EmbeddedItemLog(db), FeedState("wire", etag='"v1"'), [], 1.0)
    eventually(lambda: "not written yet" in caplog.text, 10, "the busy warning")
    other._connection.execute("ROLLBACK")  # noqa: SLF001
    eventually(lambda: SQLitePollState(other).load("wire").etag == '"v1"', 10,
               "the state written")
    store.close()
    assert caplog.text.count("not written yet") == 1


def test_a_bug_in_the_writer_stops_the_next_poll(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.sqlite3")

    def broken(_conn: object, _states: object) -> None:
        raise ValueError("a bug")

    writer = StateWriter(db, broken)
    writer.put(FeedState("wire"))
    with pytest.raises(RuntimeError, match="writer stopped"):
        eventually(lambda: writer.put(FeedState("wire")), 10, "the bug raised to a poll")
    writer.close()

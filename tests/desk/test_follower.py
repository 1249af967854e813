"""The desk's view follows the match log the same way in both modes (``pipeline``: the state
file, or a real Kafka broker): items published, matched, and the view shows them in log order
with their counts; it resumes from its positions, is rebuilt when deleted, two copies agree,
and a record that cannot be read is skipped and counted."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.bus.follow import MatchFollower
from monitor.bus.log import Record
from monitor.desk.follower import DeskFollower
from monitor.desk.store import StoredDeskView
from monitor.desk.view import MemoryDeskView
from monitor.errors import BusError, RecoverableError
from monitor.metrics import Metrics
from monitor.model import Match, decode_match, encode_match
from tests.contract.conftest import Pipeline
from tests.contract.test_match_contract import (
    MATCHING,
    UNRELATED,
    claims,  # noqa: F401  (a fixture)
    match_stage,
    step_until,
    story,
)
from tests.desk.factory import CLAIM, at, match
from tests.support.waiting import eventually


class Desk:
    """One copy of the desk: its view file and its follower, as the desk part builds them."""

    def __init__(self, pipeline: Pipeline, path: Path) -> None:
        self.metrics = Metrics(CollectorRegistry())
        self.view = StoredDeskView(path)
        self.follower = DeskFollower(self.view, pipeline.transport.match_follower, self.metrics)

    def catch_up(self, done: Callable[[], bool] | None = None) -> None:
        """Step as the runner would (retrying what is transient) until caught up and
        ``done()``."""
        def progressed() -> bool:
            with contextlib.suppress(RecoverableError):
                self.follower.step()
            return self.follower.caught_up() and (done is None or done())

        eventually(progressed, 60, "the desk's view up to date")

    def close(self) -> None:
        self.follower.close()
        self.view.close()

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels or {})


def logged(pipeline: Pipeline) -> list[Match]:
    """The readable matches of the log, in log order (per claim, as every reader sees it)."""
    found = []
    for _key, value in pipeline.read("matches"):
        with contextlib.suppress(Exception):
            found.append(decode_match(value))
    return found


def story_matches() -> list[Match]:
    return [match("first", outlet="BelTA", published=at(21)),
            match("copy", outlet="RIA", published=at(21, 13), reprint_of="first"),
            match("denial", relation="denial", published=at(22)),
            match("first", outlet="BelTA", relation="corroboration", published=at(21),
                  version="v2"),
            match("other", claim_id="another-claim", published=at(23))]


def append_matches(pipeline: Pipeline, matches: list[Match]) -> None:
    pipeline.append("matches", [(m.claim_id.encode(), encode_match(m)) for m in matches])


def test_items_published_and_matched_show_in_log_order_with_their_counts(
        pipeline: Pipeline, claims: Path, tmp_path: Path) -> None:  # noqa: F811
    items = [story(n, title) for n, title in enumerate(MATCHING + UNRELATED)]
    publisher = pipeline.transport.publisher()
    try:
        assert len(publisher.publish(items).acknowledged) == len(items)
    finally:
        publisher.close()
    metrics = Metrics(CollectorRegistry())
    stage = match_stage(pipeline, claims, metrics)

    def handled() -> float:  # caught_up alone may hold before the group assigned anything
        return sum(metrics.registry.get_sample_value("monitor_match_items_total",
                                                     {"outcome": outcome}) or 0
                   for outcome in ("matched", "unmatched"))

    step_until(stage, lambda: handled() == len(items) and stage.caught_up(),
               "every item matched")
    desk = Desk(pipeline, tmp_path / "desk.sqlite3")
    desk.catch_up()

    matched = logged(pipeline)
    assert len(matched) == len(MATCHING)
    assert desk.view.matches_of("generals") == matched  # log order, every field
    activity = desk.view.activity()
    assert activity == MemoryDeskView(matched).activity()
    assert activity["generals"].items == len(MATCHING)
    assert sum(activity["generals"].by_relation.values()) == len(MATCHING)
    assert desk.sample("monitor_desk_matches") == len(MATCHING)
    assert desk.sample("monitor_consumer_lag", {"stage": "desk"}) == 0
    desk.close()


def test_a_record_that_cannot_be_read_is_skipped_counted_and_the_rest_shown(
        pipeline: Pipeline, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    matches = story_matches()
    append_matches(pipeline, matches[:2])
    pipeline.append("matches", [(CLAIM.id.encode(), b"\xff not a match")])
    append_matches(pipeline, matches[2:])
    desk = Desk(pipeline, tmp_path / "desk.sqlite3")
    with caplog.at_level(logging.WARNING, logger="monitor.desk"):
        desk.catch_up()

    assert desk.view.matches_of(CLAIM.id) == [m for m in matches if m.claim_id == CLAIM.id]
    assert desk.view.activity() == MemoryDeskView(matches).activity()
    assert desk.sample("monitor_desk_records_skipped_total") == 1
    assert desk.sample("monitor_desk_matches") == len(matches)
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    where = "match_log#3" if pipeline.mode == "embedded" else f"{pipeline.kafka.matches_topic}/"
    assert len(skipped) == 1 and where in skipped[0], skipped
    desk.close()


def test_a_restarted_desk_resumes_from_its_positions(pipeline: Pipeline,
                                                     tmp_path: Path) -> None:
    matches = story_matches()
    append_matches(pipeline, matches[:3])
    first = Desk(pipeline, tmp_path / "desk.sqlite3")
    first.catch_up()
    first.close()
    append_matches(pipeline, matches[3:])

    again = Desk(pipeline, tmp_path / "desk.sqlite3")
    again.catch_up(lambda: again.view.count() >= len(matches))
    assert again.view.count() == len(matches)  # nothing read twice
    assert again.sample("monitor_desk_matches") == len(matches)
    assert again.view.matches_of(CLAIM.id) == [m for m in matches if m.claim_id == CLAIM.id]
    again.close()


def test_a_deleted_view_is_rebuilt_the_same_and_two_copies_agree(pipeline: Pipeline,
                                                                 tmp_path: Path) -> None:
    append_matches(pipeline, story_matches())
    path = tmp_path / "desk.sqlite3"
    first = Desk(pipeline, path)
    first.catch_up()
    before = (first.view.matches_of(CLAIM.id), first.view.activity())
    first.close()
    for made in tmp_path.glob("desk.sqlite3*"):
        made.unlink()

    rebuilt = Desk(pipeline, path)
    rebuilt.catch_up()
    copy = Desk(pipeline, tmp_path / "copy.sqlite3")
    copy.catch_up()
    for desk in (rebuilt, copy):
        assert (desk.view.matches_of(CLAIM.id), desk.view.activity()) == before
        desk.close()


def test_a_view_of_another_log_is_rebuilt(tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    """A view whose positions are not positions in this log (a new state file: its match_log
    starts again at 1) is built again from the start, not read on from where it was."""
    from monitor.bus.transport import EmbeddedTransport
    from monitor.store import Database

    path = tmp_path / "desk.sqlite3"
    old = Database(tmp_path / "old.sqlite3")
    append_embedded(old, story_matches())
    desk = Desk(Pipeline("embedded", None, old, EmbeddedTransport(old)),  # type: ignore[arg-type]
                path)
    desk.catch_up()
    desk.close()
    new = Database(tmp_path / "new.sqlite3")
    append_embedded(new, story_matches()[:1])
    desk = Desk(Pipeline("embedded", None, new, EmbeddedTransport(new)),  # type: ignore[arg-type]
                path)
    with caplog.at_level(logging.WARNING, logger="monitor.desk"):
        desk.catch_up()
    assert [m.item.item_id for m in desk.view.matches_of(CLAIM.id)] == ["first"]
    assert any("rebuilding it" in r.getMessage() for r in caplog.records)
    desk.close()


def append_embedded(database: object, matches: list[Match]) -> None:
    with database.transaction() as conn:  # type: ignore[attr-defined]
        conn.executemany(
            "INSERT INTO match_log (match_id, claim_id, payload, logged_at) VALUES (?, ?, ?, 0)",
            [(m.match_id, m.claim_id, encode_match(m)) for m in matches])


class Flaky:
    """A follower whose read fails once after it handed out ``records``."""

    made: list[Flaky] = []

    def __init__(self, records: list[Record], positions: dict[int, int]) -> None:
        self.source, self.closed = "match_log", False
        self._records = [r for r in records if r.offset >= positions.get(0, 1)]
        Flaky.made.append(self)

    def poll(self, timeout_seconds: float) -> list[Record]:
        if len(Flaky.made) == 1 and not self._records:
            raise BusError("the log is away")
        taken, self._records = self._records[:1], self._records[1:]
        return taken

    def ends(self) -> dict[int, int]:
        return {0: 4}

    def positions(self) -> dict[int, int]:
        return {0: self._records[0].offset if self._records else 4}

    def lag(self) -> int:
        return len(self._records)

    def place(self, record: Record) -> str:
        return f"match_log#{record.offset}"

    def failure_level(self, error: BaseException) -> int:
        return logging.WARNING

    def close(self) -> None:
        self.closed = True


def test_a_failed_read_starts_again_from_the_positions_the_view_stored(tmp_path: Path) -> None:
    Flaky.made.clear()
    records = [Record(0, n + 1, CLAIM.id.encode(), encode_match(m))
               for n, m in enumerate(story_matches()[:3])]
    view = StoredDeskView(tmp_path / "desk.sqlite3")

    def follow(positions: object) -> MatchFollower:
        return Flaky(records, dict(positions))  # type: ignore[call-overload]

    follower = DeskFollower(view, follow, Metrics(CollectorRegistry()))
    for _ in range(3):
        follower.step()
    with pytest.raises(BusError):
        follower.step()
    assert Flaky.made[0].closed
    follower.step()  # a new follower, from the view's positions
    assert len(Flaky.made) == 2 and view.positions() == {0: 4} and view.count() == 3
    assert follower.caught_up()
    follower.close()
    view.close()


def test_a_broker_away_is_worth_another_try(tmp_path: Path) -> None:
    """The runner retries a RecoverableError (the stage is told apart from a bug by it)."""
    from monitor.bus.transport import KafkaTransport
    from monitor.config.settings import Settings
    from tests.support.kafka_broker import free_port

    settings = Settings.model_validate({"kafka": {
        "bootstrap_servers": f"127.0.0.1:{free_port()}", "max_block_seconds": 2}})
    transport = KafkaTransport(settings)
    view = StoredDeskView(tmp_path / "desk.sqlite3")
    follower = DeskFollower(view, transport.match_follower, Metrics(CollectorRegistry()))
    try:
        with pytest.raises(BusError, match="desk: cannot connect to monitor.matches"):
            follower.step()
        assert not follower.caught_up() and view.count() == 0
    finally:
        follower.close()
        view.close()
        transport.close()

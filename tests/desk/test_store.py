"""The desk's stored view against the contract's reference (MemoryDeskView, activity_of)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from monitor.desk.store import Linked, StoredDeskView
from monitor.desk.view import MemoryDeskView
from monitor.errors import MonitorError
from monitor.model import Match, encode_match
from tests.desk.factory import CLAIM, at, match


def linked(*matches: Match) -> list[Linked]:
    return [Linked(m, encode_match(m)) for m in matches]


def tricky() -> list[Match]:
    """Versions that change relation, an undated item, items without a language, two claims."""
    reissued = match("a", relation="denial", published=at(23), version="v2")
    return [match("a", published=at(22)),
            match("b", outlet="BelTA", relation="corroboration", published=at(21)),
            match("c", outlet="RIA"),  # undated: its fetched_at counts
            replace(match("d", published=at(24)),
                    item=replace(match("d").item, language=None, published_at=at(24))),
            reissued,
            match("e", claim_id="other", relation="denial", published=at(2, 7)),
            match("b", outlet="BelTA", relation="corroboration", published=at(21))]  # again


@pytest.fixture
def view(tmp_path: Path) -> StoredDeskView:
    made = StoredDeskView(tmp_path / "desk.sqlite3")
    made.start_over("match_log")
    return made


def test_activity_and_matches_are_those_of_the_reference(view: StoredDeskView) -> None:
    matches = tricky()
    view.apply(linked(*matches[:3]), {0: 4})
    assert view.activity() == MemoryDeskView(matches[:3]).activity()
    view.apply(linked(*matches[3:]), {0: 8})
    reference = MemoryDeskView(matches)
    assert view.activity() == reference.activity()
    for claim_id in (CLAIM.id, "other", "nobody"):
        assert view.matches_of(claim_id) == reference.matches_of(claim_id)
    assert view.activity()[CLAIM.id].by_relation == {"follow-up": 2, "denial": 1,
                                                     "corroboration": 1}
    assert view.count() == len(matches)


def test_a_claim_read_before_gets_what_came_since(view: StoredDeskView) -> None:
    first, second = match("a", published=at(22)), match("b", published=at(21))
    view.apply(linked(first), {0: 2})
    assert view.matches_of(CLAIM.id) == [first]
    view.apply(linked(second), {0: 3})
    assert view.matches_of(CLAIM.id) == [first, second]  # log order, not time order


def test_positions_and_records_survive_a_restart(tmp_path: Path, view: StoredDeskView) -> None:
    view.apply(linked(match("a")), {0: 2, 1: 7})
    view.close()
    again = StoredDeskView(tmp_path / "desk.sqlite3")
    assert again.source() == "match_log"
    assert again.positions() == {0: 2, 1: 7}
    assert [m.item.item_id for m in again.matches_of(CLAIM.id)] == ["a"]
    again.start_over("monitor.matches")
    assert (again.source(), again.positions(), again.count(), again.activity()) == (
        "monitor.matches", {}, 0, {})


def test_a_second_writer_of_the_same_file_is_stopped(tmp_path: Path,
                                                     view: StoredDeskView) -> None:
    other = StoredDeskView(tmp_path / "desk.sqlite3")
    assert view.positions() == other.positions() == {}
    other.apply(linked(match("a")), {0: 2})
    with pytest.raises(MonitorError, match="written by another process"):
        view.apply(linked(match("a")), {0: 2})
    assert other.count() == 1

"""The record of a claim (monitor.desk.record): order, reprints, outlets, background."""

from __future__ import annotations

from monitor.desk.record import Entry, build_record
from tests.desk.factory import CLAIM, FETCHED, at, match


def ids(entries: tuple[Entry, ...]) -> list[str]:
    return [e.item_id for e in entries]


def test_items_are_in_time_order_whatever_the_log_order() -> None:
    record = build_record(CLAIM, [match("c", published=at(23)), match("a", published=at(21)),
                                  match("b", published=at(22))])
    assert ids(record.news) == ["a", "b", "c"]
    assert record.first_report is not None and record.first_report.item_id == "a"


def test_an_undated_item_is_placed_when_the_monitor_saw_it() -> None:
    record = build_record(CLAIM, [match("late", published=at(26)), match("undated")])
    assert ids(record.news) == ["undated", "late"]
    undated = record.news[0]
    assert undated.at == FETCHED and not undated.dated


def test_reprints_fold_under_the_first_carrier_even_through_a_chain() -> None:
    record = build_record(CLAIM, [
        match("first", outlet="TASS", published=at(21, 9)),
        match("copy", outlet="RIA", published=at(21, 11), reprint_of="first"),
        match("copy2", outlet="Interfax", published=at(21, 10), reprint_of="copy"),
        match("lost", outlet="BelTA", published=at(22), reprint_of="not-in-the-record"),
    ])
    assert ids(record.news) == ["first", "lost"]
    assert ids(record.news[0].reprints) == ["copy2", "copy"]  # in time order
    assert record.news[1].reprints == ()


def test_outlets_are_counted_once_per_relation_reprints_included() -> None:
    record = build_record(CLAIM, [
        match("a", outlet="TASS", relation="denial", published=at(21)),
        match("b", outlet="TASS", relation="denial", published=at(22)),
        match("c", outlet="RIA", relation="denial", published=at(22), reprint_of="a"),
        match("d", outlet="RIA", published=at(23)),
        match("old", outlet="Reuters", relation="corroboration", published=at(1)),
    ])
    assert record.outlets == {"follow-up": 1, "denial": 2, "corroboration": 0}


def test_background_items_stay_apart_from_the_news_with_their_reprints() -> None:
    record = build_record(CLAIM, [
        match("old", relation="corroboration", published=at(10)),
        match("old-copy", outlet="RIA", published=at(21), reprint_of="old"),
        match("new", published=at(21)),
    ])
    assert ids(record.background) == ["old"] and ids(record.background[0].reprints) == [
        "old-copy"]
    assert ids(record.news) == ["new"]
    assert record.latest_corroboration is None  # background is not news about the claim


def test_latest_denial_and_corroboration_are_the_latest_reports() -> None:
    record = build_record(CLAIM, [
        match("d2", relation="denial", published=at(24)),
        match("d1", relation="denial", published=at(22)),
        match("c1", relation="corroboration", published=at(23)),
        match("f", published=at(25)),
    ])
    assert record.latest_denial is not None and record.latest_denial.item_id == "d2"
    assert record.latest_corroboration is not None
    assert record.latest_corroboration.item_id == "c1"


def test_a_reissued_item_shows_its_latest_version_once_and_other_claims_are_ignored() -> None:
    record = build_record(CLAIM, [
        match("a", relation="follow-up", published=at(21), version="v1"),
        match("a", relation="denial", published=at(21), version="v2", uncertain=True),
        match("x", published=at(21), claim_id="another-claim"),
    ])
    (entry,) = record.news
    assert (entry.relation, entry.uncertain, entry.match_id) == (
        "denial", True, f"{CLAIM.id}-a-v2")


def test_a_claim_without_matches_has_an_empty_record() -> None:
    record = build_record(CLAIM, [])
    assert record.news == record.background == ()
    assert record.first_report is None and record.latest_denial is None

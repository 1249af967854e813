"""Near-identical reprints of one story across outlets are marked as such."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.match.reprints import ReprintTracker
from monitor.model import Evidence, Item, Match


def match(item_id: str, title: str, source: str = "RIA", claim_id: str = "c") -> Match:
    item = Item(item_id, "f", source, None, None, title, "", "ru", None,
                datetime(2026, 11, 28, tzinfo=UTC), "h")
    evidence = Evidence(("Лукашенко",), "ru", "cue", 0.9)
    return Match(f"m-{item_id}", claim_id, item, 70.0, "denial", evidence, "v")


def test_a_reprint_points_at_the_first_carrier() -> None:
    tracker = ReprintTracker()
    first = tracker.mark(match("a", "Генштаб ВСУ назвал фейком слова Лукашенко о генералах"), 0)
    # TASS and BelTA carry the same story a minute later with small edits.
    second = tracker.mark(match("b", "Генштаб ВСУ назвал фейком слова Лукашенко о генералах!",
                                "TASS"), 60)
    third = tracker.mark(match("c", "Генштаб ВСУ назвал фейком слова Лукашенко о генералах "
                                    "— БЕЛТА", "BelTA"), 90)
    rewritten = tracker.mark(match("d", "ВСУ: слова Лукашенко о генералах — фейк, заявил "
                                        "Генштаб", "UNIAN"), 95)
    assert first.evidence.reprint_of is None
    assert second.evidence.reprint_of == "a"
    assert third.evidence.reprint_of == "a"
    assert rewritten.evidence.reprint_of is None  # a rewrite is a new story, not a reprint


def test_different_stories_and_other_claims_are_not_reprints() -> None:
    tracker = ReprintTracker()
    tracker.mark(match("a", "Генштаб ВСУ назвал фейком слова Лукашенко о генералах"), 0)
    other_story = tracker.mark(match("b", "Лукашенко ответил Генштабу ВСУ и пообещал "
                                          "опубликовать переписку"), 10)
    other_claim = tracker.mark(match("c", "Генштаб ВСУ назвал фейком слова Лукашенко о "
                                          "генералах", claim_id="other"), 20)
    assert other_story.evidence.reprint_of is None
    assert other_claim.evidence.reprint_of is None


def test_a_new_version_of_the_same_item_is_not_its_own_reprint() -> None:
    tracker = ReprintTracker()
    tracker.mark(match("a", "Генштаб ВСУ назвал фейком слова Лукашенко"), 0)
    assert tracker.mark(match("a", "Генштаб ВСУ назвал фейком слова Лукашенко"), 5
                        ).evidence.reprint_of is None


def test_memory_is_bounded_in_time_and_size() -> None:
    tracker = ReprintTracker(per_claim=2, max_claims=1, window_seconds=100)
    tracker.mark(match("a", "Генштаб ВСУ назвал фейком слова Лукашенко"), 0)
    assert tracker.mark(match("b", "Генштаб ВСУ назвал фейком слова Лукашенко"), 500
                        ).evidence.reprint_of is None  # outside the window
    tracker.mark(match("x", "Совсем другая история про Купянск", claim_id="k"), 501)
    assert tracker.mark(match("c", "Генштаб ВСУ назвал фейком слова Лукашенко"), 502
                        ).evidence.reprint_of is None  # claim "c" was evicted by "k"

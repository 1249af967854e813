"""``monitor eval desk``: loading the team's desk set and scoring it through the matcher."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor import desk_eval
from monitor.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
DESK = REPO / "bench" / "desk"

FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Wire</title><link>https://wire.example/</link>
<item><title>Kremlin denies Putin ordered the Valdai drone report</title>
<link>https://wire.example/1</link></item>
<item><title>Football club Valdai wins the regional cup final</title>
<link>https://wire.example/2</link></item>
<item><title>Officials say the Valdai drone attack on Putin's residence happened</title>
<link>https://wire.example/3</link></item>
</channel></rss>
"""

DESK_FILE = """
claims:
  - id: t-valdai
    text: Ukraine attacked Putin's Valdai residence with drones
    keywords: [[Valdai], [drone]]
    subject: Ukraine
cases:
  - {claim: t-valdai, feed: wire.xml, item: https://wire.example/1, relation: denial}
  - {claim: t-valdai, feed: wire.xml, item: "Football club Valdai wins the regional cup final",
     relation: unrelated}
  - {claim: t-valdai, feed: wire.xml, item: https://wire.example/3, relation: corroboration}
"""


@pytest.fixture
def small_desk(tmp_path: Path) -> tuple[Path, Path]:
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    (feeds / "wire.xml").write_text(FEED, encoding="utf-8")
    desk = tmp_path / "desk.yaml"
    desk.write_text(DESK_FILE, encoding="utf-8")
    return desk, feeds


def test_cases_are_found_by_item_id_or_title_and_scored(small_desk: tuple[Path, Path]) -> None:
    desk, feeds = small_desk
    result = desk_eval.score(desk, feeds, semantic=False)
    assert result["cases"] == 3
    assert result["gold"] == {"denial": 1, "unrelated": 1, "corroboration": 1}
    # The keyword groups keep the football item out and let both drone items in.
    assert result["link_precision"] == 1.0
    assert result["link_recall"] == 1.0
    baseline = result["baseline_link_everything_as_majority"]
    assert baseline["link_precision"] == pytest.approx(2 / 3, abs=1e-3)
    assert baseline["link_recall"] == 1.0


def test_a_case_naming_a_missing_item_is_an_error_that_names_it(
        small_desk: tuple[Path, Path]) -> None:
    desk, feeds = small_desk
    desk.write_text(DESK_FILE.replace("https://wire.example/3", "https://wire.example/9"),
                    encoding="utf-8")
    with pytest.raises(ConfigError, match="wire.example/9"):
        desk_eval.score(desk, feeds, semantic=False)


def test_a_case_naming_an_undefined_claim_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(DESK_FILE.replace("claim: t-valdai, feed", "claim: t-nope, feed", 1),
                   encoding="utf-8")
    with pytest.raises(ConfigError, match="t-nope"):
        desk_eval.load_desk(bad)


def test_figures_count_a_wrong_denial_against_denial_precision() -> None:
    gold = ["denial", "follow-up", "unrelated", "corroboration"]
    predicted = ["denial", "denial", "unrelated", "follow-up"]
    figures = desk_eval._figures(gold, predicted)
    assert figures["relation"]["denial"]["precision"] == 0.5
    assert figures["relation"]["denial"]["recall"] == 1.0
    assert figures["relation"]["corroboration"]["recall"] == 0.0
    assert figures["link_precision"] == 1.0
    assert figures["link_recall"] == 1.0


def test_the_committed_desk_set_meets_the_issue_and_names_real_items(
        real_feeds: Path) -> None:
    """At least 300 cases, 40 denials, 40 corroborations, a third in Russian or Ukrainian,
    and every reference resolves to an item of the real feed documents."""
    desk = desk_eval.load_desk(DESK)
    items = desk_eval.read_items(real_feeds, (case.feed for case in desk.cases))
    missing = [c.item for c in desk.cases if (c.feed, c.item) not in items]
    assert not missing
    relations = [case.relation for case in desk.cases]
    assert len(desk.cases) >= 300
    assert relations.count("denial") >= 40
    assert relations.count("corroboration") >= 40
    cyrillic = sum(items[(c.feed, c.item)].language in ("ru", "uk") for c in desk.cases)
    assert cyrillic * 3 >= len(desk.cases)

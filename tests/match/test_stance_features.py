"""find_cues keeps the cues of texts it has read (a claim's are looked for at every link):
what a caller does with the list it gets must not change the next answer."""

from __future__ import annotations

from monitor.match.stance_features import find_cues


def test_cues_found_again_are_a_fresh_list_of_the_same_cues() -> None:
    text = "Kremlin denies the report; officials did not confirm it"
    first = find_cues(text, "en")
    assert [c.kind for c in first] == ["denial", "hedge", "corroboration"]
    assert first[-1].negated
    first.clear()
    assert find_cues(text, "en") == find_cues(text) != []

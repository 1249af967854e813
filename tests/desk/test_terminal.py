"""The record as terminal text: feed text cannot drive the terminal."""

from __future__ import annotations

import pytest

from monitor.desk.record import build_record
from monitor.desk.terminal import render, terminal_safe
from tests.desk.factory import CLAIM, at, match


@pytest.mark.parametrize(("hostile", "shown"), [
    pytest.param("\x1b[31mRED\x1b[0m alert", "RED alert", id="sgr-colour"),
    pytest.param("up\x1b[2A\x1b[2Kgone", "upgone", id="cursor-up-erase-line"),
    pytest.param("\x1b]0;pwned\x07title", "title", id="osc-window-title"),
    pytest.param("\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\", "click",
                 id="osc8-hyperlink"),
    pytest.param("a\x9b31mb", "a 31mb", id="c1-csi-left-as-text"),
    pytest.param("line\r\nover\x08write", "line over write", id="cr-lf-backspace"),
    pytest.param("abc\u202edcba", "abc dcba", id="bidi-override"),
    pytest.param("Лукашенко\tответил", "Лукашенко ответил", id="cyrillic-kept"),
    pytest.param("", "-", id="empty"),
])
def test_terminal_safe_leaves_no_escape_or_control(hostile: str, shown: str) -> None:
    assert terminal_safe(hostile) == shown


def test_the_timeline_shows_header_items_reprints_and_background() -> None:
    record = build_record(CLAIM, [
        match("a", outlet="TASS", relation="denial", published=at(21, 9), title="Denied",
              quote="that never happened"),
        match("b", outlet="RIA", published=at(21, 10), reprint_of="a", title="Denied too"),
        match("c", outlet="BelTA", published=at(22), uncertain=True, title="\x1b[2JWiped"),
        match("old", outlet="Reuters", published=at(2), title="Old story"),
    ])
    text = "\n".join(render(record))
    assert "\x1b" not in text
    assert f"claim {CLAIM.id} (tracking)" in text and "made at: 2026-11-20" in text
    assert "distinct outlets: follow-up 2, denial 1, corroboration 0" in text
    assert "first report: 2026-11-21 09:00Z TASS: Denied" in text
    assert "latest denial: 2026-11-21 09:00Z TASS: Denied" in text
    lines = text.splitlines()
    denial = next(n for n, line in enumerate(lines) if "  Denied  " in line)
    assert "denial" in lines[denial] and "0.80" in lines[denial]
    assert "https://tass.example/a" in lines[denial]
    assert '"that never happened" (Peskov)' in lines[denial + 1]
    assert lines[denial + 2].startswith("      reprint 2026-11-21 10:00Z")
    assert "follow-up?" in next(line for line in lines if "Wiped" in line)
    background = lines.index(next(line for line in lines if line.startswith("background")))
    assert "Old story" in "\n".join(lines[background:])
    assert "Old story" not in "\n".join(lines[:background])

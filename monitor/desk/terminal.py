"""A claim's record as terminal text (``monitor claims timeline``).

Feed text is untrusted: titles, outlets, languages, links and quotes pass through
:func:`terminal_safe` before they are printed, so a hostile title cannot move the cursor,
recolour the terminal, set its title or hide text behind bidi marks.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC

from monitor.desk.record import RELATIONS, ClaimRecord, Entry

# ANSI escape sequences whole (CSI, OSC, and the two-byte ones), so none of their parameters
# are left behind as text; the lone ESC and every other control character go after them.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-_])")
_INVISIBLE = ("Cc", "Cf", "Cs", "Co")  # controls, format (bidi, zero-width), surrogates, private


def terminal_safe(text: str | None) -> str:
    """``text`` on one line, with no escape sequence, control or format character left."""
    if not text:
        return "-"
    text = _ANSI.sub("", text)
    kept = "".join(" " if unicodedata.category(ch) in _INVISIBLE else ch for ch in text)
    return " ".join(kept.split()) or "-"


def render(record: ClaimRecord) -> list[str]:
    """The header, the news in time order (reprints indented under their first carrier),
    then the background. A time marked ``~`` is when the monitor saw an undated item."""
    claim = record.claim
    counts = ", ".join(f"{relation} {record.outlets.get(relation, 0)}"
                       for relation in (*RELATIONS, *sorted(set(record.outlets) - {*RELATIONS})))
    lines = [
        f"claim {claim.id} ({claim.status}): {terminal_safe(claim.text)}",
        f"made at: {claim.made_at or '-'}",
        f"distinct outlets: {counts}",
        f"first report: {_brief(record.first_report)}",
        f"latest denial: {_brief(record.latest_denial)}",
        f"latest corroboration: {_brief(record.latest_corroboration)}",
        "",
        f"news ({_count(record.news)} items):",
    ]
    lines += _section(record.news)
    if record.background:
        lines += ["", f"background, published before the claim was made "
                      f"({_count(record.background)} items):"]
        lines += _section(record.background)
    return lines


def _count(carriers: tuple[Entry, ...]) -> int:
    return sum(len(carrier.with_reprints()) for carrier in carriers)


def _section(carriers: tuple[Entry, ...]) -> list[str]:
    if not carriers:
        return ["  (none)"]
    lines = []
    for carrier in carriers:
        lines += _entry_lines(carrier, "  ")
        for reprint in carrier.reprints:
            lines += _entry_lines(reprint, "      reprint ")
    return lines


def _entry_lines(entry: Entry, indent: str) -> list[str]:
    relation = entry.relation + ("?" if entry.uncertain else "")
    line = (f"{indent}{_time(entry)}  {relation:<14} {entry.confidence:.2f}  "
            f"{terminal_safe(entry.outlet)}  {terminal_safe(entry.language)}  "
            f"{terminal_safe(entry.title)}  {terminal_safe(entry.link)}")
    if not entry.quote:
        return [line]
    speaker = f" ({terminal_safe(entry.speaker)})" if entry.speaker else ""
    return [line, f"{' ' * len(indent)}    \"{terminal_safe(entry.quote)}\"{speaker}"
                  f" cue: {terminal_safe(entry.cue)}, score {entry.score:.0f}"]


def _time(entry: Entry) -> str:
    moment = entry.at.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")
    return moment if entry.dated else f"~{moment}"


def _brief(entry: Entry | None) -> str:
    if entry is None:
        return "-"
    return f"{_time(entry)} {terminal_safe(entry.outlet)}: {terminal_safe(entry.title)}"

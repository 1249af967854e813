"""What a backtest would have linked, as terminal lines (``monitor claims backtest``).

Feed text passes through :func:`monitor.desk.terminal.terminal_safe`: a hostile title cannot
move the cursor or recolour the terminal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC

from monitor.desk.terminal import terminal_safe
from monitor.model import Match


def backtest_lines(matches: Sequence[Match]) -> list[str]:
    """One line per link, oldest first (``~``: undated, the time the monitor saw it), then
    the count per relation."""
    lines = [_line(match) for match in matches]
    counts = Counter(match.relation for match in matches)
    summary = ", ".join(f"{relation} {n}" for relation, n in sorted(counts.items()))
    lines.append(f"{len(matches)} link(s){': ' + summary if summary else ''}")
    return lines


def _line(match: Match) -> str:
    item = match.item
    moment = (item.published_at or item.fetched_at).astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")
    when = moment if item.published_at else f"~{moment}"
    relation = match.relation + ("?" if match.evidence.uncertain else "")
    reprint = "  (reprint)" if match.evidence.reprint_of else ""
    return (f"{when}  {terminal_safe(item.source)}  {relation:<14} {match.score:5.1f}  "
            f"{terminal_safe(item.title)}{reprint}")

"""Superseded by ``monitor.match.train_relation`` (the relation model); kept so that
``monitor eval emergent`` and scripts calling ``evaluate_emergent`` go on working.

    python -m monitor.match.train_stance --data ../shared/data   # = train_relation
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from monitor.match.train_relation import emergent_stance, main


def evaluate_emergent(path: str | Path, *, folds: int = 5) -> dict[str, Any]:
    """``folds > 1``: nested grouped CV by claim; else the shipped model on this file."""
    return emergent_stance(path, cross_validate=folds > 1, folds=max(2, folds))


if __name__ == "__main__":
    sys.exit(main())

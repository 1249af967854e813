"""``monitor`` with a bug planted in one stage, for the tests that a bug stops the process with
a non-zero status instead of being retried (or logged) every few seconds forever.

    python -m tests.support.buggy_monitor match run --feeds feeds.yaml --claims claims.yaml
    python -m tests.support.buggy_monitor poll run --once --feeds feeds.yaml
"""

from __future__ import annotations

import sys
from typing import Any


def planted_bug(*_args: Any, **_kwargs: Any) -> Any:
    raise ZeroDivisionError("a bug planted by tests/support/buggy_monitor.py")


if __name__ == "__main__":
    from monitor.feeds.poller import FeedPoller
    from monitor.match.stage import MatchProcessor

    where = sys.argv.pop(1)
    if where == "match":
        MatchProcessor.match = planted_bug  # type: ignore[method-assign]  # what the stage calls
    else:
        FeedPoller.poll = planted_bug  # type: ignore[method-assign]
    from monitor.cli import main

    main()

"""Waiting on a condition with a deadline, instead of sleeping and hoping: the one helper."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_SECONDS = 0.05


def eventually(condition: Callable[[], T | None], timeout_seconds: float = 30.0,
               what: str = "the condition") -> T:
    """Call ``condition()`` until it returns something truthy, and return that.

    At the deadline, AssertionError naming ``what`` and the last value seen. An exception from
    ``condition`` propagates at once: a condition that may fail while things start up says so
    itself (returns None, say) rather than have every error waited out.
    """
    deadline = time.monotonic() + timeout_seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_seconds:g} s: {what} "
                                 f"(last seen: {value!r})")
        time.sleep(POLL_SECONDS)  # the condition is polled against the deadline

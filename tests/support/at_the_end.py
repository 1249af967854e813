"""The one fixture that stops what a test started (processes, daemons, clients) when it ends.

A test module names its own fixture for the kind it starts and hands its empty container to
``at_the_end``::

    @pytest.fixture
    def pollers(at_the_end: AtTheEnd) -> list[Poller]:
        return at_the_end([])

Import ``at_the_end`` into every module whose tests use such a fixture (pytest looks fixtures
up from the test's module).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any, TypeVar

import pytest

Things = TypeVar("Things", list[Any], dict[str, Any])


class AtTheEnd:
    """``at_the_end(things, method="stop")`` returns ``things`` (a list, or a dict by name)
    and calls each one's ``method`` when the test ends, in the order they were added."""

    def __init__(self) -> None:
        self._held: list[tuple[list[Any] | dict[str, Any], str]] = []

    def __call__(self, things: Things, method: str = "stop") -> Things:
        self._held.append((things, method))
        return things

    def end(self) -> None:
        """Every one ended, even when one of them fails to (its error is raised after)."""
        with ExitStack() as stack:
            for things, method in reversed(self._held):
                for thing in reversed(list(things.values() if isinstance(things, dict)
                                           else things)):
                    stack.callback(getattr(thing, method))


@pytest.fixture
def at_the_end() -> Iterator[AtTheEnd]:
    ends = AtTheEnd()
    yield ends
    ends.end()

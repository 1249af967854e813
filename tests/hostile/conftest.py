"""Hostile servers on loopback: 127.0.0.1 plays the attacker's feed or the internal service,
127.0.0.2 an outside feed the operator allowed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.hostile_server import HostileServer


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    with HostileServer("127.0.0.1") as server:
        yield server


@pytest.fixture
def outside() -> Iterator[HostileServer]:
    with HostileServer("127.0.0.2") as server:
        yield server

"""A claim's matches, read from the deployment's match log in either mode.

The mode is decided once, by :func:`monitor.bus.transport.choose_transport`: the ``match_log``
table of the state file (embedded), or the whole ``monitor.matches`` topic, read_committed, to
its end as it was when asked (Kafka). The match log is keyed by claim id in both.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from monitor.bus.log import Record
from monitor.bus.transport import Placed, choose_transport
from monitor.config.settings import Settings
from monitor.errors import InvalidInputError
from monitor.model import Match, decode_match
from monitor.store import Database

log = logging.getLogger(__name__)


def read_claim_matches(settings: Settings, claim_id: str) -> list[Match]:
    """Every readable match of ``claim_id`` in log order. Blocks on the state file or the
    broker; BusError when the broker cannot be read. Kafka mode opens no state file."""
    opened: list[Database] = []

    def database() -> Database:
        opened.append(Database(settings.state_path))
        return opened[-1]

    transport = choose_transport(settings, database)
    try:
        placed = transport.read_matches()
    finally:
        transport.close()
        for made in opened:
            made.close()
    return claim_matches(placed, claim_id)


def claim_matches(placed: Iterable[Placed], claim_id: str) -> list[Match]:
    """The matches keyed ``claim_id``; one that cannot be decoded is skipped with a warning."""
    key = claim_id.encode("utf-8")
    found = []
    for place, record in placed:
        if record.key != key:
            continue
        match = readable(place, record)
        if match is not None and match.claim_id == claim_id:
            found.append(match)
    return found


def readable(place: str, record: Record) -> Match | None:
    """The match ``record`` holds, or None, with a warning naming ``place``, when it cannot
    be decoded (the desk shows the rest)."""
    try:
        return decode_match(record.value)
    except InvalidInputError as exc:
        claim_id = (record.key or b"").decode("utf-8", "replace")
        log.warning("desk: %s skipped: %s", place, exc, extra={"claim_id": claim_id})
        return None

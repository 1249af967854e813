"""The match stage writes a match_id once, even when its item reaches the stage twice.

Issue 13: items written twice to monitor.items gave matches written twice to monitor.matches
with the same id. The stage's own guard (one code path for both transports) is shown here on
the embedded log, wrapped so that every item is delivered a second time, as a topic holding it
twice would; the Kafka side is in tests/integration/test_poll_exactly_once.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.bus.log import DeadLetter, LogName, Output, Polled, Record, StageLog
from monitor.bus.transport import EmbeddedTransport
from monitor.errors import BusError
from monitor.match.committed import CommittedMatches
from monitor.match.registry import ClaimRegistry
from monitor.match.stage import MatchProcessor, MatchStage
from monitor.metrics import Metrics
from monitor.store import Database
from tests.contract.test_match_contract import CLAIMS, MATCHING, story


class Twice:
    """A StageLog that delivers every record again in the next poll, records what each
    transaction wrote, and can fail the next transaction."""

    def __init__(self, inner: StageLog) -> None:
        self._inner, self.source = inner, inner.source
        self._again: list[Record] = []
        self.written: list[Output] = []
        self.fail_next = False

    def poll(self, timeout_seconds: float, max_records: int | None = None) -> Polled:
        polled = self._inner.poll(timeout_seconds, max_records)
        records = [*self._again, *polled.records]
        self._again = list(polled.records)
        return Polled(records, polled.assigned, polled.revoked)

    def begin(self, consumed: Sequence[Record]) -> None:
        self._inner.begin(consumed)

    def transact(self, consumed: Sequence[Record], outputs: Sequence[Output],
                 dead: Sequence[DeadLetter]) -> None:
        if self.fail_next:  # the batch comes again with the next poll: both logs rewind
            self.fail_next = False
            self._again = list({(r.partition, r.offset): r for r in consumed}.values())
            raise BusError("test: transaction aborted", RuntimeError("aborted"))
        self._inner.transact(consumed, outputs, dead)
        self.written.extend(o for o in outputs if o.log == "matches")

    def write(self, outputs: Sequence[Output], dead: Sequence[DeadLetter] = ()) -> None:
        self._inner.write(outputs, dead)

    def commit(self, positions: Mapping[int, int]) -> None:
        self._inner.commit(positions)

    def read_back(self, log: LogName, partitions: Sequence[int] | None) -> list[Record]:
        return self._inner.read_back(log, partitions)

    def lag(self) -> int:
        return self._inner.lag() + len(self._again)

    def failure_level(self, error: BaseException) -> int:
        return self._inner.failure_level(error)

    def is_ready(self) -> bool:
        return True

    def close(self) -> None:
        self._inner.close()


def stage_on(transport: EmbeddedTransport, claims: Path) -> tuple[MatchStage, Twice]:
    metrics = Metrics(CollectorRegistry())
    log = Twice(transport.stage_log("match"))
    return MatchStage(log, MatchProcessor(ClaimRegistry(claims), metrics), metrics), log


def test_an_item_delivered_twice_and_after_a_restart_is_recorded_once(tmp_path: Path) -> None:
    claims = tmp_path / "claims.yaml"
    claims.write_text(CLAIMS, encoding="utf-8")
    db = Database(tmp_path / "state.sqlite3")
    transport = EmbeddedTransport(db)
    transport.publisher().publish([story(1, MATCHING[0]), story(2, MATCHING[1])])
    stage, log = stage_on(transport, claims)
    log.fail_next = True  # an aborted transaction: its matches are not committed ...
    with pytest.raises(BusError):
        stage.step()
    for _ in range(4):  # ... so the redelivery writes them, and the copies write nothing
        stage.step()
    written = Counter(o.id for o in log.written)
    assert len(written) == 2 and set(written.values()) == {1}

    restarted, again = stage_on(transport, claims)  # learns the ids from the match log
    transport.publisher().publish([story(3, MATCHING[2])])
    for _ in range(3):
        restarted.step()
    assert len(again.written) == 1 and again.written[0].id not in written
    assert len(transport.read_matches()) == 3
    db.close()


def test_committed_ids_are_learnt_from_records_and_forgotten_after_the_window() -> None:
    now = [1000.0]
    committed = CommittedMatches(window_seconds=7200, clock=lambda: now[0])
    learnt = committed.learn([Record(0, 1, b"c", b'{"match_id": "m1"}'),
                              Record(0, 2, b"c", b"not json")])
    assert learnt == 2 and "m1" in committed and len(committed) == 1
    now[0] += 3700  # past the hourly prune, inside the window
    committed.add(["m2"])
    assert "m1" in committed and "m2" in committed
    now[0] += 7300  # m1 and m2 learnt more than the window ago
    committed.add(["m3"])
    assert "m1" not in committed and "m2" not in committed and "m3" in committed

"""What a stage says about its partitions: each assignment and revocation once, as it happens.

Issue 13 saw a matcher that restarted or got new partitions say nothing. Here matchers on the
real broker go through the group's life: one alone, a second joining, the second killed
(SIGKILL: its partitions come back after the session timeout), the first restarted. Each
process's log says every change once, revocations and assignments alternating, and nothing at
WARNING or above.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.test_broker_outage import Process, env_for
from tests.support.at_the_end import AtTheEnd, at_the_end  # noqa: F401 (a fixture)
from tests.support.kafka_broker import LocalKafka
from tests.support.waiting import eventually

pytestmark = pytest.mark.kafka

ASSIGNED, REVOKED = "match: partitions assigned: ", "match: partitions revoked: "


@pytest.fixture
def matchers(at_the_end: AtTheEnd) -> dict[str, Process]:  # noqa: F811
    return at_the_end({})


def changes(process: Process) -> list[str]:
    """The process's partition lines, in order, as "assigned [0, 1]" / "revoked [2]"."""
    said = []
    for record in process.records():
        message = record["message"]
        for prefix, word in ((ASSIGNED, "assigned"), (REVOKED, "revoked")):
            if message.startswith(prefix):
                said.append(f"{word} {message[len(prefix):].split(' ', 1)[1]}")
    return said


def owned(process: Process) -> set[int]:
    """The partitions the process's log says it holds now."""
    partitions: set[int] = set()
    for change in changes(process):
        word, numbers = change.split(" ", 1)
        named = {int(n) for n in numbers.strip("[]").split(", ") if n}
        partitions = partitions | named if word == "assigned" else partitions - named
    return partitions


def alternate(said: list[str]) -> bool:
    """Assigned first, then revoked and assigned in turn: no change said twice."""
    return all(change.startswith("assigned" if i % 2 == 0 else "revoked")
               for i, change in enumerate(said))


def test_matchers_say_each_assignment_and_revocation_once(
        kafka_broker: LocalKafka, tmp_path: Path, matchers: dict[str, Process]) -> None:
    env = env_for(kafka_broker.bootstrap)
    feeds = tmp_path / "feeds.yaml"  # unused by `monitor match`; Process wants one
    feeds.write_text("feeds: []\n", encoding="utf-8")
    args = ("match", "--claims", str(REPO / "claims.yaml"))

    def start(name: str) -> Process:
        matchers[name] = Process(env, feeds, tmp_path, name, args)
        return matchers[name]

    first = start("first")
    eventually(lambda: owned(first) == {0, 1, 2}, 60, "the first matcher owns every partition")
    assert changes(first) == ["assigned [0, 1, 2]"]

    second = start("second")
    eventually(lambda: owned(second) and owned(first) | owned(second) == {0, 1, 2}
               and not owned(first) & owned(second), 60, "the partitions shared by two")
    assert alternate(changes(first)) and alternate(changes(second)), (changes(first),
                                                                     changes(second))
    # Only what moves is given back (kafka-python's cooperative rebalance): said once.
    assert changes(first)[1:] == [f"revoked {sorted(owned(second))}"], changes(first)

    second.process.send_signal(signal.SIGKILL)
    second.process.wait()
    eventually(lambda: owned(first) == {0, 1, 2}, 60,
               "the killed matcher's partitions back with the first after the session timeout")
    assert alternate(changes(first)), changes(first)

    first.stop()  # SIGTERM
    again = start("again")
    eventually(lambda: owned(again) == {0, 1, 2}, 60, "a restarted matcher says what it owns")
    assert changes(again) == ["assigned [0, 1, 2]"]

    for name, process in matchers.items():
        loud = [r["message"] for r in process.records()
                if r["level"] in ("WARNING", "ERROR", "CRITICAL")]
        assert not loud, (name, loud)

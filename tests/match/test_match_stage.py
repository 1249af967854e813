"""The match stage on the embedded log: claims files change under a running stage.

Exactly once, restarts and dead letters are behaviours of both modes: tests/contract.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from monitor.bus.log import Polled, StageLog
from monitor.bus.transport import EmbeddedTransport
from monitor.match.features import ItemFeatures
from monitor.match.registry import ClaimRegistry
from monitor.match.stage import MatchProcessor, MatchStage, StepSize
from monitor.metrics import Metrics
from monitor.model import Item, Match
from monitor.store import Database
from tests.contract.test_match_contract import CLAIMS, story


def drain(stage: MatchStage) -> None:
    for _ in range(100):
        stage.step()
        if stage.caught_up():
            return
    raise AssertionError("the stage did not catch up")


def test_claims_changes_apply_without_restart_and_bad_files_are_refused(tmp_path: Path) -> None:
    claims = tmp_path / "claims.yaml"
    claims.write_text(CLAIMS, encoding="utf-8")
    db = Database(tmp_path / "state.sqlite3")
    transport = EmbeddedTransport(db)
    metrics = Metrics(CollectorRegistry())
    stage = MatchStage(transport.stage_log("match"),
                       MatchProcessor(ClaimRegistry(claims), metrics), metrics)
    matches = transport.stage_log("alert")  # reads what the match stage wrote
    items = transport.publisher()
    claims.write_text(CLAIMS.replace("[generals, генералы]", "[Путин, Putin]"), encoding="utf-8")
    os.utime(claims, ns=(1, 1))  # a distinct stamp even within one clock tick
    items.publish([story(1, "Лукашенко встретился с Путиным")])
    drain(stage)
    assert len(matches.poll(0).records) == 1
    claims.write_text("claims:\n  - id: BAD ID\n", encoding="utf-8")
    os.utime(claims, ns=(2, 2))
    items.publish([story(2, "Лукашенко и Путин снова встретились")])
    drain(stage)  # the invalid file is logged and the previous claims keep matching
    assert len(matches.poll(0).records) == 1
    db.close()


def test_a_step_takes_about_its_target_time_of_work() -> None:
    size = StepSize(target_seconds=0.2, most_seconds=0.2, least=1, most=1000)
    assert size.records == 1
    size.took(1, 0.07)  # with vectors: ~70 ms an item
    assert size.records == 2
    for _ in range(20):
        size.took(size.records, size.records * 0.001)  # words alone: ~1 ms an item
    assert size.records >= 150
    size.took(0, 5.0)  # an idle step says nothing about the cost of a record
    assert size.records >= 150
    size.took(1, 30.0)  # one very slow item: one step at a time, never zero
    assert size.records >= 1


def test_steps_grow_while_a_backlog_lasts_and_start_small_after_idle() -> None:
    size = StepSize(target_seconds=0.2, most_seconds=1.0, least=2, most=1000)
    taken = []
    for _ in range(6):  # every step comes back full: 100 ms an item
        taken.append(size.records)
        size.took(size.records, size.records * 0.1)
    assert taken[0] == 2 and taken[-1] == 10  # 0.2 s of work first, then at most 1 s
    assert taken == sorted(taken)
    size.took(0, 0.0)  # caught up: the next burst starts small again
    assert size.records == 2
    size.took(2, 0.2)
    size.took(4, 0.4)
    assert size.records == 8
    size.took(3, 0.3)  # a step that was not full: the backlog is gone
    assert size.records == 2


def test_a_step_holds_several_times_the_work_of_its_commit() -> None:
    size = StepSize(target_seconds=0.2, most_seconds=0.2, least=1, most=1000)
    for _ in range(10):  # 70 ms an item, 150 ms a commit (a Kafka transaction)
        size.took(size.records, size.records * 0.07, 0.15)
    assert 6 <= size.records <= 7  # 3 x 150 ms of matching, not the 0.2 s target alone


def test_a_step_never_takes_fewer_than_its_least_records() -> None:
    size = StepSize(target_seconds=0.2, most_seconds=1.0, least=16, most=1000)
    assert size.records == 16  # before any step was timed
    size.took(10, 10 * 0.03)  # a slow machine: 30 ms an item, 0.2 s holds 6
    assert size.records == 16  # a poll's ten new items still make one step
    size = StepSize(least=16, most=5)
    assert size.records == 5  # the transport's batch bounds it


class SlowProcessor(MatchProcessor):
    """Every item costs 50 ms, as an item embedded by the model does."""

    def match(self, item: Item) -> tuple[ItemFeatures, list[Match]]:
        time.sleep(0.05)
        return super().match(item)


def test_a_burst_is_committed_in_steps_so_its_first_matches_leave_early(tmp_path: Path) -> None:
    claims = tmp_path / "claims.yaml"
    claims.write_text(CLAIMS.replace("[generals, генералы]", "[Путин, Putin]"), encoding="utf-8")
    db = Database(tmp_path / "state.sqlite3")
    transport = EmbeddedTransport(db)
    metrics = Metrics(CollectorRegistry())
    stage = MatchStage(transport.stage_log("match"),
                       SlowProcessor(ClaimRegistry(claims), metrics), metrics)
    matches = transport.stage_log("alert")
    transport.publisher().publish(
        [story(n, f"Лукашенко встретился с Путиным, день {n}") for n in range(60)])
    first = stage.step()
    assert first == 16  # LEAST_STEP_RECORDS: 0.2 s holds 4 of these
    assert len(matches.poll(0).records) == first  # committed before the rest is matched
    steps = 1
    while not stage.caught_up():
        taken = stage.step()
        assert taken <= 21  # 50 ms an item: at most 1 s of work, as the backlog lasts
        steps += 1
    assert steps >= 4
    assert len(matches.poll(0).records) == 60 - first
    db.close()


class ArrivingProcessor(MatchProcessor):
    """More items reach the log while the first one is matched (the rest of one write)."""

    def __init__(self, registry: ClaimRegistry, metrics: Metrics, publish: Any,
                 more: list[Item]) -> None:
        super().__init__(registry, metrics)
        self._publish, self._more = publish, more

    def match(self, item: Item) -> tuple[ItemFeatures, list[Match]]:
        if self._more:
            self._publish(self._more)
            self._more = []
        return super().match(item)


class ChangingGroup:
    """The embedded match log, whose second poll also says a partition was assigned."""

    def __init__(self, inner: StageLog) -> None:
        self._inner, self.source, self.polls = inner, inner.source, 0

    def poll(self, timeout_seconds: float, max_records: int | None = None) -> Polled:
        self.polls += 1
        polled = self._inner.poll(timeout_seconds, max_records)
        assigned = polled.assigned | ({0} if self.polls == 2 else set())
        return Polled(polled.records, frozenset(assigned), polled.revoked)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class RevokingGroup(ChangingGroup):
    """The embedded match log, whose second poll says the step's partition was revoked."""

    def poll(self, timeout_seconds: float, max_records: int | None = None) -> Polled:
        self.polls += 1
        polled = self._inner.poll(timeout_seconds, max_records)
        if self.polls == 2:  # a revoked partition's records are not handed out
            return Polled([], polled.assigned, frozenset({0}))
        return polled


def arriving_stage(tmp_path: Path, wrap: Any = None) -> tuple[MatchStage, StageLog, Database]:
    claims = tmp_path / "claims.yaml"
    claims.write_text(CLAIMS.replace("[generals, генералы]", "[Путин, Путина, Putin]"),
                      encoding="utf-8")
    db = Database(tmp_path / "state.sqlite3")
    transport = EmbeddedTransport(db)
    metrics = Metrics(CollectorRegistry())
    publisher = transport.publisher()
    items = [story(n, f"Лукашенко встретился с Путиным, день {n}") for n in range(3)]
    processor = ArrivingProcessor(ClaimRegistry(claims), metrics, publisher.publish, items[1:])
    log = transport.stage_log("match")
    stage = MatchStage(wrap(log) if wrap else log, processor, metrics)
    publisher.publish(items[:1])
    return stage, transport.stage_log("alert"), db


def test_records_that_came_while_a_step_matched_are_in_its_commit(tmp_path: Path) -> None:
    stage, matches, db = arriving_stage(tmp_path)
    assert stage.step() == 3  # one commit: the last two did not wait for a step of their own
    assert len(matches.poll(0).records) == 3
    assert stage.caught_up()
    db.close()


def test_a_group_change_seen_before_the_commit_holds_the_step(tmp_path: Path) -> None:
    stage, matches, db = arriving_stage(tmp_path, ChangingGroup)
    assert stage.step() == 0  # nothing committed: the change is applied first
    assert matches.poll(0).records == []
    assert not stage.caught_up()
    assert stage.step() == 3  # read back, then the held records matched and committed once
    assert len(matches.poll(0).records) == 3
    db.close()


def test_a_step_whose_partition_was_revoked_before_its_commit_commits_nothing(
        tmp_path: Path) -> None:
    stage, matches, db = arriving_stage(tmp_path, RevokingGroup)
    assert stage.step() == 0  # its records are the partition's new owner's now
    assert matches.poll(0).records == []
    db.close()

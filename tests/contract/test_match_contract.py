"""The match stage's behaviour, the same in both modes (see conftest.py: each test runs against
the embedded logs and against a real Kafka broker)."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.errors import RecoverableError
from monitor.match.registry import ClaimRegistry
from monitor.match.stage import MatchProcessor, MatchStage
from monitor.metrics import Metrics
from monitor.model import Item, decode_match, encode_item
from monitor.runner import StageFailed, run_stage, stage_thread
from tests.contract.conftest import Pipeline
from tests.support.waiting import eventually

CLAIMS = """
claims:
  - id: generals
    text: Lukashenko says Ukrainian generals asked him to stop the war
    keywords: [[Lukashenko, Лукашенко], [generals, генералы]]
    threshold: 30
"""
MATCHING = ["Лукашенко рассказал о просьбе украинских генералов",
            "Lukashenko: Ukrainian generals asked me to stop the war",
            "Генштаб назвал фейком слова Лукашенко о просьбе генералов"]
UNRELATED = ["Погода в Минске: снег и гололед", "Central bank keeps rates on hold"]
UNDECODABLE = b"\xff\xfe not an item"


def story(n: int, title: str) -> Item:
    return Item(f"item{n}", "wire", "Wire", f"https://wire.example/{n}", None, title, "", "ru",
                None, datetime(2026, 11, 28, tzinfo=UTC), f"hash{n}")


@pytest.fixture
def claims(tmp_path: Path) -> Path:
    path = tmp_path / "claims.yaml"
    path.write_text(CLAIMS, encoding="utf-8")
    return path


def match_stage(pipeline: Pipeline, claims: Path, metrics: Metrics | None = None) -> MatchStage:
    metrics = metrics or Metrics(CollectorRegistry())
    return MatchStage(pipeline.stage_log("match"), MatchProcessor(ClaimRegistry(claims), metrics),
                      metrics)


def step_until(stage: MatchStage, done: Callable[[], bool], what: str) -> None:
    """Step as the runner would (retrying what is transient) until ``done()``."""

    def progressed() -> bool:
        with contextlib.suppress(RecoverableError):
            stage.step()
        return done()

    eventually(progressed, 60, what)


def matched_ids(pipeline: Pipeline, expect: int) -> Counter[str]:
    return Counter(decode_match(v).match_id for _k, v in pipeline.read("matches", expect=expect))


def test_matches_and_dead_letters_are_committed_once(pipeline: Pipeline, claims: Path) -> None:
    items = [story(n, t) for n, t in enumerate(MATCHING + UNRELATED)]
    raw = [(i.item_id.encode(), encode_item(i)) for i in items]
    pipeline.append("items", raw[:2] + [(b"broken", UNDECODABLE)] + raw[2:])
    metrics = Metrics(CollectorRegistry())
    stage = match_stage(pipeline, claims, metrics)

    step_until(stage, stage.caught_up, "every item matched and committed")

    got = matched_ids(pipeline, expect=len(MATCHING))
    assert sorted(got.values()) == [1] * len(MATCHING)
    assert {k for k, _v in pipeline.read("matches", expect=len(MATCHING))} == {b"generals"}
    dead = pipeline.dead_letters(expect=1)
    assert [v for _h, v in dead] == [UNDECODABLE]
    headers = dead[0][0]
    assert headers["stage"] == "match" and "not JSON" in headers["error"]
    assert "source" in headers and datetime.fromisoformat(headers["time"]).tzinfo is not None
    sample = metrics.registry.get_sample_value
    assert sample("monitor_dead_letters_total", {"stage": "match"}) == 1
    assert sample("monitor_consumer_lag", {"stage": "match"}) == 0
    assert sample("monitor_match_items_total", {"outcome": "matched"}) == len(MATCHING)


def test_a_restarted_stage_resumes_without_repeating_or_losing(pipeline: Pipeline,
                                                               claims: Path) -> None:
    items = [story(n, MATCHING[n % len(MATCHING)]) for n in range(6)]
    pipeline.append("items", [(i.item_id.encode(), encode_item(i)) for i in items])
    first = match_stage(pipeline, claims)
    step_until(first, lambda: bool(pipeline.read("matches", expect=1, settle_seconds=0)),
               "a first batch committed")
    first.close()  # the process goes away after a committed batch

    second = match_stage(pipeline, claims)
    step_until(second, second.caught_up, "the rest matched after the restart")

    got = matched_ids(pipeline, expect=len(items))
    assert len(got) == len(items) and set(got.values()) == {1}


class BuggyProcessor(MatchProcessor):
    def match(self, item: Item) -> tuple:  # type: ignore[type-arg]
        raise ZeroDivisionError("a bug in matching")


def test_a_bug_stops_the_stage_and_nothing_is_committed(
        pipeline: Pipeline, claims: Path, caplog: pytest.LogCaptureFixture) -> None:
    pipeline.append("items", [(b"item0", encode_item(story(0, MATCHING[0])))])
    metrics = Metrics(CollectorRegistry())
    stage = MatchStage(pipeline.stage_log("match"),
                       BuggyProcessor(ClaimRegistry(claims), metrics), metrics)
    stopping, failed = threading.Event(), StageFailed()
    thread = stage_thread(stage, stopping, failed)
    with caplog.at_level(logging.ERROR):
        thread.start()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert stopping.is_set(), "a bug must stop the whole process"
    assert failed.stage == "match" and isinstance(failed.error, ZeroDivisionError)
    assert any("retrying cannot mend" in r.getMessage() for r in caplog.records)
    # Not committed: a fixed matcher starts from the same item.
    fixed = match_stage(pipeline, claims)
    step_until(fixed, fixed.caught_up, "the item matched by a fixed stage")
    assert len(matched_ids(pipeline, expect=1)) == 1


def test_the_runner_retries_what_is_transient_and_stops_when_asked() -> None:
    class Flaky:
        name = "flaky"
        steps = 0
        closed = False

        def step(self) -> int:
            self.steps += 1
            if self.steps <= 2:
                raise RecoverableError("broker away")
            if self.steps == 4:
                stopping.set()
            return 1

        def failure_level(self, error: BaseException) -> int:
            return logging.WARNING

        def close(self) -> None:
            self.closed = True

    stopping, waits = threading.Event(), []
    flaky = Flaky()
    run_stage(flaky, stopping, wait=waits.append)
    assert flaky.steps == 4 and flaky.closed
    assert len(waits) == 2 and 0 < waits[0] <= waits[1]

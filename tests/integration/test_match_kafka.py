"""The match stage's Kafka transport on a real broker: one transaction per batch.

What both modes do (exactly once, dead letters, restarts) is in tests/contract; here is what only
Kafka has: a matcher process killed between consume and commit, an aborted transaction, a
fenced producer. Matches are read back the way the alerter reads them (read_committed).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.structs import TopicPartition
from prometheus_client import CollectorRegistry

from monitor.bus import kafka_log
from monitor.bus.kafka_log import KafkaStageLog
from monitor.bus.log import DeadLetter, Output
from monitor.config.settings import KafkaSettings
from monitor.errors import BusError, MonitorError
from monitor.match.registry import ClaimRegistry
from monitor.match.stage import MatchProcessor, MatchStage
from monitor.metrics import Metrics
from monitor.model import Item, Match, decode_match, encode_item
from tests.conftest import REPO
from tests.support.crashing_matcher import CRASH_EXIT_CODE
from tests.support.kafka_broker import LocalKafka, isolated_kafka_settings

pytestmark = pytest.mark.kafka

CLAIM = "lukashenko-generals"
CLAIMS_YAML = f"""
claims:
  - id: {CLAIM}
    text: Lukashenko says Ukrainian generals asked him in 2022 to get Putin to stop the war
    speaker: Alexander Lukashenko
    texts:
      ru: Лукашенко заявил, что украинские генералы в 2022 году просили его уговорить Путина
        остановить войну
    keywords:
      - [Lukashenko, Лукашенко]
      - [generals, генералы]
    threshold: 30
    status: tracking
"""
MATCHING = [
    ("ru", "Лукашенко: украинские генералы в 2022 году просили меня уговорить Путина "
           "остановить войну"),
    ("ru", "Генштаб ВСУ назвал фейком слова Лукашенко о просьбе украинских генералов"),
    ("en", "Kyiv denies Lukashenko's claim that Ukrainian generals asked him to broker peace"),
    ("en", "Lukashenko repeats that Ukrainian generals asked him to mediate with Putin"),
]
UNRELATED = [
    ("ru", "Лукашенко провел совещание по ценам на продукты"),
    ("ru", "Погода в Минске: снег и гололед"),
    ("en", "Central bank keeps rates on hold"),
]
UNDECODABLE = b"\xff\xfe not an item"
SESSION_TIMEOUT_SECONDS = 6.0  # the broker's minimum: a crashed member leaves the group soon


def make_item(n: int, language: str, title: str) -> Item:
    return Item(f"item-{n}", "wire", "Wire", f"https://wire.example/{n}", None, title, "",
                language, None, datetime(2026, 11, 28, tzinfo=UTC), f"hash-{n}")


@pytest.fixture
def kafka_settings(kafka_broker: LocalKafka) -> KafkaSettings:
    return isolated_kafka_settings(kafka_broker.bootstrap)


@pytest.fixture
def claims(tmp_path: Path) -> Path:
    path = tmp_path / "claims.yaml"
    path.write_text(CLAIMS_YAML, encoding="utf-8")
    return path


def produce(settings: KafkaSettings, records: list[tuple[bytes, bytes]]
            ) -> dict[TopicPartition, int]:
    """Write (key, value) records as the poller does; returns the end offset per partition."""
    producer = KafkaProducer(bootstrap_servers=list(settings.bootstrap_servers), acks="all",
                             enable_idempotence=True)
    try:
        futures = [producer.send(settings.items_topic, key=k, value=v) for k, v in records]
        metadata = [future.get(timeout=30) for future in futures]
    finally:
        producer.close(timeout=5)
    ends: dict[TopicPartition, int] = {}
    for meta in metadata:
        tp = TopicPartition(meta.topic, meta.partition)
        ends[tp] = max(ends.get(tp, 0), meta.offset + 1)
    return ends


def committed_offsets(settings: KafkaSettings) -> dict[TopicPartition, int]:
    """The group's committed offsets; empty while its coordinator is still being elected."""
    admin = KafkaAdminClient(bootstrap_servers=list(settings.bootstrap_servers))
    try:
        offsets = admin.list_group_offsets({settings.match_group: None})
    except KafkaError:  # CoordinatorNotAvailable on a fresh broker: not caught up yet
        return {}
    finally:
        admin.close()
    return {tp: meta.offset for tp, meta in offsets.get(settings.match_group, {}).items()}


def caught_up(settings: KafkaSettings, ends: dict[TopicPartition, int]) -> Callable[[], bool]:
    def check() -> bool:
        committed = committed_offsets(settings)
        return all(committed.get(tp, 0) >= end for tp, end in ends.items())
    return check


def wait_for(condition: Callable[[], bool], timeout_seconds: float = 40.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        assert time.monotonic() < deadline, "the match stage did not catch up in time"
        time.sleep(0.2)  # polling a condition against a deadline, not waiting blindly


def run_until(stage: MatchStage, done: Callable[[], bool], timeout_seconds: float = 40.0
              ) -> int:
    """Step as the runner does (a BusError is retried) until ``done()``; returns how many
    steps failed."""
    deadline = time.monotonic() + timeout_seconds
    failures = 0
    while not done():
        assert time.monotonic() < deadline, "the match stage did not catch up in time"
        try:
            stage.step()
        except BusError:
            failures += 1
    return failures


def match_log(settings: KafkaSettings, stage_log: type[KafkaStageLog] = KafkaStageLog
              ) -> KafkaStageLog:
    return stage_log(settings, "match", settings.items_topic, settings.match_group,
                     transactional_id=settings.transactional_id, batch_max=3,
                     session_timeout_seconds=SESSION_TIMEOUT_SECONDS)


def read_topic(settings: KafkaSettings, topic: str, *, expect: int, isolation: str,
               timeout_seconds: float = 30.0, settle_seconds: float = 1.5) -> list[Any]:
    """Every record on ``topic`` from the start: until ``expect`` arrived and it went quiet."""
    consumer = KafkaConsumer(
        topic, bootstrap_servers=list(settings.bootstrap_servers),
        group_id=f"reader-{uuid.uuid4().hex}", auto_offset_reset="earliest",
        enable_auto_commit=False, isolation_level=isolation)
    records: list[Any] = []
    deadline = time.monotonic() + timeout_seconds
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300).values():
                records.extend(batch)
                quiet_since = time.monotonic()
            if len(records) >= expect and time.monotonic() - quiet_since >= settle_seconds:
                break
    finally:
        consumer.close()
    return records


def expected_matches(claims: Path, items: list[Item]) -> dict[str, Match]:
    processor = MatchProcessor(ClaimRegistry(claims), Metrics(CollectorRegistry()))
    return {m.match_id: m for item in items for m in processor.process(item)}


@pytest.fixture
def stage_factory(kafka_settings: KafkaSettings, claims: Path
                  ) -> Iterator[Callable[[Metrics], MatchStage]]:
    stages: list[MatchStage] = []

    def build(metrics: Metrics) -> MatchStage:
        processor = MatchProcessor(ClaimRegistry(claims), metrics)
        stages.append(MatchStage(match_log(kafka_settings), processor, metrics))
        return stages[-1]

    yield build
    for stage in stages:
        stage.close()


def test_a_matcher_killed_before_commit_repeats_and_loses_nothing(
    kafka_settings: KafkaSettings, claims: Path,
    stage_factory: Callable[[Metrics], MatchStage],
) -> None:
    # Every item matches, so the transaction the crash leaves open holds matches too.
    items = [make_item(n, *MATCHING[n % len(MATCHING)]) for n in range(12)]
    ends = produce(kafka_settings, [(i.item_id.encode(), encode_item(i)) for i in items])
    expected = expected_matches(claims, items)
    assert len(expected) == len(items)

    config = {"kafka": kafka_settings.model_dump(mode="json"), "claims": str(claims),
              "crash_at": 2, "batch_max": 3, "session_timeout_seconds": SESSION_TIMEOUT_SECONDS}
    crashed = subprocess.run(
        [sys.executable, "-m", "tests.support.crashing_matcher", json.dumps(config)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr[-3000:]
    # Items are contiguous offsets and each makes one match, so the first transaction's offsets
    # say how many matches are committed; the open one wrote more that nobody may see.
    done_before = sum(committed_offsets(kafka_settings).values())
    assert 0 < done_before < len(items), "the first transaction should have committed"
    committed = read_topic(kafka_settings, kafka_settings.matches_topic, expect=done_before,
                           isolation="read_committed")
    written = read_topic(kafka_settings, kafka_settings.matches_topic, expect=done_before + 1,
                         isolation="read_uncommitted")
    assert len(committed) == done_before < len(written)

    stage = stage_factory(Metrics(CollectorRegistry()))  # same group, same transactional_id
    run_until(stage, caught_up(kafka_settings, ends))

    records = read_topic(kafka_settings, kafka_settings.matches_topic, expect=len(expected),
                         isolation="read_committed")
    assert Counter(decode_match(r.value).match_id for r in records) == Counter(set(expected))
    everything = read_topic(kafka_settings, kafka_settings.matches_topic,
                            expect=len(expected) + 1, isolation="read_uncommitted",
                            settle_seconds=0.5)
    assert len(everything) > len(expected)  # the aborted sends are in the log, yet invisible


class FlakyLog(KafkaStageLog):
    """Fails one send mid-transaction, the way a send to a lost partition leader does."""

    failed = False

    def _send(self, outputs: Sequence[Output], dead: Sequence[DeadLetter]) -> list[Any]:
        if outputs and not FlakyLog.failed:
            FlakyLog.failed = True
            raise KafkaTimeoutError("match: test: broker went away")
        return super()._send(outputs, dead)


def test_a_failed_transaction_is_aborted_and_its_batch_retried(
    kafka_settings: KafkaSettings, claims: Path,
) -> None:
    items = [make_item(n, *MATCHING[n % len(MATCHING)]) for n in range(9)]
    ends = produce(kafka_settings, [(i.item_id.encode(), encode_item(i)) for i in items])
    metrics = Metrics(CollectorRegistry())
    stage = MatchStage(match_log(kafka_settings, FlakyLog),
                       MatchProcessor(ClaimRegistry(claims), metrics), metrics)
    try:
        failures = run_until(stage, caught_up(kafka_settings, ends))
    finally:
        stage.close()
    assert FlakyLog.failed and failures == 1
    records = read_topic(kafka_settings, kafka_settings.matches_topic, expect=len(items),
                         isolation="read_committed")
    assert Counter(decode_match(r.value).match_id for r in records) == Counter(
        set(expected_matches(claims, items)))


def test_a_commit_whose_answer_is_lost_writes_no_match_twice(
    kafka_settings: KafkaSettings, claims: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The broker commits a batch's transaction, its answer never comes back (a broker
    restart) and the abort that follows cannot work: the stage log gives the producer up, the
    batch is read again, and the match ids committed meanwhile are read back first, so no
    match is written twice."""
    original = kafka_log.end_transaction
    lost: list[bool] = []

    def end_transaction(producer: Any, *, commit: bool, deadline_seconds: float) -> None:
        original(producer, commit=commit, deadline_seconds=deadline_seconds)
        if commit and not lost:
            lost.append(True)
            raise KafkaTimeoutError("test: the commit's answer was lost")

    monkeypatch.setattr(kafka_log, "end_transaction", end_transaction)
    items = [make_item(n, *MATCHING[n % len(MATCHING)]) for n in range(9)]
    ends = produce(kafka_settings, [(i.item_id.encode(), encode_item(i)) for i in items])
    metrics = Metrics(CollectorRegistry())
    stage = MatchStage(match_log(kafka_settings), MatchProcessor(ClaimRegistry(claims), metrics),
                       metrics)
    try:
        failures = run_until(stage, caught_up(kafka_settings, ends))
    finally:
        stage.close()
    assert lost and failures == 1
    records = read_topic(kafka_settings, kafka_settings.matches_topic, expect=len(items),
                         isolation="read_committed")
    assert Counter(decode_match(r.value).match_id for r in records) == Counter(
        set(expected_matches(claims, items)))


def test_a_fenced_matcher_stops_with_a_clear_error(
    kafka_settings: KafkaSettings, claims: Path,
    stage_factory: Callable[[Metrics], MatchStage],
) -> None:
    produce(kafka_settings, [(b"item-0", encode_item(make_item(0, *MATCHING[0])))])
    zombie = stage_factory(Metrics(CollectorRegistry()))
    stage_factory(Metrics(CollectorRegistry()))  # same transactional_id: fences the zombie
    deadline = time.monotonic() + 30
    with pytest.raises(MonitorError, match="match: producer .* can"):
        while time.monotonic() < deadline:
            zombie.step()


def poll_some(stage_log: KafkaStageLog, timeout_seconds: float = 30.0) -> list[Any]:
    """The next records the log's poll returns (the first poll joins the group)."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        records = stage_log.poll(0.5).records
        if records:
            return records
    raise AssertionError("no records polled in time")


def test_a_transaction_begun_ahead_commits_what_was_polled_after_it(
        kafka_settings: KafkaSettings) -> None:
    """begin() sends the first records' offsets while the stage works; records polled
    meanwhile join the step, and transact commits the offsets past all of them with the
    outputs (the second offsets wait for the first answer: kafka-python lost it otherwise)."""
    produce(kafka_settings, [(f"item-{n}".encode(), b"{}") for n in range(6)])
    stage_log = match_log(kafka_settings)  # batch_max 3: the first poll leaves some
    try:
        first = poll_some(stage_log)
        stage_log.begin(first)
        consumed = first + poll_some(stage_log)
        stage_log.transact(consumed, [Output("matches", b"k", b"v", "id-1")], [])
        committed = committed_offsets(kafka_settings)
        for record in consumed:
            tp = TopicPartition(kafka_settings.items_topic, record.partition)
            assert committed[tp] >= record.offset + 1
        assert len(read_topic(kafka_settings, kafka_settings.matches_topic, expect=1,
                              isolation="read_committed", settle_seconds=0.5)) == 1
    finally:
        stage_log.close()


def test_a_transaction_begun_ahead_and_left_commits_nothing(
        kafka_settings: KafkaSettings) -> None:
    """A step that began and did not transact (the runner tried it again) leaves nothing
    committed: the next begin aborts that transaction, and the log goes on."""
    produce(kafka_settings, [(f"item-{n}".encode(), b"{}") for n in range(3)])
    stage_log = match_log(kafka_settings)
    try:
        records = poll_some(stage_log)
        stage_log.begin(records)
        stage_log.begin([])  # the next step's, with nothing polled: aborts the first
        assert committed_offsets(kafka_settings) == {}
        stage_log.transact(records, [], [])
        committed = committed_offsets(kafka_settings)
        assert all(committed[TopicPartition(kafka_settings.items_topic, r.partition)]
                   >= r.offset + 1 for r in records)
    finally:
        stage_log.close()


def test_a_transaction_cannot_commit_less_than_it_began_with(
        kafka_settings: KafkaSettings) -> None:
    """The stage only ever adds records to a begun step: committing fewer is its bug, and
    the log says so and commits nothing."""
    produce(kafka_settings, [(f"item-{n}".encode(), b"{}") for n in range(3)])
    stage_log = match_log(kafka_settings)
    try:
        records = poll_some(stage_log)
        stage_log.begin(records)
        with pytest.raises(MonitorError, match="begun with offsets"):
            stage_log.transact(records[:1] if len(records) > 1 else [], [], [])
        assert committed_offsets(kafka_settings) == {}
    finally:
        stage_log.close()

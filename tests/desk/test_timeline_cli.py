"""``monitor claims timeline ID`` run as ops run it, on a state file and on the real broker."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka import KafkaProducer

from monitor.model import Match, encode_match
from monitor.store import Database
from tests.desk.factory import CLAIM, at, match
from tests.support.kafka_broker import LocalKafka, isolated_kafka_settings
from tests.test_cli import monitor

HOSTILE = "\x1b[2J\x1b[31mTASS: generals denied\x1b[0m"  # clears the screen, turns red


def claims_file(tmp_path: Path) -> Path:
    path = tmp_path / "claims.yaml"
    path.write_text(f"claims:\n  - id: {CLAIM.id}\n    text: {CLAIM.text}\n"
                    f"    made_at: {CLAIM.made_at}\n", encoding="utf-8")
    return path


def story() -> list[Match]:
    return [match("denial", relation="denial", published=at(22), title=HOSTILE),
            match("first", outlet="BelTA", published=at(21)),
            match("copy", outlet="RIA", published=at(21, 13), reprint_of="first"),
            match("old", outlet="Reuters", published=at(3), title="Old interview"),
            match("other", claim_id="another-claim", title="Not this claim")]


def assert_timeline(stdout: str) -> None:
    assert "\x1b" not in stdout
    assert "distinct outlets: follow-up 2, denial 1, corroboration 0" in stdout
    assert "latest denial: 2026-11-22 12:00Z TASS: TASS: generals denied" in stdout
    lines = stdout.splitlines()
    first = next(n for n, line in enumerate(lines)
                 if line.startswith("  2026") and "Story first" in line)
    assert "Story copy" in lines[first + 1] and "reprint" in lines[first + 1]
    assert "generals denied" in lines[first + 2]
    assert "Old interview" in stdout.split("background")[1]
    assert "Not this claim" not in stdout


def test_timeline_on_the_state_file_skips_an_unreadable_match(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    database = Database(state)
    with database.transaction() as conn:
        conn.executemany(
            "INSERT INTO match_log (match_id, claim_id, payload, logged_at) VALUES (?, ?, ?, 0)",
            [(m.match_id, m.claim_id, encode_match(m)) for m in story()]
            + [("broken", CLAIM.id, b"{not json")])
    database.close()
    result = monitor("claims", "timeline", CLAIM.id, "--claims", str(claims_file(tmp_path)),
                     env={"MONITOR_STATE_PATH": str(state)})
    assert result.returncode == 0, result.stderr
    assert_timeline(result.stdout)
    assert "match_log#6 skipped" in result.stderr


def test_an_unknown_claim_is_a_clear_error(tmp_path: Path) -> None:
    result = monitor("claims", "timeline", "no-such-claim", "--claims",
                     str(claims_file(tmp_path)),
                     env={"MONITOR_STATE_PATH": str(tmp_path / "state.sqlite3")})
    assert result.returncode == 2
    assert "no claim with id 'no-such-claim'" in result.stderr


@pytest.mark.kafka
def test_timeline_on_the_matches_topic(tmp_path: Path, kafka_broker: LocalKafka) -> None:
    kafka = isolated_kafka_settings(kafka_broker.bootstrap)
    producer = KafkaProducer(bootstrap_servers=list(kafka.bootstrap_servers), acks="all",
                             enable_idempotence=True)
    try:
        sent = [producer.send(kafka.matches_topic, key=m.claim_id.encode(), value=encode_match(m))
                for m in story()]
        sent.append(producer.send(kafka.matches_topic, key=CLAIM.id.encode(), value=b"\xff"))
        for future in sent:
            future.get(timeout=30)
    finally:
        producer.close(timeout=5)
    state = tmp_path / "state.sqlite3"
    result = monitor("claims", "timeline", CLAIM.id, "--claims", str(claims_file(tmp_path)),
                     env={"MONITOR_KAFKA__BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
                          "MONITOR_KAFKA__MATCHES_TOPIC": kafka.matches_topic,
                          "MONITOR_STATE_PATH": str(state)})
    assert result.returncode == 0, result.stderr
    assert_timeline(result.stdout)
    assert f"{kafka.matches_topic}/" in result.stderr and "skipped" in result.stderr
    assert not state.exists()  # Kafka mode reads the topic and leaves no state file

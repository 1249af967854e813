"""``monitor claims add --backtest`` and ``monitor claims backtest --apply`` as ops run them, on
a state file the match stage filled."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.bus.transport import KafkaTransport
from monitor.config.settings import Settings
from monitor.match.registry import ClaimRegistry
from monitor.match.stage import MatchProcessor, MatchStage
from monitor.metrics import Metrics
from monitor.model import decode_match
from monitor.store import Database
from tests.match.test_backtest import CLAIMS, match_all, stored_items
from tests.support.kafka_broker import LocalKafka, isolated_kafka_settings
from tests.support.waiting import eventually
from tests.test_cli import monitor

HOSTILE = "\x1b[2J\x1b[31mTASS: Lukashenko hockey\x1b[0m"
# A hang guard, not a speed limit: a backtest command takes ~6 CPU seconds (start-up, the claim
# index, the stored items), which on the 2-core CI machine under -n 2 went past monitor()'s 60 s.
CLI_HANG_SECONDS = 240


def test_add_with_backtest_then_apply_twice(tmp_path: Path) -> None:
    db, matched = match_all(tmp_path, None)
    with db.transaction() as conn:  # a hostile title, in the stored item and its features
        conn.execute("UPDATE item_log SET payload = CAST(replace(CAST(payload AS TEXT), ?, ?) "
                     "AS BLOB)",
                     ("Lukashenko plays ice hockey in Minsk", HOSTILE.replace("\x1b", "\\u001b")))
    db.close()
    claims = str(tmp_path / "claims.yaml")
    env = {"MONITOR_STATE_PATH": str(tmp_path / "state.sqlite3"),
           "MONITOR_MATCH__SEMANTIC": "false"}
    added = monitor("claims", "add", "--claims", claims, "--id", "hockey",
                    "--text", "Lukashenko plays ice hockey in Minsk", "--keywords",
                    "Lukashenko|Лукашенко", "--keywords", "hockey|хоккей", "--threshold", "30",
                    "--backtest", "3650d", env=env, timeout=CLI_HANG_SECONDS)
    assert added.returncode == 0, added.stderr
    assert "\x1b" not in added.stdout
    assert "TASS: Lukashenko hockey" in added.stdout and "1 link(s)" in added.stdout
    assert "backtest hockey" in added.stderr  # the progress bar
    assert "stored item(s) seen since" in added.stderr
    first = monitor("claims", "backtest", "generals", "--claims", claims, "--since",
                    "2020-01-01", "--apply", env=env, timeout=CLI_HANG_SECONDS)
    assert first.returncode == 0, first.stderr
    assert "applied: 0 new background link(s)" in first.stdout  # the stage linked them all
    for _ in range(2):
        again = monitor("claims", "backtest", "hockey", "--claims", claims, "--since",
                        "2020-01-01", "--apply", env=env, timeout=CLI_HANG_SECONDS)
        assert again.returncode == 0, again.stderr
    assert "applied: 0 new background link(s) on the match log (1 already there)" in again.stdout
    db = Database(tmp_path / "state.sqlite3")
    with db.transaction() as conn:
        rows = conn.execute("SELECT payload FROM match_log WHERE claim_id = 'hockey'").fetchall()
    db.close()
    [link] = [decode_match(bytes(row[0])) for row in rows]
    assert link.evidence.backtest and link.item.item_id == "item12"
    assert len(matched) == len({m.match_id for m in matched})


def test_backtest_of_an_unknown_claim_says_so(tmp_path: Path) -> None:
    match_all(tmp_path, None)[0].close()
    result = monitor("claims", "backtest", "nope", "--claims", str(tmp_path / "claims.yaml"),
                     env={"MONITOR_STATE_PATH": str(tmp_path / "state.sqlite3"),
                          "MONITOR_MATCH__SEMANTIC": "false"}, timeout=CLI_HANG_SECONDS)
    assert result.returncode == 2 and "no claim with id 'nope'" in result.stderr


def test_backtest_without_a_state_file_names_the_path(tmp_path: Path) -> None:
    match_all(tmp_path, None)[0].close()
    missing = tmp_path / "elsewhere" / "state.sqlite3"
    result = monitor("claims", "backtest", "generals", "--claims", str(tmp_path / "claims.yaml"),
                     env={"MONITOR_STATE_PATH": str(missing), "MONITOR_MATCH__SEMANTIC": "false"},
                     timeout=CLI_HANG_SECONDS)
    assert result.returncode == 2 and f"no state file at {missing}" in result.stderr
    assert not missing.exists()  # not made empty on the way


@pytest.mark.kafka
def test_backtest_on_the_items_topic(tmp_path: Path, kafka_broker: LocalKafka) -> None:
    kafka = isolated_kafka_settings(kafka_broker.bootstrap)
    settings = Settings.model_validate({"state_path": tmp_path / "state.sqlite3",
                                        "kafka": kafka.model_dump(mode="json")})
    transport = KafkaTransport(settings)
    transport.prepare()
    claims = tmp_path / "claims.yaml"
    claims.write_text(CLAIMS, encoding="utf-8")
    publisher = transport.publisher()
    publisher.publish(stored_items())
    publisher.close()
    metrics = Metrics(CollectorRegistry())
    stage = MatchStage(transport.stage_log("match"),
                       MatchProcessor(ClaimRegistry(claims), metrics), metrics)
    try:
        eventually(lambda: stage.step() == 0 and stage.caught_up() and bool(
            transport.read_matches()), 120, "the items matched")
    finally:
        stage.close()
        transport.close()
    env = {"MONITOR_KAFKA__BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
           "MONITOR_KAFKA__ITEMS_TOPIC": kafka.items_topic,
           "MONITOR_KAFKA__MATCHES_TOPIC": kafka.matches_topic,
           "MONITOR_KAFKA__ITEM_FEATURES_TOPIC": kafka.item_features_topic,
           "MONITOR_STATE_PATH": str(tmp_path / "state.sqlite3"),
           "MONITOR_MATCH__SEMANTIC": "false"}
    added = monitor("claims", "add", "--claims", str(claims), "--id", "hockey",
                    "--text", "Lukashenko plays ice hockey in Minsk", "--keywords",
                    "Lukashenko|Лукашенко", "--keywords", "hockey|хоккей", "--threshold", "30",
                    "--backtest", "3650d", "--apply", env=env, timeout=CLI_HANG_SECONDS)
    assert added.returncode == 0, added.stderr
    assert "Lukashenko plays ice hockey in Minsk" in added.stdout
    assert "applied: 1 new background link(s)" in added.stdout
    again = monitor("claims", "backtest", "hockey", "--claims", str(claims), "--apply",
                    env=env, timeout=CLI_HANG_SECONDS)
    assert again.returncode == 0, again.stderr
    assert "applied: 0 new background link(s) on the match log (1 already there)" in again.stdout

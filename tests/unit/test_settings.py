"""monitor/config/settings.py: settings come from MONITOR_* variables, errors name them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from monitor.config.settings import (
    DEFAULT_USER_AGENT,
    load_settings,
    match_settings,
    unknown_environment_settings,
)
from monitor.errors import ConfigError
from tests.conftest import REPO


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith("MONITOR_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_defaults_without_environment() -> None:
    settings = load_settings()
    assert settings.embedded
    assert settings.kafka.bootstrap_servers == ()
    assert settings.poll.user_agent == DEFAULT_USER_AGENT
    assert "claim-monitor/" in settings.poll.user_agent  # an honest, identifying User-Agent
    assert settings.poll.per_host_concurrency == 1
    assert (settings.http.host, settings.http.port) == ("127.0.0.1", 9464)


@pytest.mark.parametrize(
    ("value", "servers"),
    [
        pytest.param("broker1:9092", ("broker1:9092",), id="one"),
        pytest.param("b1:9092,b2:9092", ("b1:9092", "b2:9092"), id="two"),
        pytest.param(" b1:9092 , b2:9092 ,, ", ("b1:9092", "b2:9092"), id="spaces-and-blanks"),
    ],
)
def test_bootstrap_servers_split(
    clean_env: pytest.MonkeyPatch, value: str, servers: tuple[str, ...]
) -> None:
    clean_env.setenv("MONITOR_KAFKA__BOOTSTRAP_SERVERS", value)
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == servers
    assert not settings.embedded


@pytest.mark.parametrize("value", [pytest.param("", id="empty"), pytest.param(" , ", id="blank")])
def test_empty_bootstrap_servers_means_embedded(clean_env: pytest.MonkeyPatch, value: str) -> None:
    clean_env.setenv("MONITOR_KAFKA__BOOTSTRAP_SERVERS", value)
    assert load_settings().embedded


def test_nested_and_top_level_variables(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("MONITOR_POLL__TIMEOUT_SECONDS", "7.5")
    clean_env.setenv("MONITOR_POLL__USER_AGENT", "desk-bot/2 (+mailto:desk@example.org)")
    clean_env.setenv("MONITOR_HTTP__ADDRESS", ":9100")
    clean_env.setenv("MONITOR_STATE_PATH", str(tmp_path / "s.db"))
    clean_env.setenv("MONITOR_KAFKA__ITEMS_TOPIC", "test.items")
    settings = load_settings()
    assert settings.poll.timeout_seconds == 7.5
    assert settings.poll.user_agent == "desk-bot/2 (+mailto:desk@example.org)"
    assert (settings.http.host, settings.http.port) == ("0.0.0.0", 9100)
    assert settings.state_path == tmp_path / "s.db"
    assert settings.kafka.items_topic == "test.items"


def test_variable_names_are_case_insensitive(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("monitor_poll__workers", "3")
    assert load_settings().poll.workers == 3


def test_unprefixed_variables_are_ignored(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("POLL__WORKERS", "3")
    assert load_settings().poll.workers == 32


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        pytest.param("MONITOR_POLL__TIMEOUT_SECONDS", "abc", "valid number", id="not-a-number"),
        pytest.param("MONITOR_POLL__TIMEOUT_SECONDS", "-1", "greater than 0", id="negative"),
        pytest.param("MONITOR_POLL__PER_HOST_CONCURRENCY", "0", "greater than", id="zero"),
        pytest.param("MONITOR_POLL__JITTER_RATIO", "2", "less than", id="ratio-above-one"),
        pytest.param("MONITOR_HTTP__ADDRESS", "localhost", "pattern", id="address-no-port"),
        pytest.param("MONITOR_LOG_LEVEL", "loud", "pattern", id="log-level"),
        pytest.param("MONITOR_KAFKA__TOPIC_PARTITIONS", "0", "greater than", id="partitions"),
        pytest.param("MONITOR_POLL__BOGUS", "1", "not a setting", id="unknown-nested-key"),
        pytest.param("MONITOR_MATCH__SEMANTICS", "false",
                     "did you mean MONITOR_MATCH__SEMANTIC?", id="unknown-match-key"),
    ],
)
def test_bad_value_names_the_variable(
    clean_env: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(f"environment: {name}: ")
    assert expected in message


def test_every_bad_variable_is_reported(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MONITOR_POLL__WORKERS", "many")
    clean_env.setenv("MONITOR_LOG_LEVEL", "loud")
    message = str(pytest.raises(ConfigError, load_settings).value)
    assert "MONITOR_POLL__WORKERS" in message and "MONITOR_LOG_LEVEL" in message


def test_port_out_of_range_is_a_config_error(clean_env: pytest.MonkeyPatch) -> None:
    # Otherwise start-up fails later, at bind(), with an OSError instead of naming the variable.
    clean_env.setenv("MONITOR_HTTP__ADDRESS", "0.0.0.0:99999")
    with pytest.raises(ConfigError, match="MONITOR_HTTP__ADDRESS"):
        load_settings()


def test_password_never_printed(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MONITOR_KAFKA__SASL_USERNAME", "monitor")
    clean_env.setenv("MONITOR_KAFKA__SASL_PASSWORD", "hunter2-secret")
    settings = load_settings()
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == "hunter2-secret"
    for shown in (repr(settings), str(settings), repr(settings.kafka), str(settings.kafka),
                  settings.model_dump_json(), str(settings.model_dump())):
        assert "hunter2-secret" not in shown
    assert "**********" in repr(settings)


def test_password_not_echoed_in_errors(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MONITOR_KAFKA__SASL_PASSWORD", "hunter2-secret")
    clean_env.setenv("MONITOR_KAFKA__TOPIC_PARTITIONS", "zero")
    message = str(pytest.raises(ConfigError, load_settings).value)
    assert "MONITOR_KAFKA__TOPIC_PARTITIONS" in message
    assert "hunter2-secret" not in message


def test_a_misspelt_variable_is_an_error_with_the_setting_meant(
        clean_env: pytest.MonkeyPatch) -> None:
    # One underscore instead of two: before, a warning, and the process ran embedded.
    clean_env.setenv("MONITOR_KAFKA_BOOTSTRAP_SERVERS", "broker1:9092")
    message = str(pytest.raises(ConfigError, load_settings).value)
    assert message == ("environment: MONITOR_KAFKA_BOOTSTRAP_SERVERS: not a setting the "
                       "monitor knows; did you mean MONITOR_KAFKA__BOOTSTRAP_SERVERS?")


def test_every_unknown_variable_is_reported_with_the_bad_values(
        clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MONITOR_STATEPATH", "/tmp/x")
    clean_env.setenv("MONITOR_NOTHING_LIKE_IT", "1")
    clean_env.setenv("MONITOR_POLL__WORKERS", "many")
    lines = str(pytest.raises(ConfigError, load_settings).value).splitlines()
    assert lines == [
        "environment: MONITOR_NOTHING_LIKE_IT: not a setting the monitor knows",
        "environment: MONITOR_STATEPATH: not a setting the monitor knows; "
        "did you mean MONITOR_STATE_PATH?",
        "environment: MONITOR_POLL__WORKERS: Input should be a valid integer, unable to parse "
        "string as an integer",
    ]


def test_the_development_brokers_variables_are_not_errors(
        clean_env: pytest.MonkeyPatch) -> None:
    # deploy/kafka/local-kafka reads these; a shell that exports them still runs the monitor.
    for name in ("MONITOR_KAFKA_CACHE", "MONITOR_KAFKA_DIR", "MONITOR_KAFKA_START_TIMEOUT",
                 "MONITOR_KAFKA_STOP_TIMEOUT", "MONITOR_KAFKA_HEAP_OPTS"):
        clean_env.setenv(name, "1")
    assert load_settings().embedded


def _shipped_variables() -> set[str]:
    """Every MONITOR_ variable the deploy files set and the README's settings table lists."""
    texts = [path.read_text(encoding="utf-8") for path in (REPO / "deploy").rglob("*")
             if path.is_file() and path.name != "local-kafka"]
    texts.append((REPO / "Dockerfile").read_text(encoding="utf-8"))
    texts += [line for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines()
              if line.startswith("| `MONITOR_")]
    return {name for text in texts for name in re.findall(r"MONITOR_[A-Z0-9_]*[A-Z0-9]", text)}


def test_every_shipped_variable_is_a_setting() -> None:
    names = _shipped_variables()
    assert {"MONITOR_KAFKA__BOOTSTRAP_SERVERS", "MONITOR_HTTP__ADDRESS"} <= names
    assert unknown_environment_settings(dict.fromkeys(names, "")) == []


def test_the_embedding_cache_is_a_match_setting_with_the_users_cache_as_default(
        clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert load_settings().match.embedding_cache_path() == (
        tmp_path / "xdg" / "monitor" / "embeddings.sqlite3")
    clean_env.delenv("XDG_CACHE_HOME")
    assert match_settings().embedding_cache_path() == (
        Path.home() / ".cache" / "monitor" / "embeddings.sqlite3")
    clean_env.setenv("MONITOR_MATCH__EMBEDDING_CACHE", str(tmp_path / "vectors.sqlite3"))
    assert load_settings().match.embedding_cache_path() == tmp_path / "vectors.sqlite3"
    assert match_settings().embedding_cache_path() == tmp_path / "vectors.sqlite3"


def test_the_match_section_alone_ignores_other_sections_and_names_its_own_errors(
        clean_env: pytest.MonkeyPatch) -> None:
    """The evaluations read only the match section: a wrong Kafka setting does not stop them."""
    clean_env.setenv("MONITOR_KAFKA__SESSION_TIMEOUT_SECONDS", "soon")
    clean_env.setenv("MONITOR_MATCH__SEMANTIC", "false")
    assert match_settings().semantic is False
    clean_env.setenv("MONITOR_MATCH__EMBED_THREADS", "0")
    with pytest.raises(ConfigError, match="MONITOR_MATCH__EMBED_THREADS"):
        match_settings()

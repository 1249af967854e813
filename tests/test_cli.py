"""The ``monitor`` console command, run as ops run it: a subprocess with environment settings."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.feed_server import FeedServer

MONITOR = [sys.executable, "-m", "monitor"]
RSS = (b'<?xml version="1.0" encoding="windows-1251"?><rss version="2.0"><channel>'
       b"<title>W</title><language>ru</language>"
       + "<item><title>Лукашенко ответил</title><link>https://wire.example/1?utm_source=x"
         "</link><description>&lt;p&gt;Текст&lt;/p&gt;</description></item>".encode("cp1251")
       + b"<item><title>Two</title><link>https://wire.example/2</link></item>"
       b"</channel></rss>")


# Set for the whole suite by tests/conftest.py; every other MONITOR_ variable of the shell
# running the tests is left out, so that each test states the settings it runs with.
SUITE_SETTINGS = ("MONITOR_MATCH__EMBEDDING_CACHE", "MONITOR_POLL__ALLOWED_NETWORKS",
                  "MONITOR_DESK__ADDRESS")


def monitor_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without its MONITOR_ settings (but the suite's), plus ``env``."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("MONITOR_") or k in SUITE_SETTINGS}
    return {**clean, **(env or {})}


def monitor(*args: str, env: dict[str, str] | None = None, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MONITOR, *args], capture_output=True, text=True, cwd=REPO,
                          env=monitor_env(env), timeout=timeout, check=False)


def write_feeds(path: Path, server: FeedServer) -> Path:
    path.write_text(
        "feeds:\n"
        f"  - id: wire\n    source: Test Wire\n    url: {server.url('/wire.xml')}\n"
        "    interval: 60\n    tags: [test]\n", encoding="utf-8")
    return path


def test_check_accepts_the_shipped_feeds_file() -> None:
    result = monitor("check")
    assert result.returncode == 0, result.stderr
    assert "feeds.yaml" in result.stdout and "ok" in result.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("feeds:\n  - id: a\n    source: A\n    url: https://a.example/\n"
                     "  - id: a\n    source: B\n    url: https://b.example/\n",
                     ["feeds[1] (id 'a')", "field 'id'", "duplicate id", "line 5"],
                     id="duplicate-id"),
        pytest.param("feeds:\n  - id: a\n    source: A\n    url: not a url\n",
                     ["feeds[0] (id 'a')", "field 'url'", "line 4"], id="bad-url"),
        pytest.param("feeds:\n  - id: a\n    source: A\n    url: https://a.example/\n"
                     "    interval: 0\n", ["field 'interval'", "at least 1 second", "line 5"],
                     id="interval-zero"),
        pytest.param("feeds:\n  - id: a\n    source: A\n    url: https://a.example/\n"
                     "    langauge: ru\n", ["unknown key 'langauge'", "line 5"],
                     id="unknown-key"),
        pytest.param("feeds:\n  - id: a\n    source: [A\n", ["YAML syntax error", "line 4"],
                     id="yaml-syntax"),
    ],
)
def test_check_names_file_entry_field_and_line(tmp_path: Path, text: str,
                                               expected: list[str]) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text(text, encoding="utf-8")
    result = monitor("check", "--feeds", str(path))
    assert result.returncode == 2
    assert str(path) in result.stderr
    for fragment in expected:
        assert fragment in result.stderr


def test_bad_environment_setting_is_named() -> None:
    result = monitor("check", env={"MONITOR_POLL__TIMEOUT_SECONDS": "soon"})
    assert result.returncode == 2
    assert "MONITOR_POLL__TIMEOUT_SECONDS" in result.stderr


def test_fetch_prints_items_as_json_lines(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.set("/wire.xml", RSS, content_type="application/rss+xml")
    feeds = write_feeds(tmp_path / "feeds.yaml", feed_server)
    result = monitor("fetch", "wire", "--feeds", str(feeds))
    assert result.returncode == 0, result.stderr
    items = [json.loads(line) for line in result.stdout.splitlines()]
    assert [item["title"] for item in items] == ["Лукашенко ответил", "Two"]
    assert items[0]["url"] == "https://wire.example/1" and items[0]["summary"] == "Текст"
    assert items[0]["language"] == "ru" and items[0]["schema"] == 1
    assert "2 items" in result.stderr


def test_fetch_of_an_unknown_feed_is_an_error(tmp_path: Path, feed_server: FeedServer) -> None:
    feeds = write_feeds(tmp_path / "feeds.yaml", feed_server)
    result = monitor("fetch", "nope", "--feeds", str(feeds))
    assert result.returncode == 2 and "no feed with id 'nope'" in result.stderr


def test_embedded_run_once_keeps_state_across_restarts(tmp_path: Path,
                                                       feed_server: FeedServer) -> None:
    feed_server.set("/wire.xml", RSS, content_type="application/rss+xml", conditional=False)
    feeds = write_feeds(tmp_path / "feeds.yaml", feed_server)
    env = {"MONITOR_STATE_PATH": str(tmp_path / "state.sqlite3"),
           "MONITOR_HTTP__ADDRESS": "127.0.0.1:0",
           "MONITOR_LOG_LEVEL": "debug"}  # a first poll's items (backlog) are DEBUG lines
    first = monitor("run", "--once", "--feeds", str(feeds), env=env)
    assert first.returncode == 0, first.stderr
    assert "Лукашенко ответил" in first.stderr  # embedded mode logs each new item
    assert "first poll of the feed: 2 item(s) published as backlog" in first.stderr
    feed_server.set("/wire.xml", RSS + b"\n", content_type="application/rss+xml",
                    conditional=False)
    second = monitor("run", "--once", "--feeds", str(feeds), env=env)
    assert second.returncode == 0, second.stderr
    assert "Лукашенко ответил" not in second.stderr
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM item_log").fetchone() == (2,)


def test_unreachable_broker_is_a_clear_error(tmp_path: Path, feed_server: FeedServer) -> None:
    feeds = write_feeds(tmp_path / "feeds.yaml", feed_server)
    env = {"MONITOR_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9",
           "MONITOR_KAFKA__STARTUP_TIMEOUT_SECONDS": "2",
           "MONITOR_STATE_PATH": str(tmp_path / "state.sqlite3"),
           "MONITOR_HTTP__ADDRESS": "127.0.0.1:0"}
    result = monitor("poll", "--once", "--feeds", str(feeds), env=env, timeout=120)
    assert result.returncode == 1
    assert "kafka: no broker reachable at 127.0.0.1:9" in result.stderr


@pytest.mark.parametrize("command", [pytest.param(["check"], id="check"),
                                     pytest.param(["run", "--once"], id="run-once")])
def test_a_misspelt_setting_stops_the_command_naming_the_setting_meant(
        tmp_path: Path, command: list[str]) -> None:
    # One underscore: before, a warning, and `run` went on in embedded mode.
    env = {"MONITOR_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
           "MONITOR_STATE_PATH": str(tmp_path / "state.sqlite3")}
    result = monitor(*command, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "monitor: error: environment: MONITOR_KAFKA_BOOTSTRAP_SERVERS: not a setting the "
        "monitor knows; did you mean MONITOR_KAFKA__BOOTSTRAP_SERVERS?\n")
    assert not (tmp_path / "state.sqlite3").exists()  # stopped before touching anything


def test_embedded_run_matches_new_items_to_claims(tmp_path: Path, feed_server: FeedServer
                                                  ) -> None:
    story = ("<item><title>Генштаб ВСУ назвал фейком слова Лукашенко о просьбе украинских "
             "генералов</title><link>https://wire.example/denial</link></item>")
    body = RSS.replace(b"</channel>", story.encode("cp1251") + b"</channel>")
    feed_server.set("/wire.xml", body, content_type="application/rss+xml")
    feeds = write_feeds(tmp_path / "feeds.yaml", feed_server)
    env = {"MONITOR_STATE_PATH": str(tmp_path / "state.sqlite3"),
           "MONITOR_HTTP__ADDRESS": "127.0.0.1:0"}
    result = monitor("run", "--once", "--feeds", str(feeds), "--claims",
                     str(REPO / "claims.yaml"), env=env)
    assert result.returncode == 0, result.stderr
    assert "match lukashenko-generals-2022 denial" in result.stderr
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        rows = db.execute("SELECT claim_id, payload FROM match_log").fetchall()
    assert [row[0] for row in rows] == ["lukashenko-generals-2022"]
    assert json.loads(rows[0][1])["relation"] == "denial"


def test_check_validates_the_alert_routes(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("receivers:\n  - name: desk\n    urls: ['json://hooks.example.org/x']\n"
                      "route:\n  receiver: nobody\n", encoding="utf-8")
    result = monitor("check", "--alerts", str(routes))
    assert result.returncode == 2
    assert str(routes) in result.stderr and "nobody" in result.stderr


def test_check_warns_about_missing_secrets_without_printing_any() -> None:
    result = monitor("check", env={"SLACK_TOKEN_A": "xoxb-secret-value"})
    assert result.returncode == 0
    assert "SLACK_TOKEN_B" in result.stderr and "xoxb-secret-value" not in result.stderr


SHIPPED_SECRETS = {"SLACK_TOKEN_A": "T0AAAAAAA", "SLACK_TOKEN_B": "B0BBBBBBB",
                   "SLACK_TOKEN_C": "c" * 24, "SMTP_USER": "desk", "SMTP_PASSWORD": "hunter2",
                   "OPS_WEBHOOK_TOKEN": "tok3n"}


def test_check_accepts_the_shipped_routes_with_their_secrets_set() -> None:
    result = monitor("check", env=SHIPPED_SECRETS)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr


@pytest.mark.parametrize(("url", "expected"), [
    # Apprise 2.3 dropped msteams:// (Microsoft retired Office 365 connectors).
    pytest.param("msteams://team/token", "retired by Microsoft", id="retired-teams"),
    # A Slack URL with one token of three: Apprise cannot use it; found before an alert fails.
    pytest.param("slack://${SLACK_TOKEN_A}/#claims", "Apprise cannot use slack://",
                 id="incomplete-slack"),
])
def test_check_refuses_a_channel_url_apprise_cannot_use(tmp_path: Path, url: str,
                                                        expected: str) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"receivers:\n  - name: desk\n    urls: ['{url}']\n"
                      "route:\n  receiver: desk\n", encoding="utf-8")
    result = monitor("check", "--alerts", str(routes), env=SHIPPED_SECRETS)
    assert result.returncode == 2
    assert expected in result.stderr and "'desk'" in result.stderr
    assert "T0AAAAAAA" not in result.stderr

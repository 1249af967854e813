"""deploy/prometheus against the real tools: promtool checks the running daemon's /metrics, the
scrape configuration and the alerting rules (with their unit tests), and a real Prometheus server
(Debian's ``prometheus`` package, installed by .ci/run) scrapes the daemon and loads the rules.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitor.health import HealthServer
from monitor.metrics import Metrics
from monitor.model import FeedState
from tests.conftest import REPO
from tests.support.feed_server import FeedServer
from tests.support.waiting import eventually

DEPLOY = REPO / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
_INSTALL = "install Debian's prometheus package (apt-get install prometheus; .ci/run does)"
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason=f"promtool not found: {_INSTALL}")
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None,
                                      reason=f"prometheus not found: {_INSTALL}")

RSS = (b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>W</title>'
       b"<item><title>One</title><link>https://wire.example/1</link></item>"
       b"<item><title>Two</title><link>https://wire.example/2</link></item>"
       b"</channel></rss>")
# One poll only: a long interval and no start-up jitter make the counters exact.
INTERVAL_SECONDS = 3600

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, cwd=REPO,
                          timeout=60, check=False)


def get_or_none(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.TransportError:
        return None


class Process:
    """A child process whose output goes to a file that failures quote."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with log.open("wb") as out:
            self._proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                          env=env)

    def alive(self) -> None:
        if self._proc.poll() is not None:
            pytest.fail(f"{self._proc.args[0]} exited with {self._proc.returncode}:\n"
                        + self.log.read_text(errors="replace")[-3000:])

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``monitor run`` (embedded) against a local feed server; its base URL once it has polled."""
    tmp = tmp_path_factory.mktemp("daemon")
    port = free_port()
    with FeedServer() as server:
        server.set("/wire.xml", RSS)
        feeds = tmp / "feeds.yaml"
        feeds.write_text(f"feeds:\n  - id: wire\n    source: Test Wire\n"
                         f"    url: {server.url('/wire.xml')}\n"
                         f"    interval: {INTERVAL_SECONDS}\n", encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
        env.update(MONITOR_STATE_PATH=str(tmp / "state.sqlite3"),
                   MONITOR_HTTP__ADDRESS=f"127.0.0.1:{port}", MONITOR_POLL__JITTER_RATIO="0",
                   MONITOR_MATCH__SEMANTIC="false",
                   MONITOR_POLL__ALLOWED_NETWORKS="127.0.0.0/8")  # the feed server is local
        if "MONITOR_MATCH__EMBEDDING_CACHE" in os.environ:
            env["MONITOR_MATCH__EMBEDDING_CACHE"] = os.environ["MONITOR_MATCH__EMBEDDING_CACHE"]
        process = Process([sys.executable, "-m", "monitor", "run", "--feeds", str(feeds)],
                          tmp / "monitor.log", env)
        base = f"http://127.0.0.1:{port}"
        try:
            def polled() -> bool | None:
                process.alive()
                response = get_or_none(f"{base}/metrics")
                done = response is not None and (
                    'monitor_feed_polls_total{feed="wire",outcome="new_items"} 1.0'
                    in response.text)
                return True if done else None

            eventually(polled, 30, "the daemon's first poll of the test feed")
            yield base
        finally:
            process.stop()


def exported_names(metrics_text: str) -> set[str]:
    """Family names and sample names (a histogram's ``_count``, ``_sum``, ``_bucket``)."""
    families = re.findall(r"^# TYPE (\S+) ", metrics_text, re.MULTILINE)
    samples = re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", metrics_text, re.MULTILINE)
    return set(families) | set(samples)


def rules_file() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "rules.yml").read_text(encoding="utf-8"))
    return loaded


def alert_names() -> list[str]:
    return [rule["alert"] for group in rules_file()["groups"] for rule in group["rules"]]


# --- the daemon's /metrics -------------------------------------------------------------------

@needs_promtool
def test_daemon_metrics_pass_promtool_check_metrics(daemon: str) -> None:
    body = httpx.get(f"{daemon}/metrics").content
    result = promtool("check", "metrics", stdin=body)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def test_daemon_exports_feed_interval_and_readiness(daemon: str) -> None:
    text = httpx.get(f"{daemon}/metrics").text
    assert f'monitor_feed_interval_seconds{{feed="wire"}} {INTERVAL_SECONDS:.1f}' in text
    assert 'monitor_ready{check="scheduler"} 1.0' in text
    assert 'monitor_dead_letters_total{stage="match"} 0.0' in text


def test_every_metric_the_rules_use_is_exported_by_the_daemon(daemon: str) -> None:
    exported = exported_names(httpx.get(f"{daemon}/metrics").text)
    used = {name for group in rules_file()["groups"] for rule in group["rules"]
            for name in re.findall(r"\bmonitor_[a-z0-9_]+", rule["expr"])}
    assert used and used <= exported, f"not exported: {sorted(used - exported)}"


def test_ready_metric_follows_the_readyz_checks() -> None:
    registry = CollectorRegistry()
    server = HealthServer("127.0.0.1", 0, registry)
    state = {"kafka": True}
    server.add_check("kafka", lambda: state["kafka"])
    assert registry.get_sample_value("monitor_ready", {"check": "kafka"}) == 1.0
    state["kafka"] = False
    assert registry.get_sample_value("monitor_ready", {"check": "kafka"}) == 0.0
    server.start()
    server.stop()
    assert registry.get_sample_value("monitor_ready", {"check": "kafka"}) is None


def test_a_removed_feed_leaves_no_series_that_would_go_stale() -> None:
    metrics = Metrics(CollectorRegistry())
    for feed_id in ("gone", "kept"):
        metrics.init_feed(feed_id, 60, FeedState(feed_id, last_success_at=1000.0))
    metrics.remove_feed("gone")
    feeds = {sample.labels.get("feed") for family in metrics.registry.collect()
             for sample in family.samples}
    assert "gone" not in feeds and "kept" in feeds


# --- promtool on the files -------------------------------------------------------------------

@needs_promtool
@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("check", "config", "deploy/prometheus/prometheus.yml"), id="config"),
        pytest.param(("check", "config", "deploy/prometheus/prometheus-compose.yml"),
                     id="compose-config"),
        pytest.param(("check", "rules", "deploy/prometheus/rules.yml"), id="rules"),
        pytest.param(("test", "rules", "deploy/prometheus/rules_test.yml"), id="rule-tests"),
    ],
)
def test_promtool_accepts(args: tuple[str, ...]) -> None:
    result = promtool(*args)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    tests = yaml.safe_load((DEPLOY / "rules_test.yml").read_text(encoding="utf-8"))["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    names = alert_names()
    assert len(names) == len(set(names)), "alert names must be unique"
    assert not set(names) - firing, f"no firing case: {sorted(set(names) - firing)}"
    assert not set(names) - quiet, f"no quiet case: {sorted(set(names) - quiet)}"


def test_every_alert_has_severity_summary_and_description() -> None:
    for group in rules_file()["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]


# --- a real Prometheus server ----------------------------------------------------------------

@pytest.fixture
def prometheus(tmp_path: Path, daemon: str) -> Iterator[str]:
    """A Prometheus server scraping the daemon every second, with rules.yml loaded."""
    assert PROMETHEUS is not None
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(DEPLOY / "rules.yml")],
        "scrape_configs": [{
            "job_name": "monitor-poll",
            "static_configs": [{"targets": [daemon.removeprefix("http://")],
                                "labels": {"component": "poll"}}],
        }],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    process = Process([PROMETHEUS, f"--config.file={config_path}",
                       f"--storage.tsdb.path={tmp_path / 'data'}",
                       f"--web.listen-address=127.0.0.1:{port}"],
                      tmp_path / "prometheus.log")
    base = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool | None:
            process.alive()
            response = get_or_none(f"{base}/-/ready")
            return True if response is not None and response.status_code == 200 else None

        eventually(ready, 20, "Prometheus to be ready")
        yield base
    finally:
        process.stop()


def query(base: str, promql: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5)
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


@needs_prometheus
def test_prometheus_scrapes_the_daemon(prometheus: str) -> None:
    def polls() -> list[dict[str, Any]] | None:
        result = query(prometheus, 'monitor_feed_polls_total{feed="wire",outcome="new_items"}')
        return result or None

    [series] = eventually(polls, 20, "monitor_feed_polls_total in Prometheus")
    assert series["value"][1] == "1"
    assert series["metric"]["job"] == "monitor-poll" and series["metric"]["component"] == "poll"
    [published] = query(prometheus, 'monitor_items_published_total{feed="wire"}')
    assert published["value"][1] == "2"
    [interval] = query(prometheus, 'monitor_feed_interval_seconds{feed="wire"}')
    assert interval["value"][1] == str(INTERVAL_SECONDS)


@needs_prometheus
def test_prometheus_loads_and_evaluates_every_rule(prometheus: str) -> None:
    def evaluated() -> list[dict[str, Any]] | None:
        response = httpx.get(f"{prometheus}/api/v1/rules", timeout=5)
        response.raise_for_status()
        groups: list[dict[str, Any]] = response.json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        done = rules and all(rule["health"] != "unknown" for rule in rules)
        return groups if done else None

    groups = eventually(evaluated, 20, "every rule to be evaluated once")
    expected_groups = [group["name"] for group in rules_file()["groups"]]
    assert [group["name"] for group in groups] == expected_groups
    rules = [rule for group in groups for rule in group["rules"]]
    assert [rule["name"] for rule in rules] == alert_names()
    unhealthy = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert not unhealthy
    # The daemon is up, ready and has just polled its only feed successfully.
    states = {rule["name"]: rule["state"] for rule in rules}
    for name in ("MonitorFeedStale", "MonitorStageNotReady", "MonitorTargetDown"):
        assert states[name] == "inactive", name

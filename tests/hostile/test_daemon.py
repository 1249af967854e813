"""The real daemon (`monitor run`, embedded) against hostile servers: a hanging feed shows in
metrics, does not stop the other feeds of its host, and does not hold up shutdown; a refused
redirect is visible in metrics, logs and `monitor status`."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO
from tests.support.at_the_end import AtTheEnd, at_the_end  # noqa: F401 (a fixture)
from tests.support.hostile_server import HostileServer, rss
from tests.support.kafka_broker import free_port
from tests.support.waiting import eventually
from tests.test_cli import MONITOR, monitor_env


class Daemon:
    """`monitor run` on a feeds file of (id, url) pairs, with its metrics port and log."""

    def __init__(self, tmp_path: Path, feeds: list[tuple[str, str]], **env: str) -> None:
        self.feeds_path = tmp_path / "feeds.yaml"
        self.feeds_path.write_text("feeds:\n" + "".join(
            f"  - {{id: {feed_id}, source: Wire, url: '{url}', interval: 300}}\n"
            for feed_id, url in feeds), encoding="utf-8")
        self.port = free_port()
        self.log_path = tmp_path / "daemon.log"
        self.env = monitor_env({
            "MONITOR_STATE_PATH": str(tmp_path / "state.sqlite3"),
            "MONITOR_HTTP__ADDRESS": f"127.0.0.1:{self.port}",
            "MONITOR_MATCH__SEMANTIC": "false", **env})
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *args: str) -> Daemon:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*MONITOR, "run", "--feeds", str(self.feeds_path),
                 "--claims", str(REPO / "claims.yaml"), *args],
                cwd=REPO, env=self.env, stdout=log, stderr=log)
        return self

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        try:
            text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return {}
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def sample(self, name: str, **labels: str) -> float:
        return self.samples().get((name, tuple(sorted(labels.items()))), 0.0)

    def polls(self, feed: str, outcome: str) -> float:
        return self.sample("monitor_feed_polls_total", feed=feed, outcome=outcome)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def daemons(at_the_end: AtTheEnd) -> list[Daemon]:  # noqa: F811
    return at_the_end([])


def test_a_hanging_feed_is_cut_off_counted_and_does_not_stop_its_host(
        tmp_path: Path, hostile: HostileServer, daemons: list[Daemon]) -> None:
    # All three feeds on one host, one request at a time: the two good feeds wait behind the
    # hanging one until its 3 s deadline frees the host; before, they waited for ever.
    feeds = [("hanging", hostile.url("/slow-body")),
             ("good-a", hostile.set("a", rss("first good story"))),
             ("good-b", hostile.set("b", rss("second good story", link_base="https://b.org")))]
    daemon = Daemon(tmp_path, feeds, MONITOR_POLL__TIMEOUT_SECONDS="3",
                    MONITOR_POLL__ALLOWED_NETWORKS="127.0.0.1/32")
    daemons.append(daemon.start())
    eventually(lambda: hostile.requests_to("/slow-body")
               and daemon.sample("monitor_polls_in_flight") >= 1, 30,
               "the hanging poll shown in flight on /metrics")
    eventually(lambda: daemon.polls("hanging", "fetch_error") == 1, 15,
               "the hanging feed counted as failed")
    eventually(lambda: all(daemon.polls(feed, "new_items") == 1 for feed in ("good-a", "good-b")),
               15, "the other feeds of the host polled")
    assert daemon.sample("monitor_feed_consecutive_failures", feed="hanging") == 1
    assert "no complete response within 3 s" in daemon.log


def test_sigterm_ends_the_daemon_promptly_while_a_poll_hangs(
        tmp_path: Path, hostile: HostileServer, daemons: list[Daemon]) -> None:
    daemon = Daemon(tmp_path, [("hanging", hostile.url("/slow-headers"))],
                    MONITOR_POLL__TIMEOUT_SECONDS="600",
                    MONITOR_POLL__ALLOWED_NETWORKS="127.0.0.1/32")
    daemons.append(daemon.start())
    eventually(lambda: hostile.requests_to("/slow-headers"), 30, "the poll started")
    assert daemon.process is not None
    started = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=20) == 0
    assert time.monotonic() - started < 10, daemon.log
    assert "poll: stopped" in daemon.log


def test_a_redirect_to_loopback_is_refused_and_visible_in_metrics_logs_and_status(
        tmp_path: Path, hostile: HostileServer, outside: HostileServer,
        daemons: list[Daemon]) -> None:
    internal = hostile.set("admin", rss("internal only"))
    daemon = Daemon(tmp_path, [("outside", outside.url(f"/redirect?to={internal}"))],
                    MONITOR_POLL__ALLOWED_NETWORKS="127.0.0.2/32")
    daemons.append(daemon.start())
    eventually(lambda: daemon.polls("outside", "fetch_error") == 1, 30,
               "the refused feed counted as failed")
    assert not hostile.seen  # the internal service never saw a request
    assert "127.0.0.1 is a loopback address" in daemon.log
    assert "MONITOR_POLL__ALLOWED_NETWORKS" in daemon.log
    status = subprocess.run([*MONITOR, "status"], cwd=REPO, env=daemon.env,
                            capture_output=True, text=True, timeout=60, check=False)
    row = next(line for line in status.stdout.splitlines() if line.startswith("outside "))
    assert "never" in row or "fail" in row, status.stdout
    assert "loopback" in status.stdout, status.stdout


def test_run_once_ends_at_the_fetch_deadline_when_a_feed_hangs(
        tmp_path: Path, hostile: HostileServer) -> None:
    feeds = [("hanging", hostile.url("/slow-body")),
             ("good", hostile.set("good", rss("a good story")))]
    daemon = Daemon(tmp_path, feeds, MONITOR_POLL__TIMEOUT_SECONDS="3",
                    MONITOR_POLL__ALLOWED_NETWORKS="127.0.0.1/32")
    started = time.monotonic()
    result = subprocess.run(
        [*MONITOR, "run", "--once", "--feeds", str(daemon.feeds_path),
         "--claims", str(REPO / "claims.yaml")],
        cwd=REPO, env=daemon.env, capture_output=True, text=True, timeout=60, check=False)
    assert time.monotonic() - started < 30, result.stderr
    assert "2 feeds (1 ok, 1 failed)" in result.stderr
    assert "no complete response within 3 s" in result.stderr

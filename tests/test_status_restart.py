"""A failing feed still fails after a restart: in /metrics and `monitor status`, with its error.

Two real daemons, one after the other, on the same state file; the feed server answers 503.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx

from tests.conftest import REPO
from tests.support.feed_server import FeedServer
from tests.support.kafka_broker import free_port
from tests.support.waiting import eventually
from tests.test_cli import MONITOR, monitor_env


def scrape(port: int) -> str:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return ""


def run_daemon(feeds: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([*MONITOR, "run", "--feeds", str(feeds)], cwd=REPO, env=env,
                                stdout=out, stderr=out)


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()


def test_failures_and_the_last_error_survive_a_restart(tmp_path: Path,
                                                       feed_server: FeedServer) -> None:
    feed_server.set("/down.xml", b"maintenance", status=503)
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"feeds:\n  - id: down\n    source: Down Wire\n"
                     f"    url: {feed_server.url('/down.xml')}\n    interval: 3600\n",
                     encoding="utf-8")
    port = free_port()
    env = monitor_env({"MONITOR_STATE_PATH": str(tmp_path / "state.sqlite3"),
                       "MONITOR_HTTP__ADDRESS": f"127.0.0.1:{port}",
                       "MONITOR_POLL__ALLOWED_NETWORKS": "127.0.0.0/8",
                       "MONITOR_MATCH__SEMANTIC": "false"})
    log = tmp_path / "daemon.log"
    failed_once = 'monitor_feed_consecutive_failures{feed="down"} 1.0'

    first = run_daemon(feeds, env, log)
    try:
        eventually(lambda: failed_once in scrape(port), 30, "the failed poll on /metrics")
    finally:
        assert stop(first) == 0, log.read_text()
    polls = len(feed_server.hits("/down.xml"))

    second = run_daemon(feeds, env, log)
    try:  # ready once the scheduler runs, which is after the feeds were set up
        eventually(lambda: 'monitor_ready{check="scheduler"} 1.0' in scrape(port), 30,
                   "the restarted scheduler ready")
        text = scrape(port)
        status = subprocess.run([*MONITOR, "status"], cwd=REPO, env=env, capture_output=True,
                                text=True, timeout=60, check=False)
    finally:
        assert stop(second) == 0, log.read_text()

    assert len(feed_server.hits("/down.xml")) == polls  # the backoff went on: no new poll
    assert failed_once in text
    assert 'monitor_feeds_by_health{health="never_succeeded"} 1.0' in text
    assert status.returncode == 0, status.stderr
    row = status.stdout.splitlines()[1]
    assert row.split()[:4] == ["down", "never", "1", "in"], status.stdout
    assert "503" in row, status.stdout

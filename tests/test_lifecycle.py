"""The daemon's life cycle as ops drive it: SIGHUP and edited files reload, SIGTERM ends it."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import REPO
from tests.support.feed_server import FeedServer
from tests.support.kafka_broker import free_port
from tests.support.waiting import eventually
from tests.test_cli import MONITOR, RSS, monitor_env


def feeds_yaml(server: FeedServer, ids: list[str], interval: int = 60) -> str:
    return "feeds:\n" + "".join(
        f"  - id: {feed_id}\n    source: Wire {feed_id}\n    url: {server.url('/wire.xml')}\n"
        f"    interval: {interval}\n" for feed_id in ids)


def test_reload_on_change_and_sighup_keeps_the_old_config_when_invalid_and_sigterm_exits_0(
        tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.set("/wire.xml", RSS)
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(feeds_yaml(feed_server, ["wire"]), encoding="utf-8")
    port = free_port()
    log_path = tmp_path / "stderr.log"
    env = monitor_env({"MONITOR_STATE_PATH": str(tmp_path / "state.sqlite3"),
                       "MONITOR_HTTP__ADDRESS": f"127.0.0.1:{port}",
                       "MONITOR_MATCH__SEMANTIC": "false"})
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*MONITOR, "run", "--feeds", str(feeds), "--claims", str(REPO / "claims.yaml")],
            cwd=REPO, env=env, stdout=log, stderr=log)
    try:
        def polled(feed_id: str) -> bool:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                return False
            prefix = f'monitor_feed_polls_total{{feed="{feed_id}",outcome="'
            return any(line.startswith(prefix) and not line.endswith(" 0.0")
                       for line in text.splitlines())

        eventually(lambda: polled("wire"), 30, "the feed polled")
        status = subprocess.run([*MONITOR, "status"], cwd=REPO, env=env, capture_output=True,
                                text=True, timeout=60, check=False)
        assert status.returncode == 0, status.stderr
        row = status.stdout.splitlines()[1]
        assert row.startswith("wire ") and " s ago" in row and " in " in row
        assert "claims tracked: 4" in status.stdout

        feeds.write_text(feeds_yaml(feed_server, ["wire"], interval=0), encoding="utf-8")
        eventually(lambda: "keeping the configuration in force" in log_path.read_text(), 30,
                   "the invalid feeds.yaml refused")
        assert "interval" in log_path.read_text().split("keeping the configuration")[-1]
        assert process.poll() is None  # still running on the old feeds

        feeds.write_text(feeds_yaml(feed_server, ["wire", "second"]), encoding="utf-8")
        process.send_signal(signal.SIGHUP)
        eventually(lambda: polled("second"), 30, "the added feed polled")
        assert "feeds added ['second']" in log_path.read_text()

        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert time.monotonic() - started < 30
        assert "poll: stopped" in log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

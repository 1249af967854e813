"""A bug in a stage (the poller, the match stage) stops the whole process with a non-zero
status, in the daemon and in ``--once``: nothing retries it, or logs it once per interval,
while the process looks alive."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.feed_server import FeedServer
from tests.test_cli import RSS, monitor_env, write_feeds

CLAIMS = """
claims:
  - id: lukashenko
    text: Lukashenko answered the question
    keywords: [[Lukashenko, Лукашенко]]
    threshold: 20
"""


@pytest.mark.parametrize(("stage", "once"), [("match", True), ("match", False),
                                             ("poll", True), ("poll", False)])
def test_a_bug_in_a_stage_stops_the_process_non_zero(
        feed_server: FeedServer, tmp_path: Path, stage: str, once: bool) -> None:
    feed_server.set("/wire.xml", RSS)
    claims = tmp_path / "claims.yaml"
    claims.write_text(CLAIMS, encoding="utf-8")
    env = monitor_env({"MONITOR_STATE_PATH": str(tmp_path / "state.sqlite3"),
                       "MONITOR_HTTP__ADDRESS": "127.0.0.1:0"})
    result = subprocess.run(
        [sys.executable, "-m", "tests.support.buggy_monitor", stage, "run", "--feeds",
         str(write_feeds(tmp_path / "feeds.yaml", feed_server)), "--claims", str(claims),
         *(["--once"] * once)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120, check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "retrying cannot mend" in result.stderr
    assert f"{stage}: stopped by ZeroDivisionError" in result.stderr

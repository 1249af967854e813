"""``monitor status`` over several real processes on 127.0.0.1: two daemons and one endpoint
where nothing listens. Each daemon is a whole embedded pipeline (poll + match), which is all
the multi-endpoint logic needs: it reads roles and counts from /metrics, whatever the mode.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.feed_server import FeedServer
from tests.support.kafka_broker import free_port
from tests.support.waiting import eventually
from tests.test_cli import RSS, monitor, monitor_env
from tests.test_status_restart import run_daemon, scrape, stop


@pytest.fixture
def daemons(tmp_path: Path, feed_server: FeedServer) -> Iterator[list[int]]:
    """Two daemons polling one healthy feed each; their metrics ports."""
    feed_server.set("/wire.xml", RSS, content_type="application/rss+xml")
    started: list[tuple[subprocess.Popen[bytes], Path]] = []
    ports = []
    try:
        for n in range(2):
            feeds = tmp_path / f"feeds-{n}.yaml"
            feeds.write_text(f"feeds:\n  - id: wire-{n}\n    source: Wire {n}\n"
                             f"    url: {feed_server.url('/wire.xml')}\n    interval: 3600\n",
                             encoding="utf-8")
            port = free_port()
            env = monitor_env({"MONITOR_STATE_PATH": str(tmp_path / f"state-{n}.sqlite3"),
                               "MONITOR_HTTP__ADDRESS": f"127.0.0.1:{port}",
                               "MONITOR_POLL__ALLOWED_NETWORKS": "127.0.0.0/8",
                               "MONITOR_MATCH__SEMANTIC": "false",
                               # First polls at once, not spread over the first seconds.
                               "MONITOR_POLL__JITTER_RATIO": "0"})
            log = tmp_path / f"daemon-{n}.log"
            started.append((run_daemon(feeds, env, log), log))
            ports.append(port)
        for port in ports:
            eventually(lambda port=port: 'monitor_feeds_by_health{health="healthy"} 1.0'
                       in scrape(port), 120, f"the daemon on {port} polled its feed")
        yield ports
    finally:
        for process, log in started:
            assert stop(process) == 0, log.read_text()


def test_status_shows_every_process_and_the_pipeline_and_fails_when_one_is_down(
        daemons: list[int]) -> None:
    first, second = daemons
    nobody = free_port()
    result = monitor("status", "--url", f"http://127.0.0.1:{first}/metrics",
                     "--url", f"http://ops:s3cret@127.0.0.1:{second}/metrics",
                     "--url", f"http://127.0.0.1:{nobody}/metrics")

    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith(f"http://127.0.0.1:{first}/metrics ")
    assert lines[2].startswith(f"http://***@127.0.0.1:{second}/metrics ")
    for line in lines[1:3]:
        roles, state = line.split()[1:3]
        assert {"poll", "match"} <= set(roles.split("+")) and state == "up", line
    assert lines[3].startswith(f"http://127.0.0.1:{nobody}/metrics ")
    assert " DOWN: ConnectError" in lines[3]
    assert "s3cret" not in result.stdout + result.stderr
    assert "pipeline: 2 of 3 processes up" in result.stdout
    assert "feeds: 2 healthy" in result.stdout  # one feed on each poller
    assert {"wire-0", "wire-1"} <= {line.split()[0] for line in lines if line}

    # The same processes named by the setting instead, all up: exit 0.
    urls = ",".join(f"http://127.0.0.1:{port}/metrics" for port in daemons)
    named = monitor("status", env={"MONITOR_STATUS__ENDPOINTS": urls})
    assert named.returncode == 0, named.stderr
    assert "pipeline: 2 of 2 processes up" in named.stdout
    assert "feeds: 2 healthy" in named.stdout

"""``monitor run --once`` as cron runs it: a subprocess against a real feed server and a real
webhook on 127.0.0.1, ending with a one-line summary and an exit status that says whether work
was left (monitor/once.py)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from monitor.once import OnceReport
from tests.conftest import REPO
from tests.support.feed_server import FeedServer
from tests.support.receivers import WebhookReceiver
from tests.test_alerts_e2e import DENIAL
from tests.test_cli import RSS, monitor

WITH_DENIAL = RSS.replace(b"</channel>", DENIAL.encode("cp1251") + b"</channel>")
RSS_TYPE = "application/rss+xml"  # no charset: the document says windows-1251


def write_feeds(path: Path, server: FeedServer, ids: list[str], interval: int = 60) -> Path:
    path.write_text("feeds:\n" + "".join(
        f"  - id: {feed_id}\n    source: Wire {feed_id}\n    url: {server.url(f'/{feed_id}.xml')}\n"
        f"    interval: {interval}\n" for feed_id in ids), encoding="utf-8")
    return path


def write_routes(path: Path, hook: WebhookReceiver) -> Path:
    path.write_text(f"receivers:\n  - name: desk-hook\n    urls: ['{hook.url('/alerts')}']\n"
                    "route:\n  receiver: desk-hook\n  group_wait: 0s\n", encoding="utf-8")
    return path


def run_once(tmp_path: Path, feeds: Path, *extra: str, env: dict[str, str] | None = None
             ) -> tuple[int, str, float]:
    """Exit status, the summary line (the last line of stderr), seconds taken."""
    settings = {"MONITOR_STATE_PATH": str(tmp_path / "state.sqlite3"), **(env or {})}
    started = time.monotonic()
    result = monitor("run", "--once", "--feeds", str(feeds), *extra, env=settings, timeout=240)
    lines = result.stderr.splitlines()
    assert lines, "no output at all"
    return result.returncode, lines[-1], time.monotonic() - started


def test_all_done_exits_0_with_the_counts(tmp_path: Path, feed_server: FeedServer,
                                          hook: WebhookReceiver) -> None:
    feed_server.set("/a.xml", RSS, content_type=RSS_TYPE)
    feed_server.set("/b.xml", RSS.replace(b"wire.example/", b"other.example/"),
                    content_type=RSS_TYPE)
    feeds = write_feeds(tmp_path / "feeds.yaml", feed_server, ["a", "b"])
    routes = write_routes(tmp_path / "routes.yaml", hook)
    claims = ("--claims", str(REPO / "claims.yaml"), "--alerts", str(routes))
    status, line, _ = run_once(tmp_path, feeds, *claims)  # the feeds' backlog: no alert
    assert (status, line) == (0, "monitor: once: 2 feeds (2 ok, 0 failed), 4 new items, "
                                 "0 matches, 0 alerts sent, 0 pending, 0 dead-lettered")
    feed_server.set("/a.xml", WITH_DENIAL, content_type=RSS_TYPE)
    status, line, _ = run_once(tmp_path, feeds, *claims)
    assert (status, line) == (0, "monitor: once: 2 feeds (2 ok, 0 failed), 1 new items, "
                                 "1 matches, 1 alerts sent, 0 pending, 0 dead-lettered")
    assert len(hook.accepted) == 1


def test_every_feed_failing_exits_1(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.set("/a.xml", b"", status=503)
    feed_server.set("/b.xml", b"not a feed at all", content_type="text/plain")
    feeds = write_feeds(tmp_path / "feeds.yaml", feed_server, ["a", "b"])
    status, line, _ = run_once(tmp_path, feeds, "--claims", str(REPO / "claims.yaml"))
    assert (status, line) == (1, "monitor: once: 2 feeds (0 ok, 2 failed), 0 new items, "
                                 "0 matches; exit 1: no feed polled successfully")


def test_an_alert_pending_at_the_deadline_exits_1_without_waiting_for_its_retry(
        tmp_path: Path, feed_server: FeedServer, hook: WebhookReceiver) -> None:
    feed_server.set("/a.xml", RSS, content_type=RSS_TYPE)
    feeds = write_feeds(tmp_path / "feeds.yaml", feed_server, ["a"])
    routes = write_routes(tmp_path / "routes.yaml", hook)
    assert run_once(tmp_path, feeds)[0] == 0  # the feed's backlog, before the story
    feed_server.set("/a.xml", WITH_DENIAL, content_type=RSS_TYPE)
    hook.fail(429, retry_after=3000)  # the next attempt is due long after the run's deadline
    status, line, seconds = run_once(tmp_path, feeds, "--claims", str(REPO / "claims.yaml"),
                                     "--alerts", str(routes))
    assert (status, line) == (1, "monitor: once: 1 feeds (1 ok, 0 failed), 1 new items, "
                                 "1 matches, 0 alerts sent, 1 pending, 0 dead-lettered; "
                                 "exit 1: 1 alert(s) pending")
    assert [d.status for d in hook.requests] == [429]
    # Waiting for the retry would mean waiting out the run's 120 s alert drain (once.py), so a
    # whole run (start-up included) shorter than that did not. Not 60 s: the run alone took
    # longer on a loaded 2-core machine.
    assert seconds < 120
    hook.recover()  # the next run sends it once it is due; until then it stays pending
    again, line, _ = run_once(tmp_path, feeds, "--claims", str(REPO / "claims.yaml"),
                              "--alerts", str(routes))
    assert again == 1 and "0 new items, 0 matches, 0 alerts sent, 1 pending" in line


def test_a_feed_backing_off_is_not_waited_for(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.set("/a.xml", RSS, content_type=RSS_TYPE)
    feed_server.set("/b.xml", b"", status=503)
    # A first failure backs off one interval; a run counts a feed due within 30 s as due now.
    # At 60 s a second run starting more than 30 s after the first one's poll (a loaded 2-core
    # machine under -n 2) found "b" due again; at 600 s it is backing off for 570 s.
    feeds = write_feeds(tmp_path / "feeds.yaml", feed_server, ["a", "b"], interval=600)
    first, line, _ = run_once(tmp_path, feeds)
    assert (first, line) == (0, "monitor: once: 2 feeds (1 ok, 1 failed), 2 new items, "
                                "0 matches")
    second, line, _ = run_once(tmp_path, feeds)
    assert (second, line) == (0, "monitor: once: 2 feeds (1 ok, 0 failed, 1 backing off), "
                                 "0 new items, 0 matches")
    assert len(feed_server.hits("/b.xml")) == 1


def test_run_once_does_not_need_the_metrics_port(tmp_path: Path,
                                                 feed_server: FeedServer) -> None:
    feed_server.set("/a.xml", RSS, content_type=RSS_TYPE)
    feeds = write_feeds(tmp_path / "feeds.yaml", feed_server, ["a"])
    with socket.socket() as daemon:  # the running daemon's metrics port
        daemon.bind(("127.0.0.1", 0))
        daemon.listen()
        address = f"127.0.0.1:{daemon.getsockname()[1]}"
        status, line, _ = run_once(tmp_path, feeds, env={"MONITOR_HTTP__ADDRESS": address})
    assert (status, line) == (0, "monitor: once: 1 feeds (1 ok, 0 failed), 2 new items, "
                                 "0 matches")


@pytest.mark.parametrize(
    ("report", "line", "status"),
    [
        pytest.param(OnceReport(3, 3, 0, 0, 7), "3 feeds (3 ok, 0 failed), 7 new items", 0,
                     id="poll-once"),
        pytest.param(OnceReport(3, 1, 1, 0, 0), "3 feeds (1 ok, 1 failed, 1 not polled), "
                     "0 new items; exit 1: 1 feed(s) not polled in time", 1, id="not-polled"),
        pytest.param(OnceReport(2, 1, 0, 1, 0, matches=0, unmatched=True),
                     "2 feeds (1 ok, 0 failed, 1 backing off), 0 new items, 0 matches; "
                     "exit 1: items left unmatched", 1, id="unmatched"),
        # Kafka mode: the alert group owns what is pending, this run cannot count it.
        pytest.param(OnceReport(1, 1, 0, 0, 2, matches=1, alerts_sent=1),
                     "1 feeds (1 ok, 0 failed), 2 new items, 1 matches, 1 alerts sent, "
                     "0 dead-lettered", 0, id="kafka"),
        # e.g. every e-mail alert given up on because a template is broken.
        pytest.param(OnceReport(1, 1, 0, 0, 2, matches=2, alerts_sent=0, alerts_pending=0,
                                dead_lettered=2),
                     "1 feeds (1 ok, 0 failed), 2 new items, 2 matches, 0 alerts sent, "
                     "0 pending, 2 dead-lettered; exit 1: 2 alert(s) dead-lettered", 1,
                     id="dead-lettered"),
        pytest.param(OnceReport(0, 0, 0, 0, 0), "0 feeds (0 ok, 0 failed), 0 new items", 0,
                     id="no-feeds-enabled"),
    ],
)
def test_the_summary_and_the_status(report: OnceReport, line: str, status: int) -> None:
    assert report.line() == f"monitor: once: {line}"
    assert report.exit_code == status

"""End to end in embedded mode: a denial of a tracked claim appears in a feed served on
127.0.0.1; ``monitor run --once`` polls, matches and alerts: one webhook POST, one e-mail.

What a feed lists at its first poll is its backlog: matched and kept, not alerted. So each test
polls the feed once before the story it is about appears."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import REPO
from tests.support.feed_server import FeedServer
from tests.support.receivers import SmtpReceiver, WebhookReceiver
from tests.test_cli import RSS, monitor, write_feeds

CLAIM = "lukashenko-generals-2022"
# The Ukrainian General Staff calling Lukashenko's story a fake (as in tests/test_cli.py).
DENIAL = ("<item><title>Генштаб ВСУ назвал фейком слова Лукашенко о просьбе украинских "
          "генералов</title><link>https://wire.example/denial</link></item>")
# Kyiv's denial again, a day later, as another story.
LATER_DENIAL = ("<item><title>В Генштабе ВСУ снова назвали фейком слова Лукашенко о просьбе "
                "украинских генералов</title><link>https://wire.example/kyiv-again</link></item>")


def with_items(*items: str) -> bytes:
    return RSS.replace(b"</channel>", "".join(items).encode("cp1251") + b"</channel>")


def write_routes(tmp_path: Path, hook_url: str, email_url: str) -> Path:
    (tmp_path / "templates").symlink_to(REPO / "alerts" / "templates")
    path = tmp_path / "routes.yaml"
    path.write_text(
        "receivers:\n"
        f"  - name: desk-email\n    urls: ['{email_url}']\n"
        f"  - name: desk-hook\n    urls: ['{hook_url}']\n"
        "route:\n  receiver: desk-email\n  group_wait: 0s\n"
        "  routes:\n"
        "    - matchers: ['relation = denial']\n      receiver: desk-hook\n      continue: true\n"
        "    - matchers: ['relation = denial']\n      receiver: desk-email\n",
        encoding="utf-8")
    return path


def test_a_new_denial_reaches_the_webhook_and_the_mailbox_once(
        tmp_path: Path, feed_server: FeedServer, hook: WebhookReceiver,
        smtp: SmtpReceiver) -> None:
    feed_server.set("/wire.xml", RSS, content_type="application/rss+xml", conditional=False)
    feeds = write_feeds(tmp_path / "feeds.yaml", feed_server)
    routes = write_routes(tmp_path, hook.url("/alerts"), smtp.apprise_url())
    env = {"MONITOR_STATE_PATH": str(tmp_path / "state.sqlite3"),
           "MONITOR_HTTP__ADDRESS": "127.0.0.1:0"}
    args = ("run", "--once", "--feeds", str(feeds), "--claims", str(REPO / "claims.yaml"),
            "--alerts", str(routes))
    first = monitor(*args, env=env, timeout=180)  # the feed's backlog: nothing to alert
    assert first.returncode == 0, first.stderr
    feed_server.set("/wire.xml", with_items(DENIAL), content_type="application/rss+xml",
                    conditional=False)
    result = monitor(*args, env=env, timeout=180)
    assert result.returncode == 0, result.stderr
    (post,) = hook.wait_for(1)
    assert CLAIM in json.dumps(post.body) and "wire.example/denial" in json.dumps(post.body)
    (mail,) = smtp.wait_for(1)
    assert "DENIAL" in mail.subject
    again = monitor(*args, env=env, timeout=180)  # a restart sends nothing new
    assert again.returncode == 0, again.stderr
    assert len(hook.requests) == 1 and len(smtp.messages) == 1
    history = monitor("alerts", "history", "--claim", CLAIM, env=env)
    assert history.returncode == 0, history.stderr
    lines = history.stdout.splitlines()
    assert len(lines) == 2 and all("\tsent\t" in line for line in lines)


def test_a_new_feeds_backlog_is_matched_but_not_alerted_and_its_next_story_is(
        tmp_path: Path, feed_server: FeedServer, hook: WebhookReceiver) -> None:
    # Seen on real feeds: the first poll of a new feed alerted its whole backlog.
    feed_server.set("/wire.xml", with_items(DENIAL), content_type="application/rss+xml",
                    conditional=False)
    feeds = write_feeds(tmp_path / "feeds.yaml", feed_server)
    routes = tmp_path / "routes.yaml"  # every match to the webhook, whatever its relation
    routes.write_text(f"receivers:\n  - name: desk-hook\n    urls: ['{hook.url('/alerts')}']\n"
                      "route:\n  receiver: desk-hook\n  group_wait: 0s\n", encoding="utf-8")
    env = {"MONITOR_STATE_PATH": str(tmp_path / "state.sqlite3"),
           "MONITOR_HTTP__ADDRESS": "127.0.0.1:0", "MONITOR_LOG_LEVEL": "INFO"}
    args = ("run", "--once", "--feeds", str(feeds), "--claims", str(REPO / "claims.yaml"),
            "--alerts", str(routes))
    first = monitor(*args, env=env, timeout=180)
    assert first.returncode == 0, first.stderr
    # Stored and matched (the claim's record has it), but no alert: counted, and logged why.
    assert "3 new items, 1 matches, 0 alerts sent, 0 pending" in first.stderr.splitlines()[-1]
    assert "first poll of feed wire" in first.stderr and "recorded, not alerted" in first.stderr
    assert hook.requests == []
    assert monitor("alerts", "history", "--claim", CLAIM, env=env).stdout == ""

    feed_server.set("/wire.xml", with_items(DENIAL, LATER_DENIAL),
                    content_type="application/rss+xml", conditional=False)
    later = monitor(*args, env=env, timeout=180)
    assert later.returncode == 0, later.stderr
    assert "1 new items, 1 matches, 1 alerts sent" in later.stderr.splitlines()[-1]
    (post,) = hook.wait_for(1)
    body = json.dumps(post.body, ensure_ascii=False)
    assert "wire.example/kyiv-again" in body and "wire.example/denial" not in body


def test_an_alert_given_up_is_listed_replayed_and_in_the_history(
        tmp_path: Path, feed_server: FeedServer, hook: WebhookReceiver) -> None:
    """``monitor dlq list | replay`` and ``monitor alerts history`` on the state file: the same
    code path as on Kafka (replay sends now, once, and records it)."""
    feed_server.set("/wire.xml", RSS, content_type="application/rss+xml", conditional=False)
    feeds = write_feeds(tmp_path / "feeds.yaml", feed_server)
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"receivers:\n  - name: desk-hook\n    urls: ['{hook.url('/alerts')}']\n"
                      "route:\n  receiver: desk-hook\n  group_wait: 0s\n", encoding="utf-8")
    env = {"MONITOR_STATE_PATH": str(tmp_path / "state.sqlite3"),
           "MONITOR_HTTP__ADDRESS": "127.0.0.1:0"}
    args = ("run", "--once", "--feeds", str(feeds), "--claims", str(REPO / "claims.yaml"),
            "--alerts", str(routes))
    assert monitor(*args, env=env, timeout=180).returncode == 0  # the backlog
    feed_server.set("/wire.xml", with_items(DENIAL), content_type="application/rss+xml",
                    conditional=False)
    hook.fail(400)
    given_up = monitor(*args, env=env, timeout=180)
    assert "1 dead-lettered" in given_up.stderr.splitlines()[-1], given_up.stderr
    listed = monitor("dlq", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.splitlines()
    letter_id, state, _at, stage, receiver, attempts, error = line.split("\t")
    assert (state, stage, receiver, attempts) == ("dead", "alert", "desk-hook", "1 attempt(s)")
    assert "400" in error

    replay = ("dlq", "replay", letter_id, "--alerts", str(routes), "--claims",
              str(REPO / "claims.yaml"))
    failed = monitor(*replay, env=env)
    assert failed.returncode == 1 and "failed again" in failed.stderr
    hook.recover()
    replayed = monitor(*replay, env=env)
    assert replayed.returncode == 0 and f"{letter_id} sent to desk-hook" in replayed.stdout
    assert "wire.example/denial" in json.dumps(hook.accepted[-1].body)
    assert f"{letter_id}\treplayed\t" in monitor("dlq", "list", env=env).stdout
    history = monitor("alerts", "history", "--claim", CLAIM, env=env).stdout
    assert history.startswith(f"{letter_id}\tsent\t"), history


def test_a_missing_secret_stops_run_naming_receiver_and_variable(
        tmp_path: Path, feed_server: FeedServer) -> None:
    feeds = write_feeds(tmp_path / "feeds.yaml", feed_server)
    routes = write_routes(tmp_path, "json://127.0.0.1:9/x?+X-Token=${HOOK_TOKEN}",
                          "mailto://127.0.0.1:9?to=desk@example.org")
    env = {"MONITOR_STATE_PATH": str(tmp_path / "state.sqlite3"),
           "MONITOR_HTTP__ADDRESS": "127.0.0.1:0"}
    result = monitor("run", "--once", "--feeds", str(feeds), "--claims",
                     str(REPO / "claims.yaml"), "--alerts", str(routes), env=env)
    assert result.returncode == 2
    assert "desk-hook" in result.stderr and "HOOK_TOKEN" in result.stderr


def test_test_alert_reports_each_url_and_fails_when_one_fails(
        tmp_path: Path, hook: WebhookReceiver) -> None:
    routes = write_routes(tmp_path, hook.url("/alerts") + "?+X-Token=${HOOK_TOKEN}",
                          "mailto://127.0.0.1:9?to=desk@example.org")
    env = {"MONITOR_STATE_PATH": str(tmp_path / "state.sqlite3"), "HOOK_TOKEN": "s3cret-token"}
    ok = monitor("test-alert", "desk-hook", "--alerts", str(routes), env=env)
    assert ok.returncode == 0, ok.stderr
    (post,) = hook.wait_for(1)
    assert "TEST" in json.dumps(post.body).upper()
    assert "s3cret-token" not in ok.stdout + ok.stderr
    hook.fail(500)
    failed = monitor("test-alert", "desk-hook", "--alerts", str(routes), env=env)
    assert failed.returncode == 1
    assert "server-error" in failed.stdout and "s3cret-token" not in failed.stdout


def test_dlq_commands_on_an_empty_state(tmp_path: Path) -> None:
    env = {"MONITOR_STATE_PATH": str(tmp_path / "state.sqlite3")}
    listed = monitor("dlq", "list", env=env)
    assert listed.returncode == 0 and listed.stdout == ""
    replay = monitor("dlq", "replay", "nope", env=env)
    assert replay.returncode == 2 and "no dead letter with id 'nope'" in replay.stderr

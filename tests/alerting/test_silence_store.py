"""Silences on the local state file, and ``monitor silence`` as ops use it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.alerting.silences import active_silence
from monitor.bus.silences import SilenceStore
from monitor.errors import InvalidInputError
from monitor.store import Database
from tests.alerting import make_match
from tests.test_cli import monitor

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_add_list_expire_round_trip(tmp_path: Path) -> None:
    store = SilenceStore(Database(tmp_path / "state.sqlite3"))
    added = store.add(["claim = kupiansk-captured", "source = TASS"], NOW + timedelta(hours=2),
                      "TASS repeats itself", "editor", NOW)
    reopened = SilenceStore(Database(tmp_path / "state.sqlite3"))
    (listed,) = reopened.list(include_expired=False, now=NOW)
    assert listed == added
    expired = reopened.expire(added.id, NOW + timedelta(minutes=5))
    assert not expired.is_active(NOW + timedelta(minutes=5))
    assert reopened.list(include_expired=False, now=NOW + timedelta(minutes=5)) == []
    assert len(reopened.list(include_expired=True, now=NOW + timedelta(minutes=5))) == 1
    with pytest.raises(InvalidInputError, match="no active silence"):
        reopened.expire(added.id, NOW + timedelta(minutes=6))


def test_a_stored_silence_suppresses_what_it_names(tmp_path: Path) -> None:
    store = SilenceStore(Database(tmp_path / "state.sqlite3"))
    store.add(["tags =~ belarus", "relation = follow-up"], NOW + timedelta(hours=1), "quiet day",
              "editor", NOW)
    silences = store.list(include_expired=False, now=NOW)
    follow_up = make_match(relation="follow-up")
    denial = make_match(relation="denial")
    assert active_silence(follow_up, ("belarus",), silences, NOW) is not None
    assert active_silence(denial, ("belarus",), silences, NOW) is None
    assert active_silence(follow_up, ("belarus",), silences, NOW + timedelta(hours=2)) is None


@pytest.mark.parametrize(
    ("matchers", "reason", "expires", "message"),
    [
        pytest.param(["score >= 50"], "r", timedelta(hours=1), "not 'score'", id="bad-label"),
        pytest.param(["claim = x"], "  ", timedelta(hours=1), "give a reason", id="no-reason"),
        pytest.param(["claim = x"], "r", timedelta(hours=-1), "not in the future", id="past"),
        pytest.param([], "r", timedelta(hours=1), "at least one matcher", id="no-matcher"),
    ],
)
def test_bad_silences_are_refused(tmp_path: Path, matchers: list[str], reason: str,
                                  expires: timedelta, message: str) -> None:
    store = SilenceStore(Database(tmp_path / "state.sqlite3"))
    with pytest.raises(InvalidInputError, match=message):
        store.add(matchers, NOW + expires, reason, "editor", NOW)
    assert store.list(include_expired=True, now=NOW) == []


def test_silence_commands(tmp_path: Path) -> None:
    env = {"MONITOR_STATE_PATH": str(tmp_path / "state.sqlite3")}
    added = monitor("silence", "add", "--match", "claim = kupiansk-captured", "--for", "2h",
                    "--reason", "front-line noise", "--by", "night-editor", env=env)
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.split("\t")[0]
    listed = monitor("silence", "list", env=env)
    assert silence_id in listed.stdout and "night-editor" in listed.stdout
    assert monitor("silence", "expire", silence_id, env=env).returncode == 0
    assert monitor("silence", "list", env=env).stdout == ""
    bad = monitor("silence", "add", "--match", "claim = x", "--for", "soon", "--reason", "r",
                  env=env)
    assert bad.returncode == 2 and "--for" in bad.stderr

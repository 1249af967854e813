"""``monitor desk`` reads claims.yaml itself: a change shows, a broken version keeps the last."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from monitor.desk.claims import ClaimsOnFile
from monitor.errors import ConfigError


def write(path: Path, ids: list[str], mtime_ns: int) -> None:
    entries = "".join(f"  - id: {i}\n    text: The claim called {i}\n" for i in ids)
    path.write_text(f"claims:\n{entries}", encoding="utf-8")
    os.utime(path, ns=(mtime_ns, mtime_ns))  # a new stamp, whatever the file system's clock


def test_a_change_shows_and_a_broken_version_keeps_the_claims_before(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "claims.yaml"
    write(path, ["one"], 1_000_000_000)
    claims = ClaimsOnFile(path)
    assert list(claims.current()) == ["one"]
    write(path, ["one", "two"], 2_000_000_000)
    assert list(claims.current()) == ["one", "two"]
    path.write_text("claims:\n  - id: Not An Id\n", encoding="utf-8")
    os.utime(path, ns=(3_000_000_000, 3_000_000_000))
    with caplog.at_level(logging.ERROR, logger="monitor.desk"):
        assert list(claims.current()) == ["one", "two"]
        assert list(claims.current()) == ["one", "two"]
    assert len([r for r in caplog.records if "keeping the 2 claims" in r.getMessage()]) == 1


def test_a_broken_file_stops_start_up(tmp_path: Path) -> None:
    path = tmp_path / "claims.yaml"
    path.write_text("claims:\n  - id: Not An Id\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="claims.yaml"):
        ClaimsOnFile(path)

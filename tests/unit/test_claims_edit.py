"""``monitor claims add`` / ``retire``: validated, atomic, and nothing but the change moves."""

from __future__ import annotations

import os
import shutil
import stat
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.config import claims_edit
from monitor.config.claims import ClaimConfig, load_claims
from monitor.config.claims_edit import add_claim, retire_claim
from monitor.errors import ConfigError
from tests.conftest import REPO
from tests.test_cli import monitor

COMMENTED = """\
# Tracked claims.   Odd spacing in comments is kept.
claims:
  # the first one
  - id: alpha-claim   # why we track it
    text: "Alpha says something that nobody can verify yet"
    keywords:
      - [Alpha, 'Альфа']
      - [says]   # loose on purpose
    tags: [x, y]  # eol

    # before beta
  - id: beta-claim
    speaker: Beta
    text: >-
      Beta says something else that nobody
      can verify yet
    status: tracking   # keep me

  - id: gamma-claim
    text: Gamma says a third thing nobody can verify
    texts:
      ru: Гамма говорит третье, что нельзя проверить
    # trailing notes
    # about gamma
"""

NEW: dict[str, Any] = {
    "id": "delta-claim",
    "text": "Delta says: something with a colon # and a hash",
    "speaker": "Delta Person",
    "made_at": "2026-01-15",
    "source_url": "https://example.org/delta",
    "texts": {"ru": "Дельта говорит что-то новое", "uk": "Дельта каже щось нове"},
    "keywords": [["Delta", "Дельта"], ["yes", "2025", "a, b"]],
    "exclude": ["hockey"],
    "threshold": 65,
    "tags": ["test", "null"],
    "expires": "2027-06-01",
}


def write(tmp_path: Path, text: str, name: str = "claims.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# -- add ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["repo", "commented"])
def test_add_appends_and_keeps_every_other_byte(tmp_path: Path, source: str) -> None:
    if source == "repo":
        path = tmp_path / "claims.yaml"
        shutil.copy(REPO / "claims.yaml", path)
    else:
        path = write(tmp_path, COMMENTED)
    before = path.read_bytes()
    old = load_claims(path)

    claim = add_claim(path, NEW)

    after = path.read_bytes()
    assert after.startswith(before)
    assert b"id: delta-claim" in after[len(before):]
    loaded = load_claims(path)
    assert loaded[:-1] == old and loaded[-1] == claim
    assert claim == ClaimConfig.model_validate(NEW)
    assert claim.made_at == date(2026, 1, 15) and claim.threshold == 65
    assert claim.keywords == (("Delta", "Дельта"), ("yes", "2025", "a, b"))
    assert claim.tags == ("test", "null") and claim.status == "tracking"
    assert leftovers(tmp_path) == []


def test_add_follows_the_files_blank_line_style(tmp_path: Path) -> None:
    path = tmp_path / "claims.yaml"
    shutil.copy(REPO / "claims.yaml", path)
    before = path.read_text(encoding="utf-8")
    add_claim(path, {"id": "short-one", "text": "A short claim for the test",
                     "keywords": [["short"]]}, today=date(2026, 5, 1))
    assert path.read_text(encoding="utf-8") == before + (
        "\n"
        "  - id: short-one\n"
        "    text: A short claim for the test\n"
        "    made_at: 2026-05-01  # the day it was added: no made_at was given\n"
        "    keywords:\n"
        "      - [short]\n"
        "    status: tracking\n")


def test_add_keeps_a_flat_indentation_style(tmp_path: Path) -> None:
    text = "claims:\n- id: one-claim\n  text: One claim that is long enough\n"
    path = write(tmp_path, text)
    add_claim(path, {"id": "two-claim", "text": "Two claims that are long enough",
                     "tags": ["t"], "made_at": "2025-11-20"})
    assert path.read_text(encoding="utf-8") == text + (
        "- id: two-claim\n  text: Two claims that are long enough\n  made_at: 2025-11-20\n"
        "  tags: [t]\n  status: tracking\n")


@pytest.mark.parametrize(("given", "today", "expected", "commented"), [
    pytest.param(None, date(2026, 5, 1), date(2026, 5, 1), True, id="none-given-the-day-added"),
    pytest.param("2025-11-20", date(2026, 5, 1), date(2025, 11, 20), False, id="given-kept"),
])
def test_add_records_the_day_added_when_no_made_at_is_given(
        tmp_path: Path, given: str | None, today: date, expected: date,
        commented: bool) -> None:
    # made_at bounds what counts as news about a claim (older items are background): a claim
    # the desk starts tracking without saying when it was made is bounded by the day it was added.
    path = write(tmp_path, "claims:\n- id: one-claim\n  text: One claim that is long enough\n")
    claim = add_claim(path, {"id": "two-claim", "text": "Two claims that are long enough",
                             "made_at": given}, today=today)
    assert claim.made_at == expected
    assert [c.made_at for c in load_claims(path)] == [None, expected]
    assert (claims_edit.ADDED_COMMENT in path.read_text(encoding="utf-8")) is commented


def test_cli_add_without_made_at_writes_todays_utc_date(tmp_path: Path) -> None:
    path = write(tmp_path, "claims:\n")
    before = datetime.now(UTC).date()
    result = monitor("claims", "add", "--claims", str(path), "--id", "fresh-claim", "--text",
                     "A claim added from the command line today")
    assert result.returncode == 0, result.stderr
    (claim,) = load_claims(path)
    assert claim.made_at is not None and before <= claim.made_at <= datetime.now(UTC).date()


def test_add_creates_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "claims.yaml"
    claim = add_claim(path, {"id": "first", "text": "The very first claim we track"})
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Claims the desk tracks.") and "\nclaims:\n  - id: first\n" in text
    assert load_claims(path) == (claim,)
    second = add_claim(path, {"id": "second", "text": "The second claim we track"})
    assert load_claims(path) == (claim, second)
    expected_mode = 0o666 & ~_umask()
    assert stat.S_IMODE(path.stat().st_mode) == expected_mode


def test_add_to_an_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing yet\n")
    claim = add_claim(path, {"id": "first", "text": "The very first claim we track"})
    assert path.read_text(encoding="utf-8").startswith("# nothing yet\nclaims:\n")
    assert load_claims(path) == (claim,)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param({"id": "beta-claim"},
                     ["field 'id'", "'beta-claim' is already used by claims[1] (id 'beta-claim')",
                      "line 12"], id="duplicate-id"),
        pytest.param({"threshold": 200}, ["new claim (id 'delta-claim')", "field 'threshold'",
                                          "less than or equal to 100"], id="threshold-200"),
        pytest.param({"texts": {"russian": "Дельта говорит что-то новое"}},
                     ["field 'texts'", "'russian' is not an ISO 639-1 code"], id="bad-language"),
        pytest.param({"texts": {"RU": "Дельта говорит что-то новое"}},
                     ["field 'texts'", "'RU' is not an ISO 639-1 code"], id="upper-language"),
        pytest.param({"keywords": [["Delta"], []]},
                     ["field 'keywords'", "group 1 is empty"], id="empty-group"),
        pytest.param({"keywords": [["Delta", " "]]},
                     ["field 'keywords'", "group 0 is empty or holds an empty term"],
                     id="empty-term"),
        pytest.param({"id": "Bad Id"}, ["field 'id'", "pattern"], id="bad-id"),
        pytest.param({"expires": "2027-02-30"}, ["field 'expires'"], id="bad-date"),
        pytest.param({"colour": "red"}, ["unknown key 'colour'"], id="unknown-key"),
    ],
)
def test_add_refuses_and_leaves_the_file_alone(tmp_path: Path, change: dict[str, Any],
                                               expected: list[str]) -> None:
    path = write(tmp_path, COMMENTED)
    with pytest.raises(ConfigError) as raised:
        add_claim(path, {**NEW, **change})
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and "not changed" in message
    for fragment in expected:
        assert fragment in message
    assert path.read_bytes() == COMMENTED.encode("utf-8")
    assert leftovers(tmp_path) == []


def test_add_validates_the_whole_resulting_file(tmp_path: Path) -> None:
    broken = COMMENTED.replace("    speaker: Beta\n", "    speeker: Beta\n")
    path = write(tmp_path, broken)
    with pytest.raises(ConfigError) as raised:
        add_claim(path, NEW)
    message = str(raised.value)
    assert f"{path}: claims[1] (id 'beta-claim'): unknown key 'speeker' (line 13)" in message
    assert ".tmp" not in message
    assert path.read_bytes() == broken.encode("utf-8")
    assert leftovers(tmp_path) == []


# -- retire ------------------------------------------------------------------------------------


def test_retire_changes_only_the_status_value(tmp_path: Path) -> None:
    path = tmp_path / "claims.yaml"
    shutil.copy(REPO / "claims.yaml", path)
    before = path.read_text(encoding="utf-8").splitlines(keepends=True)
    old = load_claims(path)
    target = old[1].id

    claim = retire_claim(path, target)

    after = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert len(after) == len(before)
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert len(changed) == 1
    assert before[changed[0]] == "    status: tracking\n"
    assert after[changed[0]] == "    status: retired\n"
    assert claim == old[1].model_copy(update={"status": "retired"})
    assert load_claims(path) == tuple(claim if c.id == target else c for c in old)


def test_retire_keeps_comments_and_adds_a_missing_status_above_them(tmp_path: Path) -> None:
    path = write(tmp_path, COMMENTED)
    retire_claim(path, "alpha-claim")
    retire_claim(path, "beta-claim")
    retire_claim(path, "gamma-claim")
    expected = (COMMENTED
                .replace("    tags: [x, y]  # eol\n",
                         "    tags: [x, y]  # eol\n    status: retired\n")
                .replace("    status: tracking   # keep me\n",
                         "    status: retired    # keep me\n")
                .replace("      ru: Гамма говорит третье, что нельзя проверить\n",
                         "      ru: Гамма говорит третье, что нельзя проверить\n"
                         "    status: retired\n"))
    assert path.read_text(encoding="utf-8") == expected
    assert {c.status for c in load_claims(path)} == {"retired"}


def test_retire_after_a_block_scalar(tmp_path: Path) -> None:
    text = ("claims:\n  - id: one\n    text: |\n      A literal claim text here\n\n"
            "  - id: two\n    text: Two claims long enough\n")
    path = write(tmp_path, text)
    retire_claim(path, "one")
    assert path.read_text(encoding="utf-8") == text.replace(
        "here\n\n", "here\n    status: retired\n\n")


@pytest.mark.parametrize(
    ("claim_id", "expected"),
    [
        pytest.param("no-such-claim", "no claim with id 'no-such-claim'", id="unknown"),
        pytest.param("beta-claim", "claims[1] (id 'beta-claim') is already retired (line 17)",
                     id="already-retired"),
    ],
)
def test_retire_refuses_and_leaves_the_file_alone(tmp_path: Path, claim_id: str,
                                                  expected: str) -> None:
    text = COMMENTED.replace("status: tracking   # keep me", "status: retired   # keep me")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        retire_claim(path, claim_id)
    assert str(raised.value) == f"{path}: {expected}; not changed"
    assert path.read_bytes() == text.encode("utf-8")
    assert leftovers(tmp_path) == []


def test_retire_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        retire_claim(tmp_path / "claims.yaml", "x")
    assert not (tmp_path / "claims.yaml").exists()


# -- atomic write ------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["add", "retire", "create"])
def test_a_file_changed_while_editing_is_not_overwritten(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operation: str) -> None:
    path = tmp_path / "claims.yaml"
    if operation != "create":
        path.write_text(COMMENTED, encoding="utf-8")
    theirs = COMMENTED + "  - id: theirs\n    text: Someone else added this meanwhile\n"
    real_load = claims_edit.load_claims

    def someone_else_writes(temporary: Path) -> tuple[ClaimConfig, ...]:
        path.write_text(theirs, encoding="utf-8")
        return real_load(temporary)

    monkeypatch.setattr(claims_edit, "load_claims", someone_else_writes)
    with pytest.raises(ConfigError, match="changed while editing, try again"):
        if operation == "retire":
            retire_claim(path, "alpha-claim")
        else:
            add_claim(path, NEW)
    assert path.read_text(encoding="utf-8") == theirs
    assert leftovers(tmp_path) == []


def test_the_file_mode_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path, COMMENTED)
    path.chmod(0o640)
    add_claim(path, NEW)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    path.chmod(0o604)
    retire_claim(path, "delta-claim")
    assert stat.S_IMODE(path.stat().st_mode) == 0o604


def test_a_symlinked_file_stays_a_symlink(tmp_path: Path) -> None:
    real = write(tmp_path, COMMENTED, "real.yaml")
    link = tmp_path / "claims.yaml"
    link.symlink_to(real)
    add_claim(link, NEW)
    assert link.is_symlink() and load_claims(real)[-1].id == "delta-claim"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- through the command line ------------------------------------------------------------------


def test_cli_add_then_retire(tmp_path: Path) -> None:
    path = write(tmp_path, COMMENTED)
    result = monitor(
        "claims", "add", "--claims", str(path), "--id", "cli-claim",
        "--text", "Somebody says something checkable", "--speaker", "Somebody",
        "--subject", "Something", "--lang-text", "ru=Кто-то говорит что-то проверяемое",
        "--keywords", "Somebody | Кто-то", "--keywords", "says|говорит",
        "--exclude", "hockey", "--threshold", "55", "--tag", "a", "--tag", "b",
        "--expires", "2027-01-31", "--source-url", "https://example.org/x",
        "--made-at", "2026-02-01")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == [
        f"{path}: added claim 'cli-claim' (2 keyword groups, 1 translations, threshold 55, "
        "made_at 2026-02-01: older items are background, not alerted)"]
    claim = load_claims(path)[-1]
    assert claim == ClaimConfig(
        id="cli-claim", text="Somebody says something checkable", speaker="Somebody",
        subject="Something", texts={"ru": "Кто-то говорит что-то проверяемое"},
        keywords=(("Somebody", "Кто-то"), ("says", "говорит")), exclude=("hockey",),
        threshold=55, tags=("a", "b"), expires=date(2027, 1, 31),
        source_url="https://example.org/x", made_at=date(2026, 2, 1))
    assert path.read_text(encoding="utf-8").startswith(COMMENTED)

    result = monitor("claims", "retire", "--claims", str(path), "cli-claim")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{path}: retired claim 'cli-claim'"
    assert load_claims(path)[-1].status == "retired"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["add", "--id", "x-claim", "--text", "Long enough claim text",
                      "--threshold", "200"], "field 'threshold'", id="threshold"),
        pytest.param(["add", "--id", "x-claim", "--text", "Long enough claim text",
                      "--keywords", "a||b"], "field 'keywords'", id="empty-term"),
        pytest.param(["add", "--id", "x-claim", "--text", "Long enough claim text",
                      "--lang-text", "Russian text without a code"], "field 'texts'",
                     id="lang-text-without-code"),
        pytest.param(["add", "--id", "alpha-claim", "--text", "Long enough claim text"],
                     "field 'id'", id="duplicate"),
        pytest.param(["retire", "nope"], "no claim with id 'nope'", id="retire-unknown"),
    ],
)
def test_cli_errors_exit_2_and_change_nothing(tmp_path: Path, args: list[str],
                                               expected: str) -> None:
    path = write(tmp_path, COMMENTED)
    result = monitor("claims", args[0], "--claims", str(path), *args[1:])
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"monitor: error: {path}: ")
    assert expected in result.stderr
    assert path.read_bytes() == COMMENTED.encode("utf-8")

"""claims.yaml: the shipped file loads, and every mistake is named with file, entry, field, line."""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

import pytest

from monitor.config.claims import load_claims
from monitor.errors import ConfigError
from tests.conftest import REPO

VALID = """
claims:
  - id: first-claim
    text: Someone says something that nobody can verify yet
    keywords:
      - [Lukashenko, Лукашенко]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "claims.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_shipped_claims_file_is_valid() -> None:
    claims = load_claims(REPO / "claims.yaml")
    ids = [claim.id for claim in claims]
    assert "lukashenko-generals-2022" in ids and len(claims) >= 4
    lukashenko = claims[ids.index("lukashenko-generals-2022")]
    assert {"ru", "uk"} <= set(lukashenko.texts)
    assert any("Лукашенко" in group for group in lukashenko.keywords)


def test_defaults_and_activity(tmp_path: Path) -> None:
    (claim,) = load_claims(write(tmp_path, VALID + "    expires: 2026-12-31\n"))
    assert claim.threshold == 50 and claim.status == "tracking"
    assert claim.is_active(date(2026, 12, 31)) and not claim.is_active(date(2027, 1, 1))


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        pytest.param("    threshold: 140\n", ["field 'threshold'", "line 7"], id="threshold>100"),
        pytest.param("    colour: red\n", ["unknown key 'colour'", "line 7"], id="unknown-key"),
        pytest.param("    texts: {russian: Кто-то сказал что-то важное}\n",
                     ["field 'texts'", "ISO 639-1"], id="bad-language-code"),
        pytest.param("    status: archived\n", ["field 'status'"], id="bad-status"),
        pytest.param("    exclude: hockey\n", ["field 'exclude'"], id="exclude-not-a-list"),
    ],
)
def test_errors_name_file_entry_field_and_line(tmp_path: Path, extra: str,
                                               fragments: list[str]) -> None:
    path = write(tmp_path, VALID + extra)
    with pytest.raises(ConfigError) as error:
        load_claims(path)
    message = str(error.value)
    assert message.startswith(f"{path}: claims[0] (id 'first-claim'): ")
    for fragment in fragments:
        assert fragment in message


def test_empty_keyword_group_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="group 1 is empty"):
        load_claims(write(tmp_path, VALID + "      - []\n"))


def test_duplicate_ids_name_both_entries(tmp_path: Path) -> None:
    text = VALID + VALID.split("claims:\n", 1)[1]
    with pytest.raises(ConfigError) as error:
        load_claims(write(tmp_path, text))
    assert "claims[1] (id 'first-claim'): field 'id': duplicate id" in str(error.value)
    assert "first used by claims[0]" in str(error.value)

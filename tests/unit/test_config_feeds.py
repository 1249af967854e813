"""monitor/config/feeds.py: feeds.yaml is validated, and every error says where it is."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from monitor.config.feeds import load_feeds
from monitor.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_feeds(path)
    message = str(info.value)
    assert str(path) in message
    return message


def test_valid_file_with_defaults(tmp_path: Path) -> None:
    feeds = load_feeds(write(tmp_path, """
        defaults:
          interval: 90s
          language: ru
        feeds:
          - id: ria-world
            source: RIA Novosti
            url: https://ria.ru/export/rss2/world/index.xml
          - id: tass-en
            source: TASS
            url: https://tass.com/rss/v2.xml
            language: en
            interval: 2h
            tags: [en, wire]
            enabled: false
    """))
    ria, tass = feeds
    assert (ria.id, ria.source, ria.interval_seconds, ria.language) == (
        "ria-world", "RIA Novosti", 90.0, "ru")
    assert ria.tags == () and ria.enabled
    assert (tass.interval_seconds, tass.language, tass.tags, tass.enabled) == (
        7200.0, "en", ("en", "wire"), False)


def test_defaults_are_optional(tmp_path: Path) -> None:
    (feed,) = load_feeds(write(tmp_path, """
        feeds:
          - {id: a, source: A, url: "https://a.com/rss"}
    """))
    assert feed.interval_seconds == 300.0
    assert feed.language is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param('"90s"', 90.0, id="seconds-suffix"),
        pytest.param("5m", 300.0, id="minutes"),
        pytest.param("300", 300.0, id="bare-int"),
        pytest.param('"300"', 300.0, id="quoted-int"),
        pytest.param("2h", 7200.0, id="hours"),
        pytest.param("1.5m", 90.0, id="fractional"),
        pytest.param("1d", 86400.0, id="day"),
    ],
)
def test_durations(tmp_path: Path, value: str, seconds: float) -> None:
    (feed,) = load_feeds(write(tmp_path, f"""
        feeds:
          - id: a
            source: A
            url: https://a.com/rss
            interval: {value}
    """))
    assert feed.interval_seconds == seconds


_TWO_FEEDS = """
    feeds:
      - id: ria
        source: RIA Novosti
        url: https://ria.ru/export/rss2/world/index.xml
      - id: tass
        source: TASS
        {field}
"""


@pytest.mark.parametrize(
    ("field", "expect_field", "expect_text"),
    [
        pytest.param("url: ftp://tass.ru/rss", "field 'url'", "ftp://tass.ru/rss", id="ftp"),
        pytest.param("url: https:///rss", "field 'url'", "absolute http(s)", id="no-host"),
        pytest.param("url: not a url", "field 'url'", "absolute http(s)", id="garbage-url"),
        pytest.param("url: http://tass.ru:99999/", "field 'url'", "not a valid URL", id="port"),
        # Credentials in a rejected URL are not repeated in the error `monitor check` prints.
        pytest.param("url: ftp://desk:hunter2@tass.ru/rss", "field 'url'",
                     "got 'ftp://***@tass.ru/rss'", id="credentials-redacted"),
        pytest.param("url: http://desk:hunter2@tass.ru:99999/", "field 'url'",
                     "'http://***@tass.ru:99999/'", id="credentials-redacted-bad-port"),
        pytest.param("url: https://tass.ru/\n        interval: 0", "field 'interval'",
                     "at least 1", id="interval-zero"),
        pytest.param("url: https://tass.ru/\n        interval: -5", "field 'interval'",
                     "got -5", id="interval-negative"),
        pytest.param("url: https://tass.ru/\n        interval: abc", "field 'interval'",
                     "not a duration: 'abc'", id="interval-garbage"),
        pytest.param("url: https://tass.ru/\n        colour: red", "unknown key 'colour'",
                     "", id="unknown-key"),
        pytest.param("language: ru", "field 'url'", "Field required", id="missing-url"),
    ],
)
def test_entry_errors_name_file_entry_field_line(
    tmp_path: Path, field: str, expect_field: str, expect_text: str
) -> None:
    message = load_error(tmp_path, _TWO_FEEDS.format(field=field))
    assert "feeds[1] (id 'tass')" in message
    assert expect_field in message
    assert expect_text in message and "hunter2" not in message
    assert "feeds[0]" not in message
    assert "(line " in message


def test_error_points_at_the_line(tmp_path: Path) -> None:
    message = load_error(tmp_path, _TWO_FEEDS.format(field="url: https://tass.ru/\n"
                                                           "        interval: abc"))
    assert message.endswith("(line 8)")


def test_missing_source(tmp_path: Path) -> None:
    message = load_error(tmp_path, """
        feeds:
          - id: ok
            source: OK
            url: https://ok.com/
          - id: belta
            url: https://belta.by/rss
    """)
    assert "feeds[1] (id 'belta'): field 'source': Field required (line 5)" in message


def test_duplicate_ids(tmp_path: Path) -> None:
    message = load_error(tmp_path, """
        feeds:
          - id: tass
            source: TASS
            url: https://tass.ru/rss/v2.xml
          - id: tass
            source: TASS
            url: https://tass.com/rss/v2.xml
    """)
    assert "feeds[1] (id 'tass'): field 'id': duplicate id" in message
    # Both places: the first use (line 2) and the duplicate (line 5).
    assert "feeds[0] (id 'tass')" in message
    assert "at line 2" in message and "(line 5)" in message


def test_only_entry_invalid_reports_only_that_entry(tmp_path: Path) -> None:
    message = load_error(tmp_path, """
        feeds:
          - id: tass
            source: TASS
            url: ftp://tass.ru/rss
    """)
    assert "feeds[0] (id 'tass'): field 'url'" in message
    assert "at least 1 item" not in message


def test_boolean_interval_rejected(tmp_path: Path) -> None:
    # `interval: yes`-style typos would otherwise poll a wire every second.
    message = load_error(tmp_path, _TWO_FEEDS.format(field="url: https://tass.ru/\n"
                                                           "        interval: true"))
    assert "field 'interval'" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("feeds:\n  - id: a\n    url: [unclosed\n  - id: b\n    x: ]\n",
                     "YAML syntax error at line 4", id="unclosed-flow"),
        pytest.param("feeds:\n  - id: a\n    url: https://a/\n   bad: indent\n",
                     "YAML syntax error at line 4", id="bad-indent"),
        # YAML 1.2 10.2: keys in a mapping are unique.
        pytest.param("feeds:\n  - id: a\n    id: b\n", "line 3", id="duplicate-key"),
        pytest.param("", "file is empty", id="empty-file"),
        pytest.param("# only a comment\n", "file is empty", id="only-comment"),
        pytest.param("- id: a\n  source: A\n", "expected a mapping", id="top-level-list"),
        pytest.param("feeds: []\n", "field 'feeds'", id="empty-feeds-list"),
        pytest.param("defaults: {}\n", "field 'feeds': Field required", id="no-feeds-key"),
    ],
)
def test_file_level_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^" + str(path).replace(".", r"\.")) as info:
        load_feeds(path)
    assert expected in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="file not found") as info:
        load_feeds(path)
    assert str(path) in str(info.value)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_bytes("feeds: Москва".encode("cp1251"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_feeds(path)


def test_repository_feeds_yaml_loads() -> None:
    feeds = load_feeds(REPO / "feeds.yaml")
    assert len(feeds) >= 12
    ids = [feed.id for feed in feeds]
    assert len(ids) == len(set(ids))
    sources = {feed.source for feed in feeds}
    for outlet in ("RIA Novosti", "TASS", "BelTA", "Ukrinform", "Interfax", "Meduza",
                   "The Kyiv Independent", "BBC News Russian"):
        assert outlet in sources, outlet
    assert all(feed.url.startswith("https://") for feed in feeds)
    assert all(feed.interval_seconds >= 60 for feed in feeds)

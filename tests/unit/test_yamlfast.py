"""The fast config reader (libyaml) reads exactly what the round-trip parser reads, or declines.

Every case compares ``load_plain`` with ruamel.yaml's round-trip load of the same text, types
included (``True == 1`` in Python, so values are compared with their types). Where the fast
reader declines, ``load_config`` must give what the guarded round-trip path gives.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.config import yamlfile
from monitor.config.alerts import load_alerts
from monitor.config.claims import load_claims
from monitor.config.feeds import load_feeds
from monitor.config.yamlfast import NotPlain, load_plain
from monitor.config.yamlfile import load_config, parse_yaml_text
from monitor.config.yamlguard import MAX_DEPTH
from monitor.errors import ConfigError
from tests.conftest import REPO


def typed(value: Any) -> Any:
    """``value`` with every scalar paired with its plain type (ruamel's subclasses mapped)."""
    if isinstance(value, dict):
        return {typed(key): typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    if value is None:
        return None
    for kind in (bool, int, float, str, datetime, date):
        if isinstance(value, kind):
            return (kind.__name__, kind(value) if kind in (bool, int, float, str) else value)
    return (type(value).__name__, repr(value))


def round_trip(text: str) -> Any:
    return parse_yaml_text(Path("case.yaml"), text)


SHIPPED = {"feeds": (REPO / "feeds.yaml", load_feeds),
           "claims": (REPO / "claims.yaml", load_claims),
           "alerts": (REPO / "alerts" / "routes.yaml", load_alerts)}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_files_read_the_same_and_make_the_same_models(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path, load = SHIPPED[name]
    text = path.read_text(encoding="utf-8")
    assert typed(load_plain(text)) == typed(round_trip(text))
    fast = load(path)
    # The same loader with the fast reader out of the way: the round-trip path alone.
    monkeypatch.setattr(yamlfile, "load_plain", _decline)
    assert load(path) == fast


def _decline(text: str) -> Any:
    raise NotPlain("disabled by the test")


# Plain files as operators write them: each reads the same both ways.
SAME = [
    pytest.param("", id="empty-file"),
    pytest.param("# only a comment\n", id="only-a-comment"),
    pytest.param("---\na: 1\n...\n", id="document-markers"),
    # YAML 1.2 (ruamel): `no`, `yes`, `on` are strings; Norwegian is language `no`.
    pytest.param("language: no\nother: [yes, on, off, y, n, NO]\n", id="yaml-1.1-booleans"),
    pytest.param("a: true\nb: False\nc: TRUE\n", id="booleans"),
    pytest.param("a: ~\nb: null\nc: NULL\nd:\ne: Null\n", id="nulls"),
    pytest.param("a: 300\nb: -5\nc: +7\nd: 0\ne: '300'\nf: \"300\"\n", id="integers"),
    pytest.param("a: 1.5\nb: 1e3\nc: -2.5E-2\nd: 1.\ne: 01.5\n", id="floats"),
    pytest.param("made_at: 2026-11-20\nquoted: '2026-11-20'\n", id="dates"),
    pytest.param("interval: 5m\nother: 90s\nurl: https://a.example/x?y=1&z=2#f\n",
                 id="durations-and-urls"),
    pytest.param("text: |\n  two\n  lines\nfolded: >-\n  one\n  line\n", id="block-scalars"),
    pytest.param("text: a plain\n  scalar over\n  lines\n", id="multi-line-plain"),
    pytest.param("a: 'it''s'\nb: \"tab\\there \\u00e9 \\/\"\n", id="quote-escapes"),
    pytest.param("ru: Лукашенко сказал\nuk: «Генерали»\nemoji: \U0001f600\n", id="unicode"),
    pytest.param("tags: [ru, state-media]\ntexts: {ru: 'x', uk: y}\nnone: []\n",
                 id="flow-collections"),
    pytest.param("keywords:\n  - [a, b]\n  - - c\n    - d\n", id="nested-sequences"),
    pytest.param("defaults: &d {x: 1}\nkept: 2\n", id="anchor-without-alias"),
    pytest.param("a: ! 5\nb: ! [1]\nc: ! {x: 1}\n", id="non-specific-tag"),
    pytest.param("1: one\n~: nothing\n'key with: colon': v\n", id="scalar-keys"),
    pytest.param("a: x # a comment\n# between\nb: 'y' # another\n", id="comments"),
    pytest.param("star: 5*3 and **bold**\nlist: ['*', 'a*b']\n", id="stars-without-alias"),
    pytest.param("deep: " + "[" * (MAX_DEPTH - 3) + "]" * (MAX_DEPTH - 3) + "\n",
                 id="nesting-under-the-bound"),
]


@pytest.mark.parametrize("text", SAME)
def test_plain_files_read_the_same_both_ways(text: str) -> None:
    assert typed(load_plain(text)) == typed(round_trip(text))


# What the fast reader hands back, and why it must.
DECLINED = [
    pytest.param("a: &a [1]\nb: *a\n", id="alias"),
    pytest.param("a: &a 1\nb: *a\n", id="scalar-alias"),  # counted by the guard too
    pytest.param("base: {x: 1}\nroute:\n  <<: {y: 2}\n", id="merge-key"),
    pytest.param("%YAML 1.1\n---\na: yes\n", id="yaml-1.1-directive"),  # `yes` would be True
    pytest.param("a: 017\n", id="leading-zero"),         # 17 in YAML 1.2, 15 in YAML 1.1
    pytest.param("a: 0o17\n", id="octal"),
    pytest.param("a: 0x1F\n", id="hex"),
    pytest.param("a: 1_000\n", id="underscores"),
    pytest.param("a: .inf\n", id="infinity"),
    pytest.param("a: 2026-11-20 10:00:00\n", id="datetime"),  # time zones differ by library
    pytest.param("a: 2026-13-45\n", id="impossible-date"),
    pytest.param("a: =\n", id="value-key"),
    pytest.param("a: 1\na: 2\n", id="duplicate-key"),  # ruamel refuses it with the line
    pytest.param("? [a, b]\n: c\n", id="list-as-key"),
    pytest.param("a: !!str 300\n", id="explicit-str"),  # ruamel keeps a TaggedScalar
    pytest.param("a: !!seq [1]\n", id="explicit-seq"),
    pytest.param("a: !!binary aGk=\n", id="binary-tag"),
    pytest.param("a: !custom x\n", id="custom-tag"),
    pytest.param("a: !!set {x}\n", id="set-tag"),
    pytest.param("a: b\x85c\n", id="next-line-character"),
    pytest.param("a: [1, 2\n", id="syntax-error"),
    pytest.param("a: 1\n---\nb: 2\n", id="two-documents"),
    pytest.param("deep: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n", id="nesting-at-bound"),
    pytest.param("deep: " + "[" * 5000 + "]" * 5000 + "\n", id="nesting-past-libyaml"),
]


@pytest.mark.parametrize("text", DECLINED)
def test_what_the_fast_reader_may_misread_is_handed_back(text: str) -> None:
    with pytest.raises(NotPlain):
        load_plain(text)


def identity(path: Path, document: Any) -> Any:
    return typed(document)


def outcome(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except ConfigError as exc:
        return f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("text", DECLINED)
def test_load_config_gives_the_round_trip_answer_for_what_is_handed_back(
        tmp_path: Path, text: str) -> None:
    path = tmp_path / "case.yaml"
    path.write_text(text, encoding="utf-8")
    assert outcome(lambda: load_config(path, identity)) == outcome(
        lambda: identity(path, parse_yaml_text(path, text)))


def test_a_valid_file_is_not_parsed_the_round_trip_way(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> Any:
        raise AssertionError("the round-trip parser ran for a valid file")

    monkeypatch.setattr(yamlfile, "parse_yaml_text", refuse)
    assert load_feeds(REPO / "feeds.yaml")


# One invalid file per kind: the message is the round-trip path's, with its lines.
INVALID = {
    "feeds": (load_feeds, "feeds:\n  - id: a\n    source: A\n    url: https://a.example/\n"
                          "  - id: b\n    source: B\n    url: ftp://b.example/\n    interval: 0\n",
              "feeds[1] (id 'b'): field 'url': must be an absolute http(s) URL, got "
              "'ftp://b.example/' (line 7)\n{path}: feeds[1] (id 'b'): field 'interval': must "
              "be at least 1 second, got 0 (line 8)"),
    "claims": (load_claims, "claims:\n  - id: c1\n    text: A claim long enough to match\n"
                            "    threshold: 150\n  - id: c1\n    text: The same id again here\n",
               "(line 4)"),
    "alerts": (load_alerts, "receivers:\n  - name: desk\n    urls: ['json://localhost']\n"
                            "route:\n  receiver: nobody\n", "line 5"),
}


@pytest.mark.parametrize("kind", sorted(INVALID))
def test_an_invalid_file_s_message_is_the_round_trip_one_with_lines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    load, text, line = INVALID[kind]
    path = tmp_path / f"{kind}.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as fast:
        load(path)
    monkeypatch.setattr(yamlfile, "load_plain", _decline)
    with pytest.raises(ConfigError) as slow:
        load(path)
    assert str(fast.value) == str(slow.value)
    assert str(fast.value).startswith(f"{path}: ")
    assert line.format(path=path) in str(fast.value)

"""Read YAML config files and turn validation errors into messages that name file, entry, field.

ruamel.yaml keeps the line of every mapping key and sequence item, so an error can say where it
is, not only what it is. Every config file is parsed here, within the bounds of
:mod:`monitor.config.yamlguard` (size, nesting, alias expansion), before anything walks it.

:func:`load_config` reads a valid file the fast way (:mod:`monitor.config.yamlfast`, libyaml,
~30x faster: a 50,000-feed feeds.yaml in seconds, not minutes) and parses the round-trip way,
guarded, only a file that the fast reader hands back or whose data is invalid, so that every
message still names its line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from monitor.config.yamlfast import NotPlain, load_plain
from monitor.config.yamlguard import MAX_FILE_BYTES, Refused, guarded
from monitor.errors import ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Names a top-level sequence entry for humans, e.g. "feeds[3] (id 'tass-world')".
EntryLabel = Callable[[Any, int], str]


def load_config(path: Path, build: Callable[[Path, Any], T]) -> T:
    """``build(path, document)`` for the YAML document in ``path``. ``build`` raises
    ConfigError for invalid data, naming lines where the document has them (ruamel's ``lc``):
    it is given the fast reader's plain data first and, if that fails or the fast reader
    declines, the round-trip parser's, so its errors are always the round-trip ones."""
    text = read_text(path)
    try:
        return build(path, load_plain(text))
    except NotPlain as exc:  # aliases, bounds, syntax errors ...: the guarded parser decides
        log.debug("%s: read by the round-trip parser: %s", path, exc)
    except ConfigError:
        pass  # said again below with line numbers
    return build(path, parse_yaml_text(path, text))


def read_yaml(path: Path) -> Any:
    """Parse ``path`` keeping line information; ConfigError names file and line on failure."""
    return parse_yaml_text(path, read_text(path))


def read_text(path: Path) -> str:
    """The text of ``path``, at most ``MAX_FILE_BYTES`` of it; ConfigError when unreadable."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)  # an absurd file is refused, not read whole
        text = raw.decode("utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    _check_size(path, text)
    return text


def _check_size(path: Path, text: str) -> None:
    if len(text) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES // 2**20} MiB; refused as no "
                          "config file needs to be")


def parse_yaml_text(path: Path, text: str, yaml: YAML | None = None) -> Any:
    """Parse ``text`` read from ``path`` (with ``yaml``'s settings, guarded); ConfigError names
    file and line on failure, and refuses a document over the bounds of ``yamlguard``."""
    _check_size(path, text)
    try:
        return guarded(yaml).load(text)
    except Refused as exc:
        raise ConfigError(f"{path}: line {exc.line}: {exc.reason}") from exc
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ConfigError(f"{path}: YAML syntax error at {where}: {exc.problem or exc}") from exc
    except YAMLError as exc:
        raise ConfigError(f"{path}: YAML error: {exc}") from exc
    except ValueError as exc:  # ruamel builds dates while parsing: made_at: 2026-13-45
        raise ConfigError(f"{path}: a value cannot be read: {exc}") from exc


def line_of(document: Any, location: Sequence[int | str]) -> int | None:
    """1-based line of the node at ``location`` (keys and indexes), or of its nearest parent."""
    node, line = document, None
    for step in location:
        lc = getattr(node, "lc", None)
        try:
            if lc is not None:
                line = (lc.key(step) if isinstance(step, str) else lc.item(step))[0] + 1
            node = node[step]
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    return line


def describe_validation_error(
    path: Path, document: Any, exc: ValidationError, label: EntryLabel
) -> ConfigError:
    """One ConfigError listing every problem as ``file: entry: field 'x': message (line N)``."""
    problems = []
    for error in exc.errors():
        location = [step for step in error["loc"] if isinstance(step, int | str)]
        message = error["msg"].removeprefix("Value error, ")
        problems.append(_describe_one(path, document, location, error["type"], message, label))
    return ConfigError("\n".join(problems))


def _describe_one(
    path: Path, document: Any, location: list[int | str], kind: str, message: str,
    label: EntryLabel,
) -> str:
    entry = ""
    rest = list(location)
    if len(rest) >= 2 and isinstance(rest[0], str) and isinstance(rest[1], int):
        entry = label(document, rest[1]) + ": "
        rest = rest[2:]
    field = ".".join(str(step) for step in rest)
    if kind == "extra_forbidden":
        what = f"unknown key {field!r}"
    elif field:
        what = f"field {field!r}: {message}"
    else:
        what = message
    line = line_of(document, location)
    suffix = f" (line {line})" if line else ""
    return f"{path}: {entry}{what}{suffix}"


def sequence_entry_label(section: str, id_key: str = "id") -> EntryLabel:
    """Label entries of ``document[section]`` by index and, where present, their id."""

    def label(document: Any, index: int) -> str:
        try:
            ident = document[section][index].get(id_key)
        except (KeyError, IndexError, TypeError, AttributeError):
            ident = None
        return f"{section}[{index}]" + (f" (id {ident!r})" if isinstance(ident, str) else "")

    return label


def check_unique_ids(path: Path, document: Any, section: str, ids: Sequence[str]) -> None:
    """ConfigError naming both entries when an id in ``document[section]`` repeats."""
    label = sequence_entry_label(section)
    first_index: dict[str, int] = {}
    for index, ident in enumerate(ids):
        if ident in first_index:
            first = first_index[ident]
            line = line_of(document, [section, index, "id"])
            raise ConfigError(
                f"{path}: {label(document, index)}: field 'id': duplicate id, first used by "
                f"{label(document, first)} at line {line_of(document, [section, first, 'id'])}"
                + (f" (line {line})" if line else "")
            )
        first_index[ident] = index

"""Change claims.yaml in place: ``monitor claims add`` and ``monitor claims retire``.

The file is hand-edited too, so an edit keeps everything it does not change: ruamel.yaml's
round-trip mode keeps comments, key order and quoting, and the indentation is the one that
reproduces the file as read. Every edit is checked before it lands:

1. the new entry alone is validated with ``ClaimConfig`` (errors name the field);
2. the whole new document is written to a temporary file next to the real one and read back
   with ``load_claims``, so it passes exactly the rules ``monitor check`` applies, and the claims
   read back must be the old ones plus (or with) exactly the change asked for;
3. just before the temporary file replaces the real one (``os.replace``, atomic on POSIX), the
   real file is read again: if someone changed it meanwhile, nothing is written.

Any failure leaves the file byte-identical and raises ConfigError naming file, entry and field.

A claim added without ``made_at`` gets the day it was added (UTC), with a comment saying so:
``made_at`` bounds what is news about the claim (an item published before it is background, not
an alert), and for a claim the desk starts tracking today without knowing when it was first
made, today is that bound. Claims written by hand without ``made_at`` have no bound.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.scalarstring import FoldedScalarString, LiteralScalarString
from ruamel.yaml.tokens import CommentToken

from monitor.config.claims import ClaimConfig, ClaimsFile, load_claims
from monitor.config.yamlfile import (
    describe_validation_error,
    line_of,
    parse_yaml_text,
    sequence_entry_label,
)
from monitor.errors import ConfigError

NEW_FILE = (
    "# Claims the desk tracks. Validate with `monitor check`; see monitor/config/claims.py.\n"
    "# keywords: groups of alternatives (any language, any script); an item must hit every "
    "group.\n"
    "claims:\n"
)
# (mapping, sequence, offset) indentations tried in turn; the first that reproduces the file
# byte for byte is used. The first is this repository's style and the style of new files.
INDENTS = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0), (3, 3, 0), (3, 5, 3))
# Never re-wrap long lines (ruamel's default would fold plain scalars at 80 columns).
WIDTH = 4096

_label = sequence_entry_label("claims")
ADDED_COMMENT = "the day it was added: no made_at was given"


@dataclass
class _Snapshot:
    """The file as read at the start of an edit."""

    raw: bytes | None  # None: the file does not exist (yet)
    yaml: YAML
    document: Any
    before: tuple[ClaimConfig, ...] | None  # the claims it held; None if it was not valid
    mode: int


def add_claim(path: Path, entry: dict[str, Any], *, today: date | None = None) -> ClaimConfig:
    """Append ``entry`` to ``claims:`` in ``path`` (created if missing); returns the new claim.
    Without ``made_at`` the claim gets ``today`` (default: the current UTC date)."""
    added = entry.get("made_at") is None
    if added:
        entry = {**entry, "made_at": today or datetime.now(UTC).date()}
    claim = _validate_entry(path, entry)
    snapshot = _read(path, missing_ok=True)
    entries = _claims_entries(path, snapshot.document, create=True)
    for index, existing in enumerate(entries):
        if isinstance(existing, dict) and existing.get("id") == claim.id:
            line = line_of(snapshot.document, ["claims", index, "id"])
            raise ConfigError(
                f"{path}: field 'id': {claim.id!r} is already used by "
                f"{_label(snapshot.document, index)}" + (f" at line {line}" if line else "")
                + "; not changed"
            )
    blank_line_between = _separated_by_blank_lines(entries)
    node = _entry_node(claim)
    if added:
        node.yaml_add_eol_comment(ADDED_COMMENT, "made_at")
    entries.append(node)
    if blank_line_between:
        entries.yaml_set_comment_before_after_key(len(entries) - 1, before="\n")
    expected = None if snapshot.before is None else (*snapshot.before, claim)
    return _write(path, snapshot, claim.id, claim, expected)


def retire_claim(path: Path, claim_id: str) -> ClaimConfig:
    """Set ``status: retired`` on the claim ``claim_id`` in ``path``; returns the claim."""
    snapshot = _read(path, missing_ok=False)
    entries = _claims_entries(path, snapshot.document, create=False)
    index = next((i for i, existing in enumerate(entries)
                  if isinstance(existing, dict) and existing.get("id") == claim_id), None)
    if index is None:
        raise ConfigError(f"{path}: no claim with id {claim_id!r}; not changed")
    node = entries[index]
    if not isinstance(node, CommentedMap):
        raise ConfigError(f"{path}: {_label(snapshot.document, index)} is not a mapping; "
                          "not changed")
    if node.get("status") == "retired":
        line = line_of(snapshot.document, ["claims", index, "status"])
        raise ConfigError(
            f"{path}: {_label(snapshot.document, index)} is already retired"
            + (f" (line {line})" if line else "") + "; not changed"
        )
    if "status" in node:
        node["status"] = "retired"  # the key's own comments stay where they are
    else:
        _append_key(node, "status", "retired")
    if snapshot.before is None:  # it did not load before; the whole-file check below says why
        return _write(path, snapshot, claim_id, None, None)
    expected = tuple(claim.model_copy(update={"status": "retired"}) if claim.id == claim_id
                     else claim for claim in snapshot.before)
    changed = next(claim for claim in expected if claim.id == claim_id)
    return _write(path, snapshot, claim_id, changed, expected)


# -- reading ---------------------------------------------------------------------------------


def _read(path: Path, missing_ok: bool) -> _Snapshot:
    target = Path(os.path.realpath(path))
    try:
        raw: bytes | None = target.read_bytes()
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError as exc:
        if not missing_ok:
            raise ConfigError(f"{path}: file not found") from exc
        raw, mode = None, 0o666 & ~_umask()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    try:
        text = NEW_FILE if raw is None else raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    yaml, document = _load_keeping_layout(path, text)
    if document is None and raw is not None:  # an empty or comment-only file
        text += ("" if text.endswith("\n") or not text else "\n") + "claims:\n"
        yaml, document = _load_keeping_layout(path, text)
    return _Snapshot(raw, yaml, document, _claims_or_none(document), mode)


def _load_keeping_layout(path: Path, text: str) -> tuple[YAML, Any]:
    """Parse ``text`` with the first indentation that dumps it back unchanged."""
    fallback: tuple[YAML, Any] | None = None
    for mapping, sequence, offset in INDENTS:
        yaml = _yaml(mapping, sequence, offset)
        document = parse_yaml_text(path, text, yaml)
        if fallback is None:
            fallback = (yaml, document)
        if _dump(yaml, document) == text:
            return yaml, document
    # No style reproduces the file exactly (unusual spacing): comments and order are still kept,
    # only the spacing of what ruamel cannot reproduce changes.
    assert fallback is not None
    return fallback


def _yaml(mapping: int, sequence: int, offset: int) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = WIDTH
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def _dump(yaml: YAML, document: Any) -> str:
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    return buffer.getvalue()


def _claims_entries(path: Path, document: Any, create: bool) -> CommentedSeq:
    if not isinstance(document, CommentedMap):
        raise ConfigError(f"{path}: expected a mapping with a 'claims:' list at the top")
    entries = document.get("claims")
    if entries is None and create:
        entries = document["claims"] = CommentedSeq()
    if entries is None:
        raise ConfigError(f"{path}: field 'claims': there are no claims")
    if not isinstance(entries, CommentedSeq) or entries.fa.flow_style():
        raise ConfigError(f"{path}: field 'claims': expected a block list of claims "
                          "('- id: ...' entries) to edit")
    return entries


def _claims_or_none(document: Any) -> tuple[ClaimConfig, ...] | None:
    try:
        return ClaimsFile.model_validate(_plain(document) or {}).claims
    except ValidationError:
        return None


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(value) for value in node]
    if isinstance(node, str):
        return str(node)
    return node


# -- the change ------------------------------------------------------------------------------


def _validate_entry(path: Path, entry: dict[str, Any]) -> ClaimConfig:
    fields = {key: value for key, value in entry.items() if value is not None}
    ident = fields.get("id")
    name = f"new claim (id {ident!r})" if isinstance(ident, str) else "new claim"
    try:
        (claim,) = ClaimsFile.model_validate({"claims": [fields]}).claims
    except ValidationError as exc:
        error = describe_validation_error(path, None, exc, lambda _doc, _index: name)
        raise ConfigError(f"{error}\n{path}: not changed") from exc
    return claim


def _entry_node(claim: ClaimConfig) -> CommentedMap:
    """The claim as a mapping in the file's style: fields in model order, lists in flow style."""
    node = CommentedMap()
    for name in ClaimConfig.model_fields:
        value = getattr(claim, name)
        if name != "status" and (name not in claim.model_fields_set or value is None):
            continue
        if name == "keywords":
            value = CommentedSeq([_flow(group) for group in value])
        elif isinstance(value, tuple):
            value = _flow(value)
        elif isinstance(value, dict):
            value = CommentedMap(value)
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        node[name] = value
    return node


def _flow(values: tuple[str, ...]) -> CommentedSeq:
    seq = CommentedSeq(values)
    seq.fa.set_flow_style()
    return seq


def _tail_slot(node: Any) -> tuple[dict[Any, Any], Any, int, Any] | None:
    """Where the comment after the last line of ``node`` lives: (ca.items, key, index, value)."""
    if isinstance(node, CommentedMap) and node:
        key = list(node)[-1]
        value, index = node[key], 2
    elif isinstance(node, CommentedSeq) and node:
        key = len(node) - 1
        value, index = node[key], 0
    else:
        return None
    if isinstance(value, CommentedMap | CommentedSeq) and value and not value.fa.flow_style():
        return _tail_slot(value)
    return node.ca.items, key, index, value


def _cut(token: CommentToken, value: Any) -> int:
    """Where the lines after a value start in its comment token: after the end-of-line part,
    except behind a block scalar (``|``, ``>``), which ends its own last line."""
    text = str(token.value)
    if isinstance(value, LiteralScalarString | FoldedScalarString):
        return 0
    return text.index("\n") + 1 if "\n" in text else len(text)


def _tail_lines(node: Any) -> str:
    """The full lines (blank or comment) that follow ``node``'s last line."""
    slot = _tail_slot(node)
    if slot is None:
        return ""
    items, key, index, value = slot
    token = (items.get(key) or [None] * 4)[index]
    if not isinstance(token, CommentToken):
        return ""
    return str(token.value)[_cut(token, value):]


def _separated_by_blank_lines(entries: CommentedSeq) -> bool:
    """Whether the file puts an empty line between claims (then a new claim gets one too)."""
    return any(line.strip() == "" for entry in list(entries)[:-1]
               for line in _tail_lines(entry).split("\n")[:-1])


def _append_key(node: CommentedMap, key: str, value: Any) -> None:
    """Add ``key: value`` as the last line of ``node``, above the blank lines and comments that
    followed the entry (they separate it from the next one), not below them."""
    slot = _tail_slot(node)
    node[key] = value
    if slot is None:
        return
    items, last, index, last_value = slot
    holder = items.get(last)
    token = holder[index] if holder else None
    if not isinstance(token, CommentToken):
        return
    text = str(token.value)
    cut = _cut(token, last_value)
    if not text[cut:]:
        return
    if cut:
        token.value = text[:cut]
    elif holder is not None:
        holder[index] = None
    moved = CommentToken("\n" + text[cut:], CommentMark(0), None)
    node.ca.items[key] = [None, None, moved, None]


# -- writing ---------------------------------------------------------------------------------


def _write(path: Path, snapshot: _Snapshot, claim_id: str, changed: ClaimConfig | None,
           expected: tuple[ClaimConfig, ...] | None) -> ClaimConfig:
    """Write the edited document over ``path`` if it reads back as ``expected`` (the whole file)
    and ``changed`` (the claim ``claim_id``), and the file is still as ``snapshot`` found it."""
    target = Path(os.path.realpath(path))
    data = _dump(snapshot.yaml, snapshot.document).encode("utf-8")
    with _temporary(target, data, snapshot.mode) as temporary:
        try:
            loaded = load_claims(temporary)
        except ConfigError as exc:
            message = str(exc).replace(str(temporary), str(path))
            raise ConfigError(f"{message}\n{path}: not changed") from exc
        result = next((claim for claim in loaded if claim.id == claim_id), None)
        if result is None or (changed is not None and result != changed) or (
                expected is not None and loaded != expected):
            raise ConfigError(f"{path}: the edited file would not read back as asked "
                              f"(claim {claim_id!r}); not changed")
        try:
            current: bytes | None = target.read_bytes()
        except FileNotFoundError:
            current = None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc}; not changed") from exc
        if current != snapshot.raw:
            raise ConfigError(f"{path}: changed while editing, try again; not changed")
        try:
            os.replace(temporary, target)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot replace the file: {exc}; not changed") from exc
    _fsync_directory(target.parent)
    return result


@contextmanager
def _temporary(target: Path, data: bytes, mode: int) -> Iterator[Path]:
    """``data`` in a synced temporary file beside ``target``, removed unless it was moved."""
    try:
        handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent)
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write a temporary file beside it: {exc}") from exc
    temporary = Path(name)
    try:
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fchmod(file.fileno(), mode)
                os.fsync(file.fileno())
        except OSError as exc:
            raise ConfigError(f"{target}: cannot write {temporary.name}: {exc}") from exc
        yield temporary
    finally:
        with suppress(FileNotFoundError):
            temporary.unlink()


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (best effort: not every platform can open a directory)."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


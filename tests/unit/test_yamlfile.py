"""Reading config YAML within bounds: alias bombs, recursive aliases, deep nesting, huge files.

Every case reads through ``read_yaml`` (the guarded round-trip path), ``load_config`` (what
feeds, claims and routes loaders call: libyaml first, handing aliases back to the guard) or
``parse_yaml_text`` (what ``monitor claims add`` calls). ruamel shares aliased nodes while it
parses, so these in-process tests stay cheap even if the guard broke; what expands a bomb
(validation) is exercised in a memory-capped child by tests/unit/test_alias_bombs.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from monitor.config.yamlfile import load_config, parse_yaml_text, read_yaml
from monitor.config.yamlguard import MAX_ALIAS_NODES, MAX_DEPTH, MAX_FILE_BYTES
from monitor.errors import ConfigError


def laughs(levels: int, width: int = 9, indent: str = "") -> str:
    """The "billion laughs" shape: each anchor repeats the one before ``width`` times."""
    lines = [f"{indent}l0: &l0 [" + ", ".join(['"lol"'] * width) + "]"]
    lines += [f"{indent}l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * width) + "]"
              for n in range(1, levels)]
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, text: str, name: str = "claims.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refusal(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        read_yaml(path)
    return str(caught.value)


def test_an_alias_bomb_is_refused_fast_naming_file_and_the_line_of_the_alias(
        tmp_path: Path) -> None:
    # 9 levels: 9**9 (387 million) nodes once expanded, from a 400-byte file.
    path = write(tmp_path, "bomb:\n" + laughs(9, indent="  ") + "claims: []\n")
    started = time.process_time()  # CPU seconds: the work done, not the machine's load
    message = refusal(path)
    assert time.process_time() - started < 2
    # Level 4 stands for 1 + 9 + 81 + 729 + 6561 + 59049 = 66430 nodes: its second use, in
    # level 5's list on line 7 of the file, takes the aliases past 100,000.
    assert message.startswith(f"{path}: line 7: alias *l4 ")
    assert "100,000 nodes" in message and "alias bomb" in message


def test_the_bomb_is_counted_inside_flow_mappings_and_merge_keys_too(tmp_path: Path) -> None:
    text = "a: &a {x: 1, y: 2, z: 3, w: 4, v: 5, u: 6, t: 7, s: 8, r: 9, q: 10}\n"
    for n in range(1, 8):
        text += f"m{n}: &m{n}\n" + "".join(f"  k{k}: *{'a' if n == 1 else f'm{n - 1}'}\n"
                                            for k in range(10))
    text += "route:\n  <<: *m7\n"
    path = write(tmp_path, text, "routes.yaml")
    assert refusal(path).startswith(f"{path}: line ")


def test_a_recursive_alias_is_refused_naming_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "feeds:\n  - &loop\n    id: a\n    again: *loop\n", "feeds.yaml")
    assert refusal(path) == (f"{path}: line 4: alias *loop refers to a node that contains it "
                             "(a recursive alias)")


def test_nesting_deeper_than_the_limit_is_refused_and_the_limit_itself_is_read(
        tmp_path: Path) -> None:
    fine = write(tmp_path, "deep: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n")
    assert read_yaml(fine) is not None
    # 5,000 levels would overflow the interpreter's stack without the limit.
    path = write(tmp_path, "x: 1\ndeep: " + "[" * 5000 + "]" * 5000 + "\n")
    assert refusal(path) == f"{path}: line 2: nested more than {MAX_DEPTH} levels deep"


def test_a_file_over_the_size_limit_is_refused_without_being_parsed(tmp_path: Path) -> None:
    path = write(tmp_path, "# padding\n" * (MAX_FILE_BYTES // 10 + 1), "feeds.yaml")
    assert refusal(path) == (f"{path}: larger than {MAX_FILE_BYTES // 2**20} MiB; refused as "
                             "no config file needs to be")


def test_shared_settings_through_anchors_and_merge_keys_still_load(tmp_path: Path) -> None:
    # How operators share route settings: one anchored mapping merged into many routes.
    routes = "".join(f"    - <<: *urgent\n      matchers: ['claim = c{n}']\n"
                     for n in range(200))
    path = write(tmp_path, "defaults: &urgent {receiver: desk, group_wait: 10s, "
                           "group_by: [claim, relation]}\nroute:\n  receiver: desk\n  routes:\n"
                 + routes, "routes.yaml")
    document = read_yaml(path)
    assert len(document["route"]["routes"]) == 200
    assert document["route"]["routes"][199]["group_by"] == ["claim", "relation"]


def test_aliases_up_to_the_limit_load(tmp_path: Path) -> None:
    # A 99-node list used 1,000 times: 99,000 nodes from aliases, under the 100,000 allowed.
    assert MAX_ALIAS_NODES == 100_000
    text = "shared: &s [" + ", ".join(["x"] * 98) + "]\nuses:\n" + "  - *s\n" * 1000
    document = read_yaml(write(tmp_path, text))
    assert len(document["uses"]) == 1000 and document["uses"][999][97] == "x"


def test_parse_yaml_text_guards_a_caller_s_own_yaml_instance(tmp_path: Path) -> None:
    # `monitor claims add` parses with YAML instances of its own (to keep the file's layout).
    from monitor.config.claims_edit import _yaml

    with pytest.raises(ConfigError, match=r"^claims\.yaml: line 7: alias \*l4 "):
        parse_yaml_text(Path("claims.yaml"), "bomb:\n" + laughs(9, indent="  "), _yaml(2, 4, 2))


# The loaders read through `load_config`, whose fast reader (libyaml) hands every alias, deep
# nesting and oversized file back to the guarded parser: the refusals must not change.
REFUSED_THROUGH_LOAD_CONFIG = {
    "alias-bomb": "bomb:\n" + laughs(9, indent="  ") + "claims: []\n",
    "merge-key-bomb": "a: &a {x: 1, y: 2, z: 3, w: 4, v: 5, u: 6, t: 7, s: 8, r: 9, q: 10}\n"
                      + "".join(f"m{n}: &m{n}\n" + "".join(
                          f"  k{k}: *{'a' if n == 1 else f'm{n - 1}'}\n" for k in range(10))
                          for n in range(1, 8)) + "route:\n  <<: *m7\n",
    "recursive-alias": "feeds:\n  - &loop\n    id: a\n    again: *loop\n",
    "deep-nesting": "x: 1\ndeep: " + "[" * 5000 + "]" * 5000 + "\n",
    "at-the-depth-limit": "deep: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n",
    "oversized": "# padding\n" * (MAX_FILE_BYTES // 10 + 1),
}


@pytest.mark.parametrize("case", sorted(REFUSED_THROUGH_LOAD_CONFIG))
def test_load_config_refuses_what_read_yaml_refuses_with_the_same_message(
        tmp_path: Path, case: str) -> None:
    path = write(tmp_path, REFUSED_THROUGH_LOAD_CONFIG[case])
    started = time.process_time()
    with pytest.raises(ConfigError) as caught:
        load_config(path, lambda path, document: document)
    # Seconds, not the minutes and gigabytes of an expansion: ruamel alone takes ~1.5 s to
    # scan 5,000 brackets, libyaml's try before it ~2 ms. CPU seconds of this process, since
    # the work is what is bounded: wall seconds under -n 2 on a loaded machine passed 5 s.
    assert time.process_time() - started < 5
    assert str(caught.value) == refusal(path)
    assert str(caught.value).startswith(f"{path}: l")  # "line N: ..." or "larger than ..."


def test_an_impossible_date_is_a_config_error_not_a_traceback(tmp_path: Path) -> None:
    # ruamel builds dates while it parses; its ValueError used to escape `monitor check`.
    path = tmp_path / "claims.yaml"
    path.write_text("claims:\n  - id: a\n    made_at: 2026-13-45\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"claims\.yaml: a value cannot be read: month"):
        read_yaml(path)

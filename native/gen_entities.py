"""Writes native/src/entities.rs from CPython's own HTML tables, which the compiled reading
must decode exactly as ``html.unescape`` does.

    .venv/bin/python native/gen_entities.py            # rewrite native/src/entities.rs
    .venv/bin/python native/gen_entities.py --check    # exit 1 if the file differs

Run it with the CPython whose ``html`` module the Python readings use (3.11 today); a
newer CPython that changed its tables shows up as a difference here and in the equality tests
of tests/feeds/test_html_text.py.
"""

from __future__ import annotations

import argparse
import html
import html.entities
import sys
from pathlib import Path

TARGET = Path(__file__).resolve().parent / "src" / "entities.rs"


def _rust_str(text: str) -> str:
    """A Rust string literal: printable ASCII as it is, every other character (and the quote
    and the backslash) as \\u{hex}."""
    out = []
    for char in text:
        if " " <= char <= "~" and char not in '"\\':
            out.append(char)
        else:
            out.append(f"\\u{{{ord(char):x}}}")
    return '"' + "".join(out) + '"'


def render() -> str:
    # Sorted by the names' bytes: the compiled side binary-searches them.
    names = sorted(html.entities.html5, key=lambda name: name.encode())
    invalid_charrefs = sorted(html._invalid_charrefs.items())  # type: ignore[attr-defined]
    invalid_codepoints = sorted(html._invalid_codepoints)  # type: ignore[attr-defined]
    lines = [
        "// Written by native/gen_entities.py from CPython's html.entities.html5 and html's",
        "// charref tables (names sorted by byte order for binary search); do not edit.",
        "// tests/feeds/test_html_text.py holds the readings to html.unescape.",
        "pub static HTML5: &[(&str, &str)] = &[",
        *(f"    ({_rust_str(name)}, {_rust_str(html.entities.html5[name])})," for name in names),
        "];",
        "pub static INVALID_CHARREFS: &[(u32, &str)] = &[",
        *(f"    ({number}, {_rust_str(text)})," for number, text in invalid_charrefs),
        "];",
        "pub static INVALID_CODEPOINTS: &[u32] = &["
        + ", ".join(str(number) for number in invalid_codepoints) + "];",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs")
    args = parser.parse_args()
    text = render()
    if args.check:
        if TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} differs from this CPython's tables: run {__file__}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

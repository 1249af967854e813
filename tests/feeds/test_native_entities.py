"""native/src/entities.rs is generated from CPython's html tables: it must still be what the
generator writes, or the compiled reading decodes entities differently from html.unescape."""

from __future__ import annotations

import importlib.util
from pathlib import Path

GENERATOR = Path(__file__).resolve().parents[2] / "native" / "gen_entities.py"


def test_entities_rs_is_what_the_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location("gen_entities", GENERATOR)
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    written = generator.TARGET.read_text(encoding="utf-8")
    assert written == generator.render(), f"run {GENERATOR} and commit native/src/entities.rs"


def test_the_tables_hold_the_entities_html_unescape_reads() -> None:
    text = GENERATOR.parent.joinpath("src", "entities.rs").read_text(encoding="utf-8")
    assert '("amp;", "&"),' in text and '("zwnj;", "\\u{200c}"),' in text
    assert "(128, \"\\u{20ac}\")," in text  # &#128; is the euro sign, as in cp1252

"""normalize.plain_text's quick HTML paths against html.parser (the reference it replaced):
the same text for every title and summary in ../shared/feeds and for awkward fragments; and
the compiled reading (native/, when installed) the same as the Python readings."""

from __future__ import annotations

import html.entities
import importlib
import os
import random
import re
from pathlib import Path

import ftfy
import pytest

from monitor.feeds import html_text, normalize
from monitor.feeds.html_text import html_to_text, reference_text
from monitor.feeds.inflate import inflate_gzip
from monitor.feeds.wellformed import read_wellformed
from tests.conftest import SHARED


def reference_plain_text(value: str, max_chars: int) -> str:
    """plain_text as it was before the quick paths: html.parser, then the whole text."""
    enough = max_chars * 4
    if "<" in value or "&" in value:
        value = reference_text(value, enough)
    value = value[:enough]
    if normalize._MOJIBAKE_HINT.search(value):
        value = ftfy.fix_encoding(value)
    text = re.sub(r"\s+", " ", normalize._drop_invisible(value)).strip()
    return normalize.truncate(text, max_chars)


FRAGMENTS = [
    pytest.param("a&am<b>p;</b>x &amp; y", id="entity-cut-by-a-tag"),
    pytest.param("one<br/>two<BR>three</p>four<br />five", id="breaks"),
    pytest.param("<p>a</p><noscript>hidden<p>x</p></noscript>shown", id="noscript-skipped"),
    pytest.param("<script>var a = '<b>';</script>text<style>p{}</style>", id="raw-text"),
    pytest.param("a<!-- c -- >b<!--x-->c", id="comments"),
    pytest.param('<a title="x>y" href=\'q\'>link</a> <img src=x alt=y/>z', id="quoted-gt"),
    pytest.param('</a title=">">after', id="end-tag-with-attribute"),
    pytest.param("a < b and c<d", id="lone-brackets"),
    pytest.param("<![CDATA[x]]><!DOCTYPE html><?php ?>t", id="declarations"),
    pytest.param("tab\tand\fform<i>feed</i>&nbsp;&#x41;&#65", id="separators-present"),
    pytest.param("a<script>x = '</scr' + 'ipt>'; y = '<p>'</script>b<STYLE a='1'>p{}</ style >c"
                 "<script/>d<style/>e</script>f", id="raw-text-ends"),
    pytest.param("a<p>b</p><script>never closed <b>x</b> &amp;", id="raw-text-unclosed"),
    pytest.param("a<noscript><script>s</script>n</noscript>b<script>c</SCRIPT\t>&#65;",
                 id="raw-text-nested"),
    pytest.param("<p:x>ns</p:x><h7>h</h7><h6>six</h6>", id="odd-names"),
    # Letters that re.IGNORECASE folds and str.lower does not: no break, no script.
    pytest.param("a<dıv>b<lı>c</dİv>d<DIV>e</dIv >f<Br/>g", id="unicode-case-names"),
    pytest.param("<ſcript>x</ſcript>y<SCRİPT>z<ſtyle>w", id="unicode-case-raw-text"),
    # Scripts read by the regex passes: closed in the piece, in data (not in a tag or comment).
    pytest.param('a<a title="<script>">x</a>y</script>z<!-- <style> -->w</style>v',
                 id="raw-text-start-in-attribute-or-comment"),
    pytest.param("a&am<script>x</script>p;b<script/>c<style a='>'>s</style>d", id="raw-text-runs"),
    pytest.param(("<p>" + "word " * 300 + "</p>") * 2 + "<script>" + "if (a<b) x;" * 400
                 + "</script>" + ("<p>" + "word " * 300 + "</p>") * 5, id="script-across-pieces"),
    pytest.param("<b\xa0x>unicode space in a tag</b>", id="nbsp-in-tag"),
    pytest.param("unclosed <a href='x", id="cut-short"),
    pytest.param(("<p>" + "word " * 300 + "</p>") * 40, id="long-article"),
    pytest.param("&notit; &amp &ampx &#0; &#x110000;", id="odd-entities"),
    # Long articles read until the text decides the kept part, unless the hint of mojibake
    # (which has the whole text repaired, "itâ€™s" included) can lie in the part not read.
    *(pytest.param("<p>itâ€™s</p>" + ("<p>" + "word " * 300 + "</p>") * 5 + late + "<p>end</p>",
                   id=name)
      for name, late in [("late-mojibake", "CafÃ© ok"), ("late-entities", "Caf&Atilde;&copy;"),
                         ("late-numeric", "Caf&#195;&#169; &#xC3;&#xa9;"),
                         ("late-tag-between", "CafÃ<b>©</b>"), ("late-no-hint", "Café, à la")]),
    pytest.param("itâ€™s " + "x" * 2988 + "Ã<b>©</b>" + ("<p>" + "word " * 300 + "</p>") * 5,
                 id="hint-across-pieces"),
    # ... and the same read tag by tag (a script or noscript the regex passes do not read).
    *(pytest.param(start + ("<p>" + "word " * 300 + "</p>") * 5 + late + "<p>end</p>", id=name)
      for name, start, late in [
          ("script-late-mojibake", "<p>itâ€™s</p><script>a<b</script>", "CafÃ©"),
          ("script-late-entity", "<p>itâ€™s</p><script>a<b</script>", "Caf&Atilde;&copy;"),
          ("noscript-no-hint", "<noscript><p>hidden</p></noscript>", "Café, à la"),
          ("unclosed-script", "<p>" + "word " * 500 + "</p><script>", "CafÃ©")]),
    # More than max_chars * 4 characters of text in one run, most of it whitespace: only the
    # first max_chars * 4 count.
    pytest.param("<script>x</script>a" + " " * 7000 + "word " * 1000 + "<p>end</p>",
                 id="long-blank-run-after-script"),
    pytest.param("<b>a</b>" + " " * 7000 + "word " * 1000 + "<p>end</p>",
                 id="long-blank-run"),
]


@pytest.mark.parametrize("value", FRAGMENTS)
@pytest.mark.parametrize("max_chars", [20, 500, 2000])
def test_awkward_fragments(value: str, max_chars: int) -> None:
    assert normalize.plain_text(value, max_chars) == reference_plain_text(value, max_chars)


# Pieces of long fragments: text, whitespace runs, tags, scripts, entities, the letters of
# the mojibake hint as characters and as entities, and pieces no quick reading accepts.
PIECES = ["word ", "Ã", "©", "é", "Â", "’", "â€™", "\u0093", " ", "\n", " " * 300, "x" * 200,
          "<p>", "</p>", "<br/>", "<BR/>", "<b>", "</b>", "<div>", "<a href='x'>", "</a>",
          '<p class="a>b">', "<script>a<b</script>", "</ script >", "<script/>",
          "<style>x</style>", "<noscript>n</noscript>", "<!-- c -->", "<![CDATA[x]]>",
          "&amp;", "&nbsp;", "&Atilde;", "&Acirc", "&#195;", "&#xa9;", "&copy;", "&", "<", "< "]


@pytest.mark.parametrize("seed", range(8))
def test_generated_long_fragments(seed: int) -> None:
    """Long fragments read piece by piece until the kept text is decided: what the
    reference gives, whatever mix of pieces they hold."""
    rng = random.Random(seed)
    for _ in range(20):
        weights = [rng.random() ** 4 for _ in PIECES]  # a few pieces make most of it
        value = "".join(rng.choices(PIECES, weights, k=rng.randint(200, 2500)))
        for max_chars in (20, 500, 2000):
            expected = reference_plain_text(value, max_chars)
            assert normalize.plain_text(value, max_chars) == expected, (seed, value[:300])


def _texts() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for folder in ("real", "bench"):
        path = SHARED / "feeds" / folder
        if not path.is_dir():
            continue
        for document in sorted(path.iterdir()):
            found.extend((document.name, text) for text in _entry_texts(document))
    return found


def _entry_texts(document: Path) -> list[str]:
    body = document.read_bytes()
    if body.startswith(b"\x1f\x8b"):
        body = inflate_gzip(body, 10 << 20)
    raw = read_wellformed(body, None)
    if raw is None:
        return []
    return [text for entry in raw.entries for text in (entry.title or "", entry.summary_html)
            if "<" in text or "&" in text]


def test_every_title_and_summary_in_the_shared_feeds() -> None:
    texts = _texts()
    if not texts:
        pytest.skip(f"feed documents not found under {SHARED / 'feeds'}")
    differing = [name for name, text in texts
                 for limit in (500, 2000)
                 if normalize.plain_text(text, limit) != reference_plain_text(text, limit)]
    assert not differing, differing[:10]


def test_long_texts_read_piece_by_piece() -> None:
    """The bulk reading of a long fragment in pieces: at least ``enough`` exact characters,
    also when ``enough`` is small and the pieces many."""
    texts = [text for _, text in _texts() if len(text) > 5_000]
    if not texts:
        pytest.skip(f"feed documents not found under {SHARED / 'feeds'}")
    for text in texts:
        whole = reference_text(text, len(text) + 1)
        for enough in (40, 300, 2_000):
            read = html_to_text(text, enough)
            assert read[:enough] == whole[:enough]


# The compiled reading (native/): where it gives a text, the Python readings' text.
needs_native = pytest.mark.skipif(
    html_text._native_html_text is None,
    reason="monitor_native is not installed (pip install ./native, needs cargo)")


def test_native_module_present_when_required() -> None:
    """CI builds native/ and sets MONITOR_REQUIRE_NATIVE=1: a build that went missing fails
    here instead of every test below skipping."""
    if os.environ.get("MONITOR_REQUIRE_NATIVE") != "1":
        pytest.skip("MONITOR_REQUIRE_NATIVE is not 1")
    importlib.import_module("monitor_native")  # its ImportError, if any, says why
    assert html_text._native_html_text is not None
    assert html_text._native_bulk_html_text is not None


def assert_native_reads_as_python(value: str, enough: int) -> bool:
    """Whether the compiled reading took ``value``; when it did, its text is the Python
    readings' (and the reference's, for the first ``enough`` characters)."""
    assert html_text._native_html_text and html_text._native_bulk_html_text
    piece = html_text._native_bulk_html_text(value)
    if piece is not None:
        assert piece == html_text.python_bulk_html_text(value), value[:300]
    read = html_text._native_html_text(value, enough)
    if read is None:
        return False
    assert read == html_text.python_html_text(value, enough), (enough, value[:300])
    assert read[:enough] == reference_text(value, enough)[:enough], (enough, value[:300])
    return True


@needs_native
def test_native_over_every_title_and_summary_in_the_shared_feeds() -> None:
    texts = _texts()
    if not texts:
        pytest.skip(f"feed documents not found under {SHARED / 'feeds'}")
    taken = sum(assert_native_reads_as_python(text, enough)
                for _, text in texts for enough in (80, 2_000, 8_000))
    assert taken > len(texts), "the compiled reading took almost nothing"


# Awkward atoms: tags the regex passes read and those they do not, comments, raw text,
# entities with and without ";", numeric references out of range, the separators, letters
# re.IGNORECASE folds, unquoted and quoted attributes holding "<" or ">".
NATIVE_ATOMS = [
    "<p>", "</p>", "<br/>", "<BR >", "<br />", "<div class='x'>", "</div >", "<li>", "<tr/>",
    "<h1>", "</H6>", '<a href="x>y">', "<a href='<b>'>", "<b>", "</b>", '<img src="i" alt=""/>',
    "<!-- c -->", "<!-- <p> -->", "<!--->", "<!-- x --\t>", "<script>a<b</script>",
    "<script type='t'>x</SCRIPT >", "<style>p{}</style>", "<script>", "</script>", "<script/>",
    "<noscript>n</noscript>", "<template>", "<scripts>", "<o:p>", "< p>", "<1>", "<", ">", "&",
    "&amp;", "&amp", "&ampx;", "&#38;", "&#x26;", "&#12;", "&#9;", "&#0;", "&#128;", "&#xD800;",
    "&#99999999999;", "&#;", "&#x;", "&notit;", "&notin;", "&AMP", "&lt", "&nbsp", "&Tab;",
    "&NewLine;", "\f", "\t", "\n", "\r", " ", "\xa0", "\u017f", "\u0130", "\u212a", "é",
    "日本", "a", "b c", "x=y", '"', "'", "/", "/>", "=", "<a b=c>", "<a\fb='1'>",
    '<a b = "1" >', "<p\xa0>", "<pre>", "<param/>", "<h7>", "<!DOCTYPE html>", "<?x?>",
    "&" + "a" * 40 + ";"]
ENTITY_NAMES = sorted(html.entities.html5)


@needs_native
@pytest.mark.parametrize("seed", range(4))
def test_native_over_generated_fragments(seed: int) -> None:
    rng = random.Random(seed)
    taken = 0
    for _ in range(3_000):
        value = "".join(rng.choice(NATIVE_ATOMS) if rng.random() < 0.8
                        else "&" + rng.choice(ENTITY_NAMES) for _ in range(rng.randint(1, 12)))
        taken += assert_native_reads_as_python(value, rng.choice([2, 5, 20, 2_000]))
    assert taken > 300


@needs_native
@pytest.mark.parametrize("value", FRAGMENTS)
def test_native_over_awkward_fragments(value: str) -> None:
    for enough in (20, 2_000, 8_000):
        assert_native_reads_as_python(value, enough)

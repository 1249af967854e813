"""Escaping of untrusted feed text, per channel format: exact escaped forms."""

from __future__ import annotations

import pytest

from monitor.alerting.escape import (
    ESCAPERS,
    clean,
    escape_html,
    escape_markdown,
    escape_slack,
    escape_telegram,
    escape_text,
    escaper_for,
    fold,
    measure,
    safe_url,
    shorten,
)

Z = "\u200b"  # the zero-width space that defuses a mention

ESCAPE_CASES = [
    # Slack message formatting docs: only & < > need escaping; <!channel> and <@U> are mentions.
    pytest.param(escape_slack, "<!channel> <!here>", "&lt;!channel&gt; &lt;!here&gt;",
                 id="slack-broadcast"),
    pytest.param(escape_slack, "<@U123ABC>", f"&lt;@{Z}U123ABC&gt;", id="slack-user-mention"),
    pytest.param(escape_slack, "@channel @here @everyone", f"@{Z}channel @{Z}here @{Z}everyone",
                 id="slack-plain-mentions"),
    pytest.param(escape_slack, "<https://evil.example|click>",
                 "&lt;hxxps[://]evil[.]example|click&gt;",
                 id="slack-link"),
    pytest.param(escape_slack, "*b* _i_ ~s~ `c`", "＊b＊ ＿i＿ ～s～ ｀c｀", id="slack-emphasis"),
    pytest.param(escape_slack, "> quoted\nx > y", "＞ quoted\nx &gt; y", id="slack-quote"),
    pytest.param(escape_slack, "AT&T", "AT&amp;T", id="slack-ampersand"),
    # CommonMark 0.31 §2.4: any ASCII punctuation may be backslash-escaped.
    pytest.param(escape_markdown, "[x](https://evil.example)",
                 r"\[x\](hxxps\[://\]evil\[.\]example)",
                 id="md-link"),
    pytest.param(escape_markdown, "![i](https://evil.example/p.png)",
                 r"!\[i\](hxxps\[://\]evil\[.\]example/p\[.\]png)", id="md-image"),
    pytest.param(escape_markdown, "<https://evil.example> <b>&",
                 r"&lt;hxxps\[://\]evil\[.\]example&gt; &lt;b&gt;&amp;", id="md-autolink-and-html"),
    pytest.param(escape_markdown, "# h\n- item\n1. one\n+ two",
                 "\\# h\n\\- item\n1\\. one\n\\+ two", id="md-line-starts"),
    pytest.param(escape_markdown, "*b* _i_ ~s~ `c` |t| \\", r"\*b\* \_i\_ \~s\~ \`c\` \|t\| \\",
                 id="md-emphasis"),
    pytest.param(escape_markdown, "@all @room", f"@{Z}all @{Z}room", id="md-teams-matrix-mentions"),
    # Telegram Bot API, HTML style: only < > & (and " in attributes) are special.
    pytest.param(escape_telegram, '<b>x</b> & "q"', "&lt;b&gt;x&lt;/b&gt; &amp; &quot;q&quot;",
                 id="tg-html"),
    pytest.param(escape_telegram, "_*[]()~`>#+-=|{}.!", "_*[]()~`&gt;#+-=|{}.!",
                 id="tg-markdownv2-specials-are-plain-in-html-mode"),
    pytest.param(escape_telegram, "@durov", f"@{Z}durov", id="tg-user-mention"),
    pytest.param(escape_html, '</a><script>alert("x")</script>',
                 "&lt;/a&gt;&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;", id="html-script"),
    pytest.param(escape_html, "'&", "&#39;&amp;", id="html-quote-amp"),
    pytest.param(escape_text, "<!channel> <@U1> @here", f"<{Z}!channel> <{Z}@{Z}U1> @{Z}here",
                 id="text-mentions"),
]


@pytest.mark.parametrize(("escape", "raw", "expected"), ESCAPE_CASES)
def test_escape_exact_forms(escape, raw, expected):
    assert escape(raw) == expected


CLEAN_CASES = [
    pytest.param("a\x00b\x07c\x1b[31md\x7f\x85e", "abc[31mde", id="c0-c1-controls"),
    # Trojan Source (CVE-2021-42574): bidi overrides and isolates reorder what an editor sees.
    pytest.param("a\u202ab\u202bc\u202cd\u202de\u202ef\u2066g\u2067h\u2068i\u2069j",
                 "abcdefghij", id="bidi-overrides-isolates"),
    pytest.param("a\u200eb\u200fc\u061cd", "abcd", id="bidi-marks"),
    pytest.param("a\u200bb\u200cc\u200dd\u2060e\ufefff\u00adg", "abcdefg", id="zero-width"),
    pytest.param("a\r\nb\rc\u2028d\u2029e\tf", "a\nb\nc\nd\ne f", id="newlines"),
    pytest.param("a\ud800b\ue000c", "abc", id="lone-surrogate-private-use"),
]


@pytest.mark.parametrize(("raw", "expected"), CLEAN_CASES)
def test_clean(raw, expected):
    assert clean(raw) == expected


def test_fold_makes_one_line():
    assert fold(" a\n\n b\t c \u2028d ") == "a b c d"


SHORTEN_CASES = [
    pytest.param("The quick brown fox jumps", 12, "The quick…", id="word-boundary"),
    pytest.param("Thequickbrownfox", 6, "Thequ…", id="no-space-hard-cut"),
    pytest.param("short", 10, "short", id="fits"),
    pytest.param("e\u0301" * 10, 4, "e\u0301…", id="combining-accent-kept-whole"),
    pytest.param("🇺🇦🇺🇦🇺🇦", 4, "🇺🇦…", id="flag-pair-kept-whole"),
    pytest.param("👍🏽👍🏽👍🏽", 4, "👍🏽…", id="skin-tone-kept-whole"),
    pytest.param("Kyiv, Minsk, Moscow", 14, "Kyiv, Minsk…", id="trailing-comma-dropped"),
]


@pytest.mark.parametrize(("raw", "limit", "expected"), SHORTEN_CASES)
def test_shorten(raw, limit, expected):
    assert shorten(raw, limit) == expected


def test_shorten_100kb_at_word_boundary():
    out = shorten("word " * 20_000, 300)
    assert len(out) <= 300
    assert out.endswith("word…")


@pytest.mark.parametrize("fmt", sorted(ESCAPERS))
@pytest.mark.parametrize("char", ["&", "<", ">", "@a", "*", '"'])
def test_cut_never_splits_an_escape(fmt, char):
    out = ESCAPERS[fmt].text(char * 5_000, 50)
    assert 0 < len(out) <= 50
    assert out.endswith("…")
    raw_prefixes = [(char * 50)[:count] for count in range(1, 50)]
    assert out[:-1] in [ESCAPERS[fmt].escape(raw) for raw in raw_prefixes], "cut inside an escape"


SAFE_URL_CASES = [
    pytest.param("https://reuters.com/a?b=1&c=2", "https://reuters.com/a?b=1&c=2", id="plain"),
    pytest.param("  HTTPS://Reuters.COM/Path  ", "https://reuters.com/Path", id="case-space"),
    pytest.param("javascript:alert(1)", None, id="javascript"),
    pytest.param("data:text/html,<script>x</script>", None, id="data"),
    pytest.param("ftp://files.example/x", None, id="ftp"),
    pytest.param("https:///no-host", None, id="no-host"),
    pytest.param("//evil.example/x", None, id="scheme-relative"),
    # userinfo hides the real host: https://bank.example@evil.example goes to evil.example.
    pytest.param("https://bank.example@evil.example/login", "https://evil.example/login",
                 id="userinfo-dropped"),
    pytest.param("http://пример.рф/путь", "http://xn--e1afmkfd.xn--p1ai/"
                 "%D0%BF%D1%83%D1%82%D1%8C", id="idn-punycode"),
    pytest.param('https://x.org/a b"<>|`', "https://x.org/a%20b%22%3C%3E%7C%60", id="quoted"),
    pytest.param("https://x.org/(a)", "https://x.org/%28a%29", id="parens"),
    pytest.param("https://x.org:8443/p", "https://x.org:8443/p", id="port"),
    pytest.param("https://x.org:99999/", None, id="bad-port"),
    pytest.param('https://evil.org"onmouseover="x/', None, id="attribute-breakout-host"),
    pytest.param("https://x.org/" + "a" * 600, None, id="too-long"),
    pytest.param("https://x.org/\u202eevil\x00", "https://x.org/evil", id="bidi-control"),
]


@pytest.mark.parametrize(("url", "expected"), SAFE_URL_CASES)
def test_safe_url(url, expected):
    assert safe_url(url) == expected


LINK_CASES = [
    pytest.param("slack", "<https://x.org/?a=1&amp;b=2|T &lt;b&gt;>", id="slack"),
    pytest.param("markdown", "[T &lt;b&gt;](https://x.org/?a=1&b=2)", id="markdown"),
    pytest.param("telegram", '<a href="https://x.org/?a=1&amp;b=2">T &lt;b&gt;</a>', id="telegram"),
    pytest.param("html", '<a href="https://x.org/?a=1&amp;b=2">T &lt;b&gt;</a>', id="html"),
    pytest.param("text", f"T <{Z}b> (https://x.org/?a=1&b=2)", id="text"),
]


@pytest.mark.parametrize(("fmt", "expected"), LINK_CASES)
def test_link_syntax_with_escaped_url_and_label(fmt, expected):
    assert ESCAPERS[fmt].link("https://x.org/?a=1&b=2", "T <b>") == expected


@pytest.mark.parametrize("fmt", sorted(ESCAPERS))
def test_unsafe_url_shows_the_label_only(fmt):
    assert ESCAPERS[fmt].link("javascript:alert(1)", "Title") == "Title"


def test_measure_counts_the_channels_units():
    assert measure("telegram", "😀ж") == 3  # UTF-16 code units
    assert measure("markdown", "ж") == 2  # UTF-8 bytes
    assert measure("slack", "😀ж") == 2  # characters


def test_unknown_format_is_named():
    with pytest.raises(ValueError, match="'discord' is not one of"):
        escaper_for("discord")

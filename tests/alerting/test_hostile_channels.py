"""Hostile feed text on every channel format (issue 8): the exact escaped form per format, and
the exact bytes a service posing on 127.0.0.1 receives through render, build_channels and Apprise.

Only the monitor's own links may be links: the story URL it shows on purpose and the claim's
source. Every hostile link below points at evil.example, so no service may receive
``://evil`` (a defanged ``hxxp[://]evil[.]example`` is text, not a link).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from apprise.plugins.discord import NotifyDiscord
from apprise.plugins.slack import NotifySlack
from apprise.plugins.telegram import NotifyTelegram
from apprise.plugins.zulip import NotifyZulip

from monitor.alerting.channels import build_channels
from monitor.alerting.escape import ESCAPERS
from monitor.alerting.render import AlertGroup, channel_for_url, render
from monitor.config.claims import ClaimConfig
from monitor.model import Evidence, Item, Match
from tests.support.receivers import SmtpReceiver, WebhookReceiver

TEMPLATES = Path(__file__).resolve().parents[2] / "alerts" / "templates"
Z = "\u200b"  # the zero-width space the escapers insert

CASES = [  # (raw feed text, {format: exact escaped one-line form})
    # Slack and Mattermost broadcast mentions, Slack user/channel mentions, Discord <#channel>.
    pytest.param("@channel @here <!channel> <!here> <@U1> <#C1>", {
        "slack": f"@{Z}channel @{Z}here &lt;!channel&gt; &lt;!here&gt; &lt;@{Z}U1&gt; &lt;#C1&gt;",
        "markdown": f"@{Z}channel @{Z}here &lt;!channel&gt; &lt;!here&gt; &lt;@{Z}U1&gt; "
                    r"&lt;\#C1&gt;",
        "telegram": f"@{Z}channel @{Z}here &lt;!channel&gt; &lt;!here&gt; &lt;@{Z}U1&gt; "
                    "&lt;#C1&gt;",
        "html": "@channel @here &lt;!channel&gt; &lt;!here&gt; &lt;@U1&gt; &lt;#C1&gt;",
        "text": f"@{Z}channel @{Z}here <{Z}!channel> <{Z}!here> <{Z}@{Z}U1> <{Z}#C1>",
        "json": "@channel @here <!channel> <!here> <@U1> <#C1>"}, id="mentions"),
    # The issue-8 report: a Markdown link in a title reached Mattermost raw.
    pytest.param("[click me](http://evil.example/login)", {
        "slack": "[click me](hxxp[://]evil[.]example/login)",
        "markdown": r"\[click me\](hxxp\[://\]evil\[.\]example/login)",
        "telegram": "[click me](hxxp[://]evil[.]example/login)",
        "html": "[click me](hxxp[://]evil[.]example/login)",
        "text": f"[click me]{Z}(hxxp[://]evil[.]example/login)",
        "json": "[click me](http://evil.example/login)"}, id="markdown-link"),
    pytest.param("![x](http://evil.example/a.png)", {
        "slack": "![x](hxxp[://]evil[.]example/a[.]png)",
        "markdown": r"!\[x\](hxxp\[://\]evil\[.\]example/a\[.\]png)",
        "telegram": "![x](hxxp[://]evil[.]example/a[.]png)",
        "html": "![x](hxxp[://]evil[.]example/a[.]png)",
        "text": f"![x]{Z}(hxxp[://]evil[.]example/a[.]png)",
        "json": "![x](http://evil.example/a.png)"}, id="markdown-image"),
    # CommonMark 0.31 §6.5 autolinks; Rocket.Chat also reads Slack's <url|label>.
    pytest.param("<http://evil.example> <https://evil.example|Reuters>", {
        "slack": "&lt;hxxp[://]evil[.]example&gt; &lt;hxxps[://]evil[.]example|Reuters&gt;",
        "markdown": r"&lt;hxxp\[://\]evil\[.\]example&gt; "
                    r"&lt;hxxps\[://\]evil\[.\]example\|Reuters&gt;",
        "telegram": "&lt;hxxp[://]evil[.]example&gt; &lt;hxxps[://]evil[.]example|Reuters&gt;",
        "html": "&lt;hxxp[://]evil[.]example&gt; &lt;hxxps[://]evil[.]example|Reuters&gt;",
        "text": f"<{Z}hxxp[://]evil[.]example> <{Z}hxxps[://]evil[.]example｜Reuters>",
        "json": "<http://evil.example> <https://evil.example|Reuters>"}, id="autolinks"),
    # Slack, Telegram, Teams, chat and mail clients link a bare scheme:// on their own.
    pytest.param("see https://evil.example/a?b=1 or tg://resolve?domain=x", {
        "slack": "see hxxps[://]evil[.]example/a?b=1 or tg[://]resolve?domain=x",
        "markdown": r"see hxxps\[://\]evil\[.\]example/a?b=1 or tg\[://\]resolve?domain=x",
        "telegram": "see hxxps[://]evil[.]example/a?b=1 or tg[://]resolve?domain=x",
        "html": "see hxxps[://]evil[.]example/a?b=1 or tg[://]resolve?domain=x",
        "text": "see hxxps[://]evil[.]example/a?b=1 or tg[://]resolve?domain=x",
        "json": "see https://evil.example/a?b=1 or tg://resolve?domain=x"}, id="bare-urls"),
    pytest.param('<a href="http://evil.example">x</a><script>alert(1)</script>', {
        "slack": '&lt;a href="hxxp[://]evil[.]example"&gt;x&lt;/a&gt;&lt;script&gt;alert(1)'
                 "&lt;/script&gt;",
        "markdown": r'&lt;a href="hxxp\[://\]evil\[.\]example"&gt;x&lt;/a&gt;&lt;script&gt;'
                    "alert(1)&lt;/script&gt;",
        "telegram": "&lt;a href=&quot;hxxp[://]evil[.]example&quot;&gt;x&lt;/a&gt;&lt;script&gt;"
                    "alert(1)&lt;/script&gt;",
        "html": "&lt;a href=&#34;hxxp[://]evil[.]example&#34;&gt;x&lt;/a&gt;&lt;script&gt;"
                "alert(1)&lt;/script&gt;",
        "text": f'<{Z}a href="hxxp[://]evil[.]example">x<{Z}/a><{Z}script>alert(1)<{Z}/script>',
        "json": '<a href="http://evil.example">x</a><script>alert(1)</script>'}, id="html"),
    # CRLF injection: a one-line field can never start a line of the message.
    pytest.param("Kyiv denies\r\n\r\n# Breaking\r\n> @here", {
        "slack": f"Kyiv denies # Breaking &gt; @{Z}here",
        "markdown": rf"Kyiv denies \# Breaking &gt; @{Z}here",
        "telegram": f"Kyiv denies # Breaking &gt; @{Z}here",
        "html": "Kyiv denies # Breaking &gt; @here",
        "text": f"Kyiv denies # Breaking > @{Z}here",
        "json": "Kyiv denies # Breaking > @here"}, id="crlf"),
    # Server-side template injection: printed, never evaluated.
    pytest.param("{{ 7*7 }} {% if 1 %}x{% endif %}", {
        "slack": "{{ 7＊7 }} {% if 1 %}x{% endif %}",
        "markdown": r"{{ 7\*7 }} {% if 1 %}x{% endif %}",
        "telegram": "{{ 7*7 }} {% if 1 %}x{% endif %}",
        "html": "{{ 7*7 }} {% if 1 %}x{% endif %}",
        "text": "{{ 7＊7 }} {% if 1 %}x{% endif %}",
        "json": "{{ 7*7 }} {% if 1 %}x{% endif %}"}, id="jinja"),
    # Trojan Source (CVE-2021-42574) bidi overrides and isolates.
    pytest.param("Kyiv \u202edenies\u202c \u2066x\u2069", {
        fmt: "Kyiv denies x" for fmt in ESCAPERS}, id="bidi"),
    # A zero-width space of the feed's own must not survive to pose as our mention breaker.
    pytest.param("@\u200bhere [x]\u200b(http://evil.example) cl\u200dick", {
        "slack": f"@{Z}here [x](hxxp[://]evil[.]example) click",
        "markdown": rf"@{Z}here \[x\](hxxp\[://\]evil\[.\]example) click",
        "telegram": f"@{Z}here [x](hxxp[://]evil[.]example) click",
        "html": "@here [x](hxxp[://]evil[.]example) click",
        "text": f"@{Z}here [x]{Z}(hxxp[://]evil[.]example) click",
        "json": "@here [x](http://evil.example) click"}, id="zero-width"),
    # Discord spoilers, Mattermost ~channel links; intraword _ is emphasis in no flavour.
    pytest.param("*b* _i_ snake_case ~~s~~ ~town-square `c` ||spoiler||", {
        "slack": "＊b＊ ＿i＿ snake＿case ～～s～～ ～town-square ｀c｀ ||spoiler||",
        "markdown": r"\*b\* \_i\_ snake\_case \~\~s\~\~ \~town-square \`c\` \|\|spoiler\|\|",
        "telegram": "*b* _i_ snake_case ~~s~~ ~town-square `c` ||spoiler||",
        "html": "*b* _i_ snake_case ~~s~~ ~town-square `c` ||spoiler||",
        "text": "＊b＊ ＿i＿ snake_case ～～s～～ ～town-square ｀c｀ ｜｜spoiler｜｜",
        "json": "*b* _i_ snake_case ~~s~~ ~town-square `c` ||spoiler||"}, id="emphasis"),
    # CommonMark reference links and definitions.
    pytest.param("[x][1] [1]: http://evil.example", {
        "slack": "[x][1] [1]: hxxp[://]evil[.]example",
        "markdown": r"\[x\]\[1\] \[1\]: hxxp\[://\]evil\[.\]example",
        "telegram": "[x][1] [1]: hxxp[://]evil[.]example",
        "html": "[x][1] [1]: hxxp[://]evil[.]example",
        "text": f"[x]{Z}[1] [1]{Z}: hxxp[://]evil[.]example",
        "json": "[x][1] [1]: http://evil.example"}, id="reference-link"),
    # Markdown-ish services decode entities: &#8238; would become a bidi override.
    pytest.param("&#8238; &amp; &lt;b&gt;", {
        "slack": "&amp;#8238; &amp;amp; &amp;lt;b&amp;gt;",
        "markdown": r"&amp;\#8238; &amp;amp; &amp;lt;b&amp;gt;",
        "telegram": "&amp;#8238; &amp;amp; &amp;lt;b&amp;gt;",
        "html": "&amp;#8238; &amp;amp; &amp;lt;b&amp;gt;",
        "text": f"&{Z}#8238; &{Z}amp; &{Z}lt;b&{Z}gt;",
        "json": "&#8238; &amp; &lt;b&gt;"}, id="entities"),
]


def _flatten() -> list[Any]:
    return [pytest.param(fmt, case.values[0], expected, id=f"{case.id}-{fmt}")
            for case in CASES for fmt, expected in case.values[1].items()]


@pytest.mark.parametrize(("fmt", "raw", "expected"), _flatten())
def test_every_format_neutralises_hostile_text_exactly(fmt: str, raw: str,
                                                       expected: str) -> None:
    assert str(ESCAPERS[fmt].text(raw)) == expected


def test_every_case_covers_every_format() -> None:
    assert all(set(case.values[1]) == set(ESCAPERS) for case in CASES)


def test_text_block_markers_at_line_start_are_broken() -> None:
    # A custom template may print multi-line text; Mattermost, Discord and Zulip would read
    # these as heading, quote, list and Discord subtext.
    raw = "# head\n> quote\n- item\n1. one\n  + two\n-# small"
    assert str(ESCAPERS["text"].text(raw, one_line=False)) == (
        f"{Z}# head\n{Z}> quote\n{Z}- item\n{Z}1. one\n  {Z}+ two\n{Z}-# small")


def test_text_own_link_cannot_carry_markup_in_its_path() -> None:
    # The story URL is ours to show but comes from the feed: a path ending ")[y](http://x"
    # would make Markdown-ish chat read a second link right after our autolink.
    link = ESCAPERS["text"].link("https://x.org/a)[y](http://evil.example/*!@", "T")
    assert link == "T (https://x.org/a%29%5By%5D%28http://evil.example/%2A%21%40)"
    assert ESCAPERS["text"].link("http://[::1]:8080/a(b)", "T") == (
        "T (http://[::1]:8080/a%28b%29)")


# ---- end to end: render, build_channels, Apprise, a service posing on 127.0.0.1 ----------

OWN_URL = "https://outlet.example/story?id=1&x=2"
TITLE = "[click me](http://evil.example/login) <@U1> @here"
SOURCE = "<!channel> [Reuters](www.evil.example)"  # no scheme: not defanged, must stay text
SUMMARY = ('![x](http://evil.example/a.png) <http://evil.example> see http://evil.example/bare '
           '<a href="http://evil.example">x</a>\r\n# {{ 7*7 }}')
CLAIM = ClaimConfig(id="surrender-terms", text="Lukashenko says generals asked him to mediate",
                    source_url="https://example.org/claim")
EVIL_TITLE = f"[click me]{Z}(hxxp[://]evil[.]example/login) <{Z}@{Z}U1> @{Z}here"
ENTITY_TITLE = f"[click me](hxxp[://]evil[.]example/login) &lt;@{Z}U1&gt; @{Z}here"
ANCHOR = f'<a href="https://outlet.example/story?id=1&amp;x=2">{ENTITY_TITLE}</a>'
TEXT_LINE = f"{EVIL_TITLE} (https://outlet.example/story?id=1&x=2)"


def hostile_match() -> Match:
    item = Item(item_id="item-1", feed_id="feed", source=SOURCE, url=OWN_URL, guid=None,
                title=TITLE, summary=SUMMARY, language="en",
                published_at=datetime(2026, 11, 21, 14, 1, tzinfo=UTC),
                fetched_at=datetime(2026, 11, 21, 15, 0, tzinfo=UTC), content_hash="h")
    evidence = Evidence(matched_terms=("Lukashenko",), compared_with="en",
                        relation_cue="denied", relation_confidence=0.82)
    return Match(match_id="match-1", claim_id=CLAIM.id, item=item, score=87.0,
                 relation="denial", evidence=evidence, matcher_version="test")


def _json_field(*path: str | int) -> Callable[[bytes], str]:
    def read(raw: bytes) -> str:
        value: Any = json.loads(raw)
        for key in path:
            value = value[key]
        return str(value)
    return read


def _form_field(name: str) -> Callable[[bytes], str]:
    return lambda raw: parse_qs(raw.decode())[name][0]


# (Apprise URL, the plugin attribute pointed at the receiver (for services with a fixed host),
#  what the receiver answers, how to read the message, the exact hostile line it must hold)
SERVICES = [
    pytest.param("mmost://127.0.0.1:{port}/token", None, b"{}", _json_field("text"),
                 TEXT_LINE, id="mattermost"),
    pytest.param("rocket://abc%2Fdef@127.0.0.1:{port}/%23desk", None, b"{}",
                 _json_field("text"), TEXT_LINE, id="rocketchat"),
    pytest.param("discord://111/token", (NotifyDiscord, "notify_url", "/api/webhooks"), b"{}",
                 _json_field("content"), TEXT_LINE, id="discord"),
    pytest.param("zulip://bot@org/" + "a" * 32, (NotifyZulip, "notify_url", "/api/v1/messages"),
                 b"{}", _form_field("content"), TEXT_LINE, id="zulip"),
    pytest.param("ntfy://127.0.0.1:{port}/desk", None, b"{}", _json_field("message"),
                 TEXT_LINE, id="ntfy"),
    pytest.param("gotify://127.0.0.1:{port}/token", None, b"{}", _json_field("message"),
                 TEXT_LINE, id="gotify"),
    pytest.param("slack://T1ABCD/B1ABCD/abcdefghijklmnop", (NotifySlack, "webhook_url", "/s"),
                 b"ok", _json_field("attachments", 0, "blocks", 1, "text", "text"),
                 f"<https://outlet.example/story?id=1&amp;x=2|{ENTITY_TITLE}>", id="slack"),
    pytest.param("tgram://123456789:abcdefg_hijklmnop/1234", (NotifyTelegram, "notify_url", "/bot"),
                 b'{"ok": true}', _json_field("text"), ANCHOR, id="telegram"),
    pytest.param("matrix://token@127.0.0.1:{port}/?mode=matrix", None, b"{}",
                 _json_field("text"), ANCHOR, id="matrix"),
    pytest.param("json://127.0.0.1:{port}/alerts", None, b"{}",
                 _json_field("entries", 0, "title"),
                 "[click me](http://evil.example/login) <@U1> @here", id="json-webhook"),
]


def _send(url: str) -> None:
    rendered = render(AlertGroup(claim=CLAIM, matches=(hostile_match(),)), channel_for_url(url),
                      template_dir=TEMPLATES)
    channels = build_channels(timeout_seconds=5.0)
    try:
        result = channels.send(rendered, url)
    finally:
        channels.close()
    assert result.ok, result.detail


OWN_LINKS = {"https://example.org/claim", "https://outlet.example/story?id=1&x=2"}
LINK_SYNTAX = {  # how a link target appears in what each kind of service receives
    "slack": r"<([^|>]+)\|", "telegram": r'<a href="([^"]*)"', "markdown": r'<a href="([^"]*)"',
    "text": r"(https?://[^\s)]+)"}


def _assert_only_own_links(message: str, fmt: str) -> None:
    if fmt == "json":  # not marked up: the consumer escapes (see escape.py)
        return
    assert "://evil" not in message.lower()
    targets = {t.replace("&amp;", "&") for t in re.findall(LINK_SYNTAX[fmt], message)}
    assert targets == OWN_LINKS
    assert re.search(r"[@<]here|<!channel|<@U1", message.replace(f"<{Z}", "")) is None


@pytest.mark.parametrize(("url", "patch", "answer", "read", "line"), SERVICES)
def test_hostile_match_reaches_each_service_inert(
        monkeypatch: pytest.MonkeyPatch, hook: WebhookReceiver, url: str,
        patch: tuple[type, str, str] | None, answer: bytes,
        read: Callable[[bytes], str], line: str) -> None:
    if patch is not None:  # a service with a fixed https host: point the plugin here
        plugin, attribute, path = patch
        monkeypatch.setattr(plugin, attribute, f"http://127.0.0.1:{hook.port}{path}")
    hook.answer_with(answer)
    url = url.format(port=hook.port)
    _send(url)
    (got,) = hook.wait_for(1)
    message = read(got.raw)
    assert line in message
    _assert_only_own_links(message, channel_for_url(url))


def test_hostile_match_reaches_email_inert(smtp: SmtpReceiver) -> None:
    _send(smtp.apprise_url())
    (mail,) = smtp.wait_for(1)
    html = mail.body("html")
    assert ANCHOR.replace(f"@{Z}", "@") in html  # e-mail has no mentions to defuse
    assert "://evil" not in html.lower()
    assert re.findall(r'href="([^"]*)"', html) == ["https://example.org/claim",
                                                   "https://outlet.example/story?id=1&amp;x=2"]


def test_mattermost_receives_exactly_this(hook: WebhookReceiver) -> None:
    # The whole message, byte for byte: Apprise puts the title first, then CRLF, then our body.
    _send(f"mmost://127.0.0.1:{hook.port}/token")
    (got,) = hook.wait_for(1)
    assert got.path == "/hooks/token"
    assert json.loads(got.raw)["text"] == (
        "🔴 DENIAL: surrender-terms — 1 outlet\r\n"
        "🔴 DENIAL (red) — wires report the claim is DENIED\n\n"
        "Claim surrender-terms: Lukashenko says generals asked him to mediate\n"
        "claim source (https://example.org/claim)\n\n"
        "1 outlet:\n\n"
        f"- <{Z}!channel> [Reuters]{Z}(www.evil.example) (en) · score 87 · "
        "2026-11-21 14:01 UTC\n"
        f"  [click me]{Z}(hxxp[://]evil[.]example/login) <{Z}@{Z}U1> @{Z}here "
        "(https://outlet.example/story?id=1&x=2)\n"
        f"  ![x]{Z}(hxxp[://]evil[.]example/a[.]png) <{Z}hxxp[://]evil[.]example> see "
        f'hxxp[://]evil[.]example/bare <{Z}a href="hxxp[://]evil[.]example">x<{Z}/a> '
        "# {{ 7＊7 }}\n"
        '  Why DENIAL: "denied" (confidence 0.82); matched Lukashenko')

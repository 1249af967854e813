"""Alert rendering: hostile feed text for every channel format, limits, relations, grouping."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from monitor.alerting.escape import BODY_LIMITS, measure
from monitor.alerting.render import AlertGroup, channel_for_url, render
from monitor.config.claims import ClaimConfig
from monitor.errors import InvalidInputError
from monitor.model import Evidence, Item, Match

TEMPLATES = Path(__file__).resolve().parents[2] / "alerts" / "templates"
FORMATS = ["slack", "markdown", "telegram", "html", "text", "json"]
MARKUP_FORMATS = [fmt for fmt in FORMATS if fmt != "json"]
Z = "\u200b"
CLAIM = ClaimConfig(id="lukashenko-generals-2022", speaker="Alexander Lukashenko",
                    text="Lukashenko says Ukrainian generals asked him in 2022 to mediate",
                    tags=("belarus",), source_url="https://example.org/claim")


def match(n: int = 1, *, title: str = "Kyiv denies Lukashenko claim", summary: str = "Summary.",
          source: str = "Reuters", relation: str = "denial", reprint_of: str | None = None,
          url: str | None = None, claim: ClaimConfig = CLAIM) -> Match:
    item = Item(item_id=f"item-{n}", feed_id="feed", source=source, guid=None, title=title,
                url=url or f"https://outlet{n}.example/story/{n}?a=1&b=2", summary=summary,
                language="en", published_at=datetime(2026, 11, 21, 14, n % 60, tzinfo=UTC),
                fetched_at=datetime(2026, 11, 21, 15, 0, tzinfo=UTC), content_hash="h")
    evidence = Evidence(matched_terms=("Lukashenko", "generals"), compared_with="en",
                        relation_cue="denied", relation_confidence=0.82, reprint_of=reprint_of)
    return Match(match_id=f"match-{n}", claim_id=claim.id, item=item, score=87.4,
                 relation=relation, evidence=evidence, matcher_version="test")


def rendered(fmt: str, *matches: Match, test: bool = False, claim: ClaimConfig = CLAIM,
             template: str | None = None, template_dir: Path = TEMPLATES):
    group = AlertGroup(claim=claim, matches=matches or (match(),), test=test)
    return render(group, fmt, template_dir=template_dir, template=template)


HOSTILE = [
    pytest.param("<!channel> <!here> <!everyone> Kyiv denies", id="slack-broadcast"),
    pytest.param("<@U123ABC> look at this", id="slack-user-mention"),
    pytest.param("@channel @here @everyone @all @room @durov", id="plain-mentions"),
    pytest.param("<https://evil.example|Official statement>", id="slack-link"),
    pytest.param("[Official](https://evil.example) ![i](https://evil.example/p.png)",
                 id="markdown-link"),
    pytest.param('</a><script>alert(1)</script><a href="https://evil.example">x</a>',
                 id="html-breakout"),
    pytest.param("*bold* _italic_ ~strike~ `code` ```block```", id="emphasis"),
    pytest.param("> quoted\n# heading\n- item\n1. one", id="line-start-markup"),
    # Telegram Bot API: MarkdownV2 reserves these 18 characters.
    pytest.param("_*[]()~`>#+-=|{}.!\\", id="telegram-specials"),
    pytest.param("&lt;b&gt; &amp; &#64;channel", id="entities"),
    pytest.param("Kyiv\x00\x07\x1b[31m denies\u202e\u2066evil\u2069\u200b\u200f\ufeff",
                 id="controls-bidi-zero-width"),
    pytest.param("word " * 20_000, id="100kB"),
]

LIVE = {  # what must never appear: a live mention, link or markup taken from the item
    "slack": [r"<!(channel|here|everyone)", r"<@U", r"@(channel|here|everyone|all)",
              r"<https://evil", r"\*bold\*", r"_italic_", r"`code`"],
    "markdown": [r"@(channel|here|everyone|all|room)", r"(?<!\\)\[Official(?<!\\)\]",
                 r"<script", r"<a ", r"(?<!\\)\*bold", r"(?<!\\)`code", r"\n\s*#"],
    "telegram": [r"@(channel|here|all|durov)", r"<script", r'href="https://evil'],
    "html": [r"<script", r'href="https://evil'],
    "text": [r"@(channel|here|everyone|all|room)", r"<!channel", r"<@U"],
    "json": [],
}


@pytest.mark.parametrize("title", HOSTILE)
@pytest.mark.parametrize("fmt", FORMATS)
def test_hostile_titles_and_summaries_render_inert(fmt, title):
    out = rendered(fmt, match(title=title, summary=title, source=title[:40]))
    for pattern in LIVE[fmt]:
        assert not re.search(pattern, out.body), pattern
    assert measure(fmt, out.body) <= BODY_LIMITS[fmt]
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069\u200e\u200f\ufeff]",
                         out.body)
    assert "\n" not in out.title and len(out.title) <= 250


EXACT = [  # the exact escaped form of a hostile title, per format
    pytest.param("slack", "<!channel>", "&lt;!channel&gt;", id="slack-broadcast"),
    pytest.param("slack", "<https://evil.example|x>", "&lt;hxxps[://]evil[.]example|x&gt;",
                 id="slack-link"),
    pytest.param("slack", "@here *b*", f"@{Z}here ＊b＊", id="slack-mention-bold"),
    pytest.param("markdown", "[x](https://evil.example)",
                 r"\[x\](hxxps\[://\]evil\[.\]example)",
                 id="md-link"),
    pytest.param("markdown", "@all <b>", f"@{Z}all &lt;b&gt;", id="md-mention-html"),
    pytest.param("telegram", "<b>@all</b> _x_", f"&lt;b&gt;@{Z}all&lt;/b&gt; _x_", id="tg"),
    pytest.param("html", "</a><script>", "&lt;/a&gt;&lt;script&gt;", id="html"),
    pytest.param("text", "<!channel> @here", f"<{Z}!channel> @{Z}here", id="text"),
    pytest.param("json", "<!channel>\u202e", "<!channel>", id="json-cleaned-not-marked-up"),
]


@pytest.mark.parametrize(("fmt", "title", "expected"), EXACT)
def test_exact_escaped_form_in_body(fmt, title, expected):
    body = rendered(fmt, match(title=title)).body
    if fmt == "json":
        body = json.loads(body)["entries"][0]["title"]
    assert expected in body


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.hrefs += [value or "" for name, value in attrs if name == "href"]


@pytest.mark.parametrize(("fmt", "allowed"), [
    pytest.param("telegram", {"b", "i", "a"}, id="telegram-html-subset"),
    pytest.param("html", {"html", "body", "p", "b", "div", "h2", "h3", "ul", "li", "br", "a",
                          "i", "span"}, id="html-email"),
])
@pytest.mark.parametrize("title", HOSTILE[3:6])
def test_only_our_tags_and_links(fmt, allowed, title):
    parser = _Tags()
    parser.feed(rendered(fmt, match(title=title, summary=title)).body)
    assert parser.tags <= allowed
    assert all(href.startswith(("https://outlet1.example/", "https://example.org/"))
               for href in parser.hrefs)


@pytest.mark.parametrize("fmt", FORMATS)
def test_huge_everything_stays_under_the_channel_limit(fmt):
    huge = "Пресс-служба & <опровергла> " * 4_000
    claim = CLAIM.model_copy(update={"text": huge[:2000], "speaker": huge})
    matches = [match(n, title=huge, summary=huge, source=huge[:300], url="https://x.example/"
                     + "a&" * 240, claim=claim) for n in range(1, 61)]
    matches += [match(100 + n, source=f"Reprinter {n}", reprint_of="item-1") for n in range(9)]
    out = rendered(fmt, *matches, claim=claim)
    assert measure(fmt, out.body) <= BODY_LIMITS[fmt]
    assert "69 items from 10 outlets" in out.title  # 60 of one (huge) source, 9 reprinters
    if fmt != "json":
        assert "more not shown" in out.body
    else:
        assert json.loads(out.body)["omitted"] > 0


STYLES = {"denial": "DENIAL", "corroboration": "CORROBORATION", "follow-up": "FOLLOW-UP"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_relations_render_clearly_differently(fmt):
    bodies = {relation: rendered(fmt, match(relation=relation)) for relation in STYLES}
    for relation, out in bodies.items():
        assert STYLES[relation] in out.title
        assert STYLES[relation] in out.body
        for other, label in STYLES.items():
            if other != relation:
                assert label not in out.body
    assert len({out.body.splitlines()[0] for out in bodies.values()}) == 3 or fmt == "html"
    assert [out.title[0] for out in bodies.values()] == ["🔴", "🟢", "🔵"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_three_outlets_are_all_listed(fmt):
    out = rendered(fmt, match(1, source="Reuters"), match(2, source="TASS"),
                   match(3, source="BelTA"))
    for source in ("Reuters", "TASS", "BelTA"):
        assert source in out.body
    for n in (1, 2, 3):
        assert f"outlet{n}.example/story/{n}" in out.body
    assert "3 outlets" in out.title


@pytest.mark.parametrize("fmt", MARKUP_FORMATS)
def test_reprints_are_shown_under_the_first_carrier(fmt):
    out = rendered(fmt, match(1, source="Reuters"), match(2, source="TASS", reprint_of="item-1"),
                   match(3, source="BelTA", reprint_of="item-2"))
    reuters, also = out.body.index("Reuters"), out.body.index("Also carried by")
    assert reuters < also < out.body.index("TASS") < out.body.index("BelTA")


def test_reprints_in_json_are_structured():
    body = json.loads(rendered("json", match(1), match(2, source="TASS", reprint_of="item-1")).body)
    (entry,) = body["entries"]
    assert entry["reprints"] == [{"source": "TASS", "url": "https://outlet2.example/story/2?a=1&b=2",
                                  "match_id": "match-2"}]
    assert entry["score"] == 87.0 and entry["confidence"] == 0.82


@pytest.mark.parametrize("fmt", FORMATS)
def test_test_alert_is_marked_in_title_and_body(fmt):
    out = rendered(fmt, match(), test=True)
    assert out.title.startswith("[TEST]")
    assert ("TEST ALERT" in out.body) if fmt != "json" else json.loads(out.body)["test"]
    assert "TEST" not in rendered(fmt, match()).title


@pytest.mark.parametrize("fmt", MARKUP_FORMATS)
def test_message_carries_what_an_editor_needs(fmt):
    body = rendered(fmt, match()).body
    for needed in ("lukashenko-generals-2022", "Alexander Lukashenko", "Lukashenko says",
                   "Reuters", "Kyiv denies", "87", "2026-11-21 14:01 UTC", "(en)", "denied",
                   "0.82", "generals"):
        assert needed in body, needed


def test_mixed_group_is_headed_by_the_denial_and_shows_each_relation():
    out = rendered("text", match(1, relation="follow-up"), match(2, relation="denial"))
    assert "DENIAL" in out.title
    assert "FOLLOW-UP" in out.body


def test_receiver_template_overrides_and_falls_back(tmp_path):
    for path in TEMPLATES.glob("*.j2"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "desk.text.j2").write_text("DESK {{ label }} {{ entries[0].title }} {{ '<@U1>' }}")
    assert rendered("text", match(title="@here"), template="desk", template_dir=tmp_path).body \
        == f"DESK DENIAL @{Z}here <{Z}@{Z}U1>"  # a literal printed by the template is escaped too
    assert rendered("slack", template="desk", template_dir=tmp_path).body.startswith("🔴 *DENIAL*")
    with pytest.raises(ValueError, match="not a plain file name"):
        rendered("text", template="../secrets", template_dir=tmp_path)


def test_unknown_relation_is_invalid_input():
    with pytest.raises(InvalidInputError, match="match-1 has unknown relation 'rumour'"):
        rendered("text", match(relation="rumour"))


def test_unsafe_story_url_is_not_linked():
    body = rendered("html", match(url="javascript:alert(1)")).body
    assert "javascript" not in body


CHANNELS = [
    pytest.param("slack://T1/B1/C1", "slack", id="slack"),
    pytest.param("workflows://prod.westeurope.logic.azure.com/wf/sig", "text",
                 id="teams-workflows"),
    pytest.param("tgram://bot/chat", "telegram", id="telegram"),
    pytest.param("mailto://user:pass@example.org", "html", id="mailto"),
    pytest.param("mailtos://user:pass@example.org", "html", id="mailtos"),
    pytest.param("json://127.0.0.1:8080/hook", "json", id="json"),
    pytest.param("jsons://hooks.example/x", "json", id="jsons"),
    pytest.param("matrix://user:pass@host/#room", "markdown", id="matrix"),
    pytest.param("matrixs://host/#room", "markdown", id="matrixs"),
    pytest.param("SLACK://T1/B1/C1", "slack", id="scheme-case"),
    pytest.param("discord://id/token", "text", id="other"),
    pytest.param("not a url", "text", id="garbage"),
]


@pytest.mark.parametrize(("url", "expected"), CHANNELS)
def test_channel_for_url(url, expected):
    assert channel_for_url(url) == expected


@pytest.mark.parametrize("fmt", MARKUP_FORMATS)
def test_outlets_are_counted_once_and_a_mixed_group_says_what_it_holds(fmt):
    # Seen on real feeds: "DENIAL — 6 outlets" over six items of one outlet, four follow-ups.
    relations = ["denial", "follow-up", "denial", "follow-up", "follow-up", "follow-up"]
    matches = [match(n, source="RIA Novosti" if n % 2 else "ria novosti", relation=relation)
               for n, relation in enumerate(relations, 1)]
    out = rendered(fmt, *matches)
    assert out.title.endswith("DENIAL: lukashenko-generals-2022 — "
                              "6 items from 1 outlet: 2 denials, 4 follow-ups")
    assert "6 items from 1 outlet: 2 denials, 4 follow-ups" in out.body


def test_one_item_an_outlet_keeps_the_short_tally():
    out = rendered("text", match(1, source="Reuters"), match(2, source="TASS"))
    assert out.title.endswith("— 2 outlets") and "\n2 outlets:" in out.body


@pytest.mark.parametrize("fmt", MARKUP_FORMATS)
def test_evidence_quote_speaker_meaning_and_uncertainty_are_shown(fmt):
    """Issue 9: evidence an editor can check: the cue quoted in its context, who speaks, how
    close the meaning is, and whether the relation is only a follow-up for want of certainty."""
    sure = replace(match(), evidence=replace(match().evidence, quote="Kyiv denied the claim",
                                             speaker="Kyiv", meaning=0.8712))
    body = rendered(fmt, sure).body
    for needed in ("Kyiv denied the claim", "speaker: Kyiv", "0.87"):
        assert needed in body, needed
    assert "Uncertain" not in body
    unsure = replace(match(relation="follow-up"),
                     evidence=replace(match().evidence, uncertain=True))
    assert "Uncertain" in rendered(fmt, unsure).body


@pytest.mark.parametrize("fmt", MARKUP_FORMATS)
@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_quote_or_speaker_renders_inert(fmt, hostile):
    bad = replace(match(), evidence=replace(match().evidence, quote=hostile, speaker=hostile))
    body = rendered(fmt, bad).body
    for dangerous in ("<script>", "<!channel>", "](https://evil", "<https://evil"):
        assert dangerous not in body


def test_json_carries_the_evidence_as_data():
    sure = replace(match(), evidence=replace(match().evidence, quote="Kyiv denied it",
                                             speaker="Kyiv", meaning=0.9, uncertain=False))
    entry = json.loads(rendered("json", sure).body)["entries"][0]
    assert entry["quote"] == "Kyiv denied it"
    assert entry["speaker"] == "Kyiv"
    assert entry["meaning"] == 0.9
    assert entry["uncertain"] is False

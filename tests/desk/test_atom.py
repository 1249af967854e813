"""A claim's Atom feed: valid Atom (RFC 4287's RELAX NG schema, Appendix B, and the two
Schematron rules beside it), one entry per linked item, stable ids, hostile text inert."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from monitor.desk.view import MemoryDeskView
from tests.desk.factory import at
from tests.desk.webdesk import HOSTILE_TITLE, MARKDOWN_TITLE, desk_app, desk_matches, linked

RNG = Path(__file__).with_name("atom.rng")  # RFC 4287 Appendix B; its source noted inside
ATOM = "{http://www.w3.org/2005/Atom}"


def feed_of(view: MemoryDeskView | None = None, claim_id: str = "generals-2022") -> bytes:
    answer = desk_app(view=view, public_url="https://desk.example.org").test_client().get(
        f"/claims/{claim_id}.atom")
    assert answer.status_code == 200
    assert answer.mimetype == "application/atom+xml"
    return answer.get_data()


def assert_valid_atom(document: bytes) -> etree._Element:
    root = etree.fromstring(document)
    schema = etree.RelaxNG(etree.parse(str(RNG)))
    assert schema.validate(root), schema.error_log
    # The Schematron rules RELAX NG leaves to annotations (RFC 4287 4.1.1, 4.1.2).
    entries = root.findall(f"{ATOM}entry")
    assert root.find(f"{ATOM}author") is not None or all(
        e.find(f"{ATOM}author") is not None for e in entries)
    for entry in entries:
        links = entry.findall(f"{ATOM}link")
        assert any(link.get("rel", "alternate") == "alternate" for link in links) or \
            entry.find(f"{ATOM}content") is not None
    return root


@pytest.mark.parametrize("claim_id", ["generals-2022", "quiet-claim", "grain-deal"])
def test_the_feed_is_valid_atom(claim_id: str) -> None:
    assert_valid_atom(feed_of(claim_id=claim_id))


def test_the_schema_catches_what_is_not_atom() -> None:
    schema = etree.RelaxNG(etree.parse(str(RNG)))
    no_id = (b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
             b'<updated>2026-11-25T12:00:00Z</updated></feed>')
    bad_date = no_id.replace(b"<title>", b"<id>urn:x</id><title>").replace(
        b"2026-11-25T12:00:00Z", b"25 Nov 2026")
    assert not schema.validate(etree.fromstring(no_id))
    assert not schema.validate(etree.fromstring(bad_date))


def test_feedparser_reads_one_entry_per_linked_item() -> None:
    parsed = feedparser.parse(feed_of())
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert len(parsed.entries) == 6  # 4 news carriers + 1 reprint + 1 background item
    newest = parsed.entries[0]
    assert newest.title == "Undated wire" and newest.author == "Interfax"
    by_title = {entry.title: entry for entry in parsed.entries}
    denial = by_title[HOSTILE_TITLE]  # literal text, as the wire sent it
    assert [tag.term for tag in denial.tags] == ["denial"]
    assert denial.link == "https://tass.example/a"
    assert denial.published == "2026-11-21T09:00:00Z" and "published" not in newest
    assert "that never happened" in denial.summary and "(Peskov)" in denial.summary
    assert "reprint of TASS" in by_title[MARKDOWN_TITLE].summary
    assert [tag.term for tag in by_title["Old story"].tags] == ["follow-up", "background"]
    assert parsed.feed.link == "https://desk.example.org/claims/generals-2022"


def test_a_link_that_is_not_http_points_at_the_claim_page_instead() -> None:
    parsed = feedparser.parse(feed_of())
    by_title = {entry.title: entry for entry in parsed.entries}
    assert by_title["Minsk repeats it"].link == \
        "https://desk.example.org/claims/generals-2022#item-c"  # was javascript:
    assert by_title["Generals confirm the talks"].link.endswith("#item-d")  # was data:
    assert b"javascript:" not in feed_of() and b"data:text" not in feed_of()


def test_hostile_text_is_escaped_xml() -> None:
    document = feed_of()
    assert HOSTILE_TITLE.encode() not in document
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in document
    control = linked("ctl", title="bell\x07 and \x00nul \ufffe", published=at(26))
    document = feed_of(MemoryDeskView([*desk_matches(), control]))
    assert_valid_atom(document)
    assert "bell and nul" in {e.title.strip() for e in feedparser.parse(document).entries}


def test_ids_stay_while_updated_follows_a_new_version() -> None:
    first = feedparser.parse(feed_of())
    again = feedparser.parse(feed_of())
    assert [e.id for e in first.entries] == [e.id for e in again.entries]
    assert len({e.id for e in first.entries}) == 6
    original = desk_matches()[0]
    reissued = replace(original, match_id="a-v2",
                       item=replace(original.item, title="Denied, updated",
                                    fetched_at=datetime(2026, 11, 27, tzinfo=UTC)))
    later = feedparser.parse(feed_of(MemoryDeskView([*desk_matches(), reissued])))
    old_entry = next(e for e in first.entries if e.title == HOSTILE_TITLE)
    new_entry = next(e for e in later.entries if e.title == "Denied, updated")
    assert new_entry.id == old_entry.id and len(later.entries) == 6
    assert new_entry.updated == "2026-11-27T00:00:00Z" != old_entry.updated
    assert later.feed.updated == "2026-11-27T00:00:00Z"


def test_a_feed_with_nothing_linked_is_dated_when_the_claim_was_made() -> None:
    parsed = feedparser.parse(feed_of(claim_id="quiet-claim"))
    assert not parsed.bozo and parsed.entries == []
    assert parsed.feed.updated == "2026-11-01T00:00:00Z"

"""The desk's pages and API through Flask's test client: every route, the filters, ``since``,
unknown claims, the headers, and hostile feed text left inert."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from monitor.desk.view import MemoryDeskView
from monitor.errors import StoreError
from tests.desk.webdesk import (
    CLAIMS,
    DATA_LINK,
    GENERALS,
    HOSTILE_TITLE,
    MARKDOWN_TITLE,
    SCRIPT_LINK,
    desk_app,
    desk_matches,
)

ROUTES = ["/", "/claims/generals-2022", "/claims/generals-2022.atom", "/api/claims",
          "/api/claims/generals-2022", "/api/claims/generals-2022/items", "/api/schema.json",
          "/claims/no-such-claim", "/api/claims/no-such-claim"]


@pytest.fixture
def app() -> Flask:
    return desk_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def listed(client: FlaskClient, query: str = "") -> list[str]:
    return [claim["id"] for claim in client.get(f"/api/claims{query}").get_json()["claims"]]


def shown_on_page(client: FlaskClient, query: str = "") -> list[str]:
    page = client.get(f"/{query}").get_data(as_text=True)
    return re.findall(r'<div class="id">([a-z0-9-]+)', page)


def test_the_list_shows_every_claim_with_its_activity_and_the_quiet_ones_last(
        client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    # generals-2022's undated item counts from when it was seen (the 25th): after Zapad's 24th
    assert shown_on_page(client) == ["generals-2022", "zapad-exercises", "grain-deal",
                                     "quiet-claim"]
    assert "nothing linked yet" in page and "retired" in page
    assert '<span class="tag">ukraine-war</span>' in page
    assert "4 of 4 claims" in page
    claims = {claim["id"]: claim for claim in client.get("/api/claims").get_json()["claims"]}
    generals = claims[GENERALS.id]
    assert generals["by_relation"] == {"follow-up": 4, "denial": 1, "corroboration": 1}
    assert generals["items"] == 6 and generals["languages"] == ["en", "ru"]
    assert generals["last_activity"] == "2026-11-25T12:00:00Z"  # the undated item, when seen
    assert claims["quiet-claim"]["items"] == 0 and claims["quiet-claim"]["last_activity"] is None


@pytest.mark.parametrize(("query", "expected"), [
    pytest.param("?tag=belarus", ["generals-2022", "zapad-exercises", "quiet-claim"], id="tag"),
    pytest.param("?relation=denial", ["generals-2022", "grain-deal"], id="relation"),
    pytest.param("?relation=corroboration", ["generals-2022"], id="relation-other"),
    pytest.param("?language=be", ["zapad-exercises"], id="language"),
    pytest.param("?q=KHRENIN", ["zapad-exercises"], id="search-speaker-any-case"),
    pytest.param("?q=%D1%83%D1%87%D0%B5%D0%BD%D0%B8%D1%8F", ["zapad-exercises"],
                 id="search-translation-cyrillic"),
    pytest.param("?q=grain", ["grain-deal"], id="search-text"),
    pytest.param("?tag=belarus&relation=denial", ["generals-2022"], id="combined"),
    pytest.param("?tag=belarus&language=en&q=generals", ["generals-2022"], id="three"),
    pytest.param("?tag=nothing-tagged-so", [], id="none"),
    pytest.param("?tag=&relation=&language=&q=", ["generals-2022", "zapad-exercises",
                                                  "grain-deal", "quiet-claim"], id="empty"),
])
def test_filters_narrow_the_page_and_the_api_alike(client: FlaskClient, query: str,
                                                   expected: list[str]) -> None:
    assert listed(client, query) == expected
    assert shown_on_page(client, query) == expected


def test_the_form_keeps_what_was_chosen_and_offers_every_value(client: FlaskClient) -> None:
    page = client.get("/?tag=military&language=be&q=zapad").get_data(as_text=True)
    assert '<form class="filters" method="get" action="/">' in page
    assert '<option value="military" selected>' in page
    assert '<option value="be" selected>' in page
    assert 'name="q" value="zapad"' in page
    for relation in ("follow-up", "denial", "corroboration"):
        assert f'<option value="{relation}">' in page
    assert "1 of 4 claims" in page and "No claim matches" not in page
    assert "No claim matches these filters" in client.get("/?tag=x").get_data(as_text=True)


def test_a_wall_screen_can_ask_the_pages_to_reload_themselves(client: FlaskClient) -> None:
    page = client.get("/?refresh=60&tag=belarus").get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="60">' in page
    assert '<input type="hidden" name="refresh" value="60">' in page  # kept by the form
    assert 'href="/claims/generals-2022?refresh=60"' in page
    claim = client.get("/claims/generals-2022?refresh=60").get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="60">' in claim
    assert 'href="/?refresh=60"' in claim
    for asked in ("", "5", "86400", "-60", "6e1", "\u0666\u0660"):  # Arabic-Indic "60"
        page = client.get("/", query_string={"refresh": asked}).get_data(as_text=True)
        assert "http-equiv" not in page and "refresh=" not in page, asked


def test_a_claim_page_shows_its_record(client: FlaskClient) -> None:
    page = client.get("/claims/generals-2022").get_data(as_text=True)
    assert "Lukashenko says Ukrainian generals asked him" in page
    summary = page[page.index('<section class="summary">'):page.index("<h2>News")]
    assert "First report" in summary and "TASS" in summary
    assert "Latest corroboration" in summary and "Reuters" in summary
    assert re.search(r"<th>denial</th>.*?<td class=\"num denial\">1</td>", summary, re.S)
    news = page[page.index("<h2>News"):page.index("<h2>Background")]
    assert "(5 items)" in news
    assert "1 reprint</summary>" in news  # RIA's reprint folded under TASS
    assert news.index('id="item-a"') < news.index('id="item-b"') < news.index('id="item-c"')
    assert 'class="uncertain"' in news and "that never happened" in news and "Peskov" in news
    assert "~2026-11-25 12:00 UTC" in news  # undated: when the monitor saw it
    background = page[page.index("<h2>Background"):]
    assert "Old story" in background and "Old story" not in news
    assert '<a href="/claims/generals-2022.atom">Atom feed</a>' in page


def test_a_claim_with_nothing_linked_has_a_page(client: FlaskClient) -> None:
    page = client.get("/claims/quiet-claim").get_data(as_text=True)
    assert "Nothing linked to this claim yet." in page and "none yet" in page


@pytest.mark.parametrize("path", ["/claims/no-such-claim", "/claims/no-such-claim.atom",
                                  "/claims/<b>x</b>", "/nowhere"])
def test_an_unknown_claim_or_page_is_a_404_page(client: FlaskClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 404 and answer.mimetype == "text/html"
    assert "404 Not Found" in answer.get_data(as_text=True)
    assert "<b>x</b>" not in answer.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/api/claims/no-such-claim",
                                  "/api/claims/no-such-claim/items", "/api/nowhere"])
def test_an_unknown_claim_in_the_api_is_a_json_404(client: FlaskClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 404 and "error" in answer.get_json()


def test_the_record_in_json(client: FlaskClient) -> None:
    record = client.get("/api/claims/generals-2022").get_json()
    assert [e["item_id"] for e in record["news"]] == ["a", "c", "d", "undated"]
    assert [r["item_id"] for r in record["news"][0]["reprints"]] == ["b"]
    assert [e["item_id"] for e in record["background"]] == ["old"]
    assert record["first_report"]["item_id"] == "a"
    assert record["latest_denial"]["item_id"] == "a"
    assert record["latest_corroboration"]["item_id"] == "d"
    assert record["outlets"] == {"follow-up": 3, "denial": 1, "corroboration": 1}
    assert record["news"][0]["evidence"] == {"quote": "that never happened",
                                             "speaker": "Peskov", "cue": "denies"}


def test_items_are_flat_in_time_order_with_their_place_in_the_record(
        client: FlaskClient) -> None:
    items = client.get("/api/claims/generals-2022/items").get_json()["items"]
    assert [i["item_id"] for i in items] == ["old", "a", "b", "c", "d", "undated"]
    by_id = {i["item_id"]: i for i in items}
    assert by_id["b"]["reprint_of"] == "a" and by_id["a"]["reprint_of"] is None
    assert by_id["old"]["background"] and not by_id["a"]["background"]
    assert by_id["undated"]["dated"] is False


@pytest.mark.parametrize(("since", "count"), [
    pytest.param("2026-11-25T12:00:00Z", 6, id="inclusive"),
    pytest.param("2026-11-25T12:00:00.000001+00:00", 0, id="after-everything"),
    pytest.param("2026-11-25T15:00:00+03:00", 6, id="other-zone"),
    pytest.param("2026-11-25", 6, id="a-date-is-midnight-utc"),
    pytest.param("2026-11-25T12:00:01", 0, id="no-zone-is-utc"),
])
def test_since_keeps_what_the_monitor_saw_from_then_on(client: FlaskClient, since: str,
                                                        count: int) -> None:
    answer = client.get("/api/claims/generals-2022/items", query_string={"since": since})
    assert answer.status_code == 200
    assert len(answer.get_json()["items"]) == count
    assert answer.get_json()["since"] is not None


def test_since_counts_the_version_seen_not_the_publication() -> None:
    from dataclasses import replace
    from datetime import UTC, datetime

    late = desk_matches()[0]  # published on the 21st, fetched again on the 28th
    seen = datetime(2026, 11, 28, tzinfo=UTC)
    relinked = replace(late, match_id="again", item=replace(late.item, fetched_at=seen))
    client = desk_app(view=MemoryDeskView([*desk_matches(), relinked])).test_client()
    items = client.get("/api/claims/generals-2022/items?since=2026-11-27T00:00:00Z").get_json()
    assert [i["item_id"] for i in items["items"]] == ["a"]
    assert items["items"][0]["seen_at"] == "2026-11-28T00:00:00Z"


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01", "", "1700000000",
                                   "2026-11-25T12:00:00Zjunk"])
def test_a_bad_since_is_a_400_that_says_what_to_write(client: FlaskClient, since: str) -> None:
    answer = client.get("/api/claims/generals-2022/items", query_string={"since": since})
    assert answer.status_code == 400
    message = answer.get_json()["error"]
    assert message.startswith("since: ") and "ISO 8601" in message
    assert "2026-11-25T12:00:00Z" in message


@pytest.mark.parametrize("path", ROUTES + ["/static/desk.css"])
def test_every_answer_forbids_scripts_framing_sniffing_and_referrers(
        client: FlaskClient, path: str) -> None:
    headers = client.get(path).headers
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert "style-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("path", ["/", "/claims/generals-2022", "/claims/no-such-claim"])
def test_no_page_carries_script_or_inline_style(client: FlaskClient, path: str) -> None:
    page = client.get(path).get_data(as_text=True).lower()
    assert "<script" not in page and "style=" not in page and "<style" not in page
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", page)  # no event handler attribute


def test_hostile_feed_text_is_literal_text_and_no_link(client: FlaskClient) -> None:
    page = client.get("/claims/generals-2022").get_data(as_text=True)
    assert HOSTILE_TITLE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert MARKDOWN_TITLE in page and 'href="http://evil.example/' not in page
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert hrefs and all(h.startswith(("/", "https://")) for h in hrefs), hrefs
    assert "javascript:" not in " ".join(hrefs) and "data:" not in " ".join(hrefs)
    assert "javascript:alert(2)" in page  # shown as text beside the title
    assert "data:text/html,&lt;script&gt;" in page
    record = client.get("/api/claims/generals-2022").get_json()
    links = {e["item_id"]: e["link"] for e in record["news"]}
    assert links["c"] is None and links["d"] is None and links["a"] == "https://tass.example/a"
    assert SCRIPT_LINK and DATA_LINK


def test_a_view_busy_for_now_answers_503(client: FlaskClient) -> None:
    class BusyView(MemoryDeskView):
        def activity(self) -> dict:  # type: ignore[type-arg]
            raise StoreError("state file locked")

    busy = desk_app(view=BusyView()).test_client()
    for path, kind in (("/", "text/html"), ("/api/claims", "application/json")):
        answer = busy.get(path)
        assert answer.status_code == 503 and answer.mimetype == kind
        assert answer.headers["Retry-After"] == "5"


def test_links_in_json_and_atom_use_the_public_url() -> None:
    client = desk_app(public_url="https://desk.example.org/").test_client()
    claim = client.get("/api/claims/generals-2022").get_json()["claim"]
    assert claim["links"] == {
        "page": "https://desk.example.org/claims/generals-2022",
        "atom": "https://desk.example.org/claims/generals-2022.atom",
        "api": "https://desk.example.org/api/claims/generals-2022",
        "items": "https://desk.example.org/api/claims/generals-2022/items"}
    feed = client.get("/claims/generals-2022.atom").get_data(as_text=True)
    assert 'href="https://desk.example.org/claims/generals-2022.atom"' in feed


def test_only_get_is_served(client: FlaskClient) -> None:
    assert client.post("/api/claims").status_code == 405
    assert client.head("/api/claims").status_code == 200


def test_the_claims_are_asked_on_every_request() -> None:
    from monitor.desk.app import create_app
    from monitor.desk.auth import Access

    current = {c.id: c for c in CLAIMS[:1]}  # ClaimRegistry.current's shape: by id
    client = create_app(MemoryDeskView(desk_matches()), lambda: current, Access(),
                        None).test_client()
    assert listed(client) == ["generals-2022"]
    current.update({c.id: c for c in CLAIMS})
    assert len(listed(client)) == 4

"""Alerts link to the claim's desk page when MONITOR_HTTP__PUBLIC_URL is set (issue 11, part 2).

Unset, no format shows a link or an empty "Desk:" line. The claim id is quoted whole, so an id
that reached the alerter from a match record (claims.yaml validates its own) cannot add a path,
a query, a fragment or markup to the link.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.alerting.channels import build_channels
from monitor.alerting.core import AlertCore
from monitor.alerting.grouping import GroupKey, Notification
from monitor.alerting.messages import encode_payload
from monitor.alerting.render import AlertGroup, render
from monitor.alerting.stage import load_stage_config
from monitor.config.claims import ClaimConfig
from monitor.links import claim_page_url
from monitor.metrics import Metrics
from tests.alerting.test_render import CLAIM, TEMPLATES, match

PUBLIC = "https://desk.example.org"
PAGE = f"{PUBLIC}/claims/lukashenko-generals-2022"
TEMPLATE_FORMATS = ["slack", "markdown", "telegram", "html", "text"]


def body(fmt: str, public_url: str | None, claim: ClaimConfig = CLAIM) -> str:
    group = AlertGroup(claim=claim, matches=(match(claim=claim),))
    return render(group, fmt, template_dir=TEMPLATES, public_url=public_url).body


def test_claim_page_url_quotes_the_whole_id() -> None:
    assert claim_page_url(PUBLIC, "kupiansk-captured") == f"{PUBLIC}/claims/kupiansk-captured"
    assert claim_page_url(PUBLIC + "/", "a/b?c#d e") == f"{PUBLIC}/claims/a%2Fb%3Fc%23d%20e"


@pytest.mark.parametrize("fmt", TEMPLATE_FORMATS)
def test_every_format_links_to_the_claim_page_when_the_public_url_is_set(fmt: str) -> None:
    text = body(fmt, PUBLIC)
    assert PAGE in text
    assert "Desk:" in text


@pytest.mark.parametrize("fmt", TEMPLATE_FORMATS)
def test_without_a_public_url_there_is_no_link_and_no_empty_desk_line(fmt: str) -> None:
    text = body(fmt, None)
    assert "Desk" not in text
    assert "/claims/" not in text


def test_the_links_in_each_format_point_at_the_page() -> None:
    assert f"Desk: the claim's page ({PAGE})" in body("text", PUBLIC)
    assert f"**Desk:** [the claim's page]({PAGE})" in body("markdown", PUBLIC)
    assert f"*Desk:* <{PAGE}|the claim's page>" in body("slack", PUBLIC)
    assert f'<b>Desk:</b> <a href="{PAGE}">the claim' in body("telegram", PUBLIC)
    assert f'<b>Desk:</b> <a href="{PAGE}">' in body("html", PUBLIC)


def test_json_carries_the_page_url_only_when_set() -> None:
    group = AlertGroup(claim=CLAIM, matches=(match(),))
    with_url = json.loads(render(group, "json", template_dir=TEMPLATES, public_url=PUBLIC).body)
    without = json.loads(render(group, "json", template_dir=TEMPLATES).body)
    assert with_url["desk_url"] == PAGE
    assert without["desk_url"] == ""
    assert "desk_link" not in with_url


class _Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        self.hrefs += [value or "" for name, value in attrs if tag == "a" and name == "href"]


# An id that did not come through claims.yaml (a match record names the claim): the alerter
# renders a stand-in claim with it, so the link must hold whatever the id is.
HOSTILE_ID = '"><script>alert(1)</script>/../x?y=1#z) [a](https://evil.example)'


def test_a_hostile_claim_id_stays_inside_one_path_segment_of_the_link() -> None:
    claim = ClaimConfig.model_construct(id=HOSTILE_ID, text="A claim", tags=(), speaker=None,
                                        source_url=None)
    quoted = claim_page_url(PUBLIC, HOSTILE_ID)
    assert re.fullmatch(r"https://desk\.example\.org/claims/[A-Za-z0-9%._~-]+", quoted)

    parser = _Hrefs()
    parser.feed(body("html", PUBLIC, claim))
    assert parser.scripts == 0
    desk = [href for href in parser.hrefs if "/claims/" in href]
    assert desk == [quoted]

    markdown = body("markdown", PUBLIC, claim)
    assert f"[the claim's page]({quoted})" in markdown
    assert "](https://evil.example)" not in markdown
    text = body("text", PUBLIC, claim)
    assert f"({quoted})" in text


@dataclass(frozen=True)
class _Queued:
    id: str
    receiver: str
    payload: bytes
    attempts: int = 0


@pytest.mark.parametrize("public_url", [PUBLIC, None], ids=["set", "unset"])
def test_the_alert_core_renders_with_the_public_url_of_its_settings(
        tmp_path: Path, public_url: str | None) -> None:
    """MONITOR_HTTP__PUBLIC_URL reaches every message through load_stage_config, as the
    service, `monitor dlq replay` and `monitor test-alert` pass it."""
    routes = tmp_path / "routes.yaml"
    routes.write_text("receivers:\n  - name: desk\n    urls: ['json://127.0.0.1:9/hook']\n"
                      "route:\n  receiver: desk\n", encoding="utf-8")
    core = AlertCore(load_stage_config(routes, {}, public_url), lambda: {CLAIM.id: CLAIM},
                     build_channels(timeout_seconds=1.0), Metrics(CollectorRegistry()))
    key = GroupKey("desk", "", (("claim", CLAIM.id),))
    payload = encode_payload(Notification(key, "desk", (match(),), True))
    try:
        [(_, message)] = core.render(_Queued("n1", "desk", payload))
    finally:
        core.close()
    assert json.loads(message.body)["desk_url"] == (PAGE if public_url else "")

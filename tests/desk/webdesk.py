"""A small desk for the web tests: four claims, matches in three languages, hostile feed text."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from flask import Flask

from monitor.config.claims import ClaimConfig
from monitor.config.settings import DeskSettings, HttpSettings, Settings
from monitor.desk.app import create_app
from monitor.desk.auth import access_from
from monitor.desk.view import MemoryDeskView
from monitor.model import Match
from tests.desk.factory import CLAIM, at, match

HOSTILE_TITLE = "<script>alert(1)</script>"
MARKDOWN_TITLE = "[click](http://evil.example/)"
SCRIPT_LINK = "javascript:alert(2)"
DATA_LINK = "data:text/html,<script>alert(3)</script>"

EXERCISES = ClaimConfig(id="zapad-exercises", text="Minsk says Zapad exercises will be smaller",
                        speaker="Viktor Khrenin", tags=("belarus", "military"),
                        texts={"ru": "Минск заявил, что учения Запад будут меньше"})
GRAIN = ClaimConfig(id="grain-deal", text="Moscow says the grain deal is over for good",
                    tags=("ukraine-war", "trade"), status="retired")
QUIET = ClaimConfig(id="quiet-claim", text="A claim nothing has been linked to yet",
                    tags=("belarus",), made_at=date(2026, 11, 1))
GENERALS = CLAIM.model_copy(update={"tags": ("belarus", "ukraine-war"),
                                    "speaker": "Alexander Lukashenko"})
CLAIMS = (GENERALS, EXERCISES, GRAIN, QUIET)


def linked(item_id: str, *, language: str = "ru", link: str | None = None,
           claim_id: str = GENERALS.id, **given: object) -> Match:
    """factory.match with the item's language (and link) changed."""
    made = match(item_id, claim_id=claim_id, **given)
    item = replace(made.item, language=language,
                   url=link if link is not None else made.item.url)
    return replace(made, item=item)


def desk_matches() -> list[Match]:
    return [
        linked("a", outlet="TASS", relation="denial", published=at(21, 9), title=HOSTILE_TITLE,
               quote="that never happened"),
        linked("b", outlet="RIA", published=at(21, 10), reprint_of="a", title=MARKDOWN_TITLE),
        linked("c", outlet="BelTA", published=at(22), uncertain=True, title="Minsk repeats it",
               link=SCRIPT_LINK),
        linked("d", outlet="Reuters", relation="corroboration", published=at(23), language="en",
               title="Generals confirm the talks", link=DATA_LINK),
        linked("undated", outlet="Interfax", title="Undated wire"),
        linked("old", outlet="Reuters", published=at(2), title="Old story", language="en"),
        linked("z1", claim_id=EXERCISES.id, outlet="BelTA", published=at(24), language="be",
               title="Zapad drills scaled down"),
        linked("g1", claim_id=GRAIN.id, outlet="TASS", relation="denial", published=at(10),
               title="Grain deal talk denied"),
    ]


def settings(*, public_url: str | None = None, **desk: object) -> Settings:
    return Settings(desk=DeskSettings(**{"address": "127.0.0.1:0", **desk}),
                    http=HttpSettings(public_url=public_url))


def desk_app(*, view: MemoryDeskView | None = None, public_url: str | None = None,
             **desk: object) -> Flask:
    chosen = settings(public_url=public_url, **desk)
    return create_app(view or MemoryDeskView(desk_matches()), lambda: CLAIMS,
                      access_from(chosen.desk), chosen.http.public_url)

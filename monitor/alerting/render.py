"""Alert messages: one group of matches of one claim rendered for one channel format.

Templates: ``<relation>.<format>.j2``, or a receiver's own ``<name>.<format>.j2`` when it exists;
``json`` is the same information as a dict, serialized, with no template. The defaults ship in
the package (``monitor/alerting/templates/``); a file of the same name in the override folder
(``template_dir``: ``alerts/templates/`` beside routes.yaml) replaces one per file, so a missing
folder still renders. ``monitor check`` renders each template in use once (``template_check``).
Safe by default: every value a template gets is already escaped for the format (``Markup``); any
other value it prints is escaped on output (Jinja2 ``finalize``, autoescape for html/telegram),
in Jinja2's immutable sandbox. ``join``/``replace`` yield plain strings, escaped again: use the
pre-joined ``e.also``. Bodies stay under the channel limit by listing fewer outlets ("…and N
more"), then by a compact view. A mixed group is headed by its gravest relation.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, Template
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from monitor.alerting.escape import BODY_LIMITS, Escaper, escaper_for, measure, safe_url
from monitor.config.claims import ClaimConfig
from monitor.errors import InvalidInputError
from monitor.links import claim_page_url
from monitor.model import Match

TITLE_MAX_CHARS = 250
DEFAULT_TEMPLATES = Path(__file__).with_name("templates")  # package data (pyproject.toml)


@dataclass(frozen=True, slots=True)
class Style:
    label: str
    emoji: str
    colour: str  # the colour word and the HTML colour below agree
    html_colour: str


RELATIONS: dict[str, Style] = {  # gravest first: a mixed group is headed by the first present
    "denial": Style("DENIAL", "🔴", "red", "#c62828"),
    "corroboration": Style("CORROBORATION", "🟢", "green", "#2e7d32"),
    "follow-up": Style("FOLLOW-UP", "🔵", "blue", "#1565c0"),
}


@dataclass(frozen=True, slots=True)
class AlertGroup:
    """One message: the matches of one claim grouped within a window (1..n matches).

    ``test`` marks a ``monitor test-alert`` message, said plainly in title and body.
    """

    claim: ClaimConfig
    matches: tuple[Match, ...]
    test: bool = False

    def __post_init__(self) -> None:
        if not self.matches:
            raise ValueError(f"alert group for claim {self.claim.id!r} has no matches")


@dataclass(frozen=True, slots=True)
class Rendered:
    title: str  # plain text, one line, at most TITLE_MAX_CHARS
    body: str  # in the channel's markup
    format: str  # "slack" | "markdown" | "telegram" | "html" | "text" | "json"
    # Stable per message across retries and restarts: a receiver that honours it (a webhook
    # reading the Idempotency-Key header) can drop the repeat a crash after sending causes.
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Budget:
    """Most characters of escaped output per field; 0 drops the field."""

    claim: int
    speaker: int
    source: int
    title: int
    summary: int
    terms: int
    cue: int
    reprints: int  # how many "also carried by" outlets are listed
    reprint_links: bool


FULL = Budget(600, 120, 80, 300, 300, 200, 200, 5, True)
COMPACT = Budget(300, 60, 60, 200, 0, 120, 120, 3, False)


@dataclass(frozen=True, slots=True)
class Reprint:
    source: Markup
    url: Markup
    link: Markup
    match_id: str


@dataclass(frozen=True, slots=True)
class Entry:
    """One outlet as a template sees it: every text field escaped for the format."""

    relation: str
    label: str
    emoji: str
    source: Markup
    title: Markup
    link: Markup  # the title as a link to the story, or the title alone when its URL is unsafe
    url: Markup
    host: Markup
    language: Markup
    score: Markup
    published: Markup
    summary: Markup
    terms: Markup
    cue: Markup
    confidence: Markup
    quote: Markup  # the words that decided the relation, in context ("" when none)
    speaker: Markup  # who the item has speaking ("" when not found)
    meaning: Markup  # cosine of claim and item sentence vectors, "0.87" ("" without vectors)
    uncertain: bool  # a follow-up only because the model was not sure of more
    reprints: tuple[Reprint, ...]  # "also carried by"
    also: Markup  # their links (compact view: names) joined with ", "
    more_reprints: int
    reprint_elsewhere: bool  # a reprint of a story outside this message
    match_id: str


def channel_for_url(url: str) -> str:
    """The message format for an Apprise URL: slack, markdown, telegram, html, json or text."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    return _SCHEME_FORMATS.get(scheme, "text")


_SCHEME_FORMATS = {"slack": "slack", "tgram": "telegram",
                   "mailto": "html", "mailtos": "html", "json": "json", "jsons": "json",
                   "matrix": "markdown", "matrixs": "markdown"}


def render(group: AlertGroup, channel: str, *, template_dir: Path,
           template: str | None = None, public_url: str | None = None) -> Rendered:
    """Render ``group`` for the ``channel`` format; with ``public_url`` (where editors reach
    the claim desk) the message links to the claim's desk page.

    Raises ValueError for an unknown format or a bad template name, InvalidInputError for a
    match with an unknown relation, and Jinja2's TemplateError for a broken template.
    """
    esc = escaper_for(channel)
    relation = _lead_relation(group.matches)
    title = _title(group, relation)
    produce: Callable[..., str]
    if channel == "json":
        def produce(**view: Any) -> str:
            return json.dumps(_as_json(view, title), ensure_ascii=False)
    else:
        produce = select_template(template_dir, channel, relation, template).render
    desk = claim_page_url(public_url, group.claim.id) if public_url else None
    return Rendered(title, _fit(group, relation, esc, produce, desk), channel)


def _lead_relation(matches: tuple[Match, ...]) -> str:
    for match in matches:
        if match.relation not in RELATIONS:
            raise InvalidInputError(
                f"render: match {match.match_id} has unknown relation {match.relation!r}")
    present = {match.relation for match in matches}
    return next(name for name in RELATIONS if name in present)


def _title(group: AlertGroup, relation: str) -> str:
    style = RELATIONS[relation]
    prefix = "[TEST] " if group.test else ""  # every part is ours or a validated claim id
    return (f"{prefix}{style.emoji} {style.label}: {group.claim.id} — {tally(group.matches)}"
            [:TITLE_MAX_CHARS])


def outlet_count(matches: tuple[Match, ...]) -> int:
    """Distinct outlets: six items of one wire are one outlet, not six."""
    return len({match.item.source.casefold() for match in matches})


def tally(matches: tuple[Match, ...]) -> str:
    """'3 outlets', '6 items from 1 outlet', and what each relation counts when they differ:
    a group headed DENIAL says how many of its items are denials."""
    outlets, items = outlet_count(matches), len(matches)
    said = f"{outlets} outlet{'' if outlets == 1 else 's'}"
    if items != outlets:
        said = f"{items} items from {said}"
    counts = Counter(match.relation for match in matches)
    if len(counts) > 1:
        said += ": " + ", ".join(f"{counts[name]} {name}{'' if counts[name] == 1 else 's'}"
                                 for name in RELATIONS if counts[name])
    return said


def select_template(template_dir: Path, fmt: str, relation: str, name: str | None) -> Template:
    """The receiver's own template ``name`` when it exists, else the relation's; overrides in
    ``template_dir`` first, then the packaged defaults. Jinja2's TemplateError when the one
    chosen is missing or does not compile."""
    names = [f"{relation}.{fmt}.j2"]
    if name is not None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}", name) or ".." in name:
            raise ValueError(f"render: template name {name!r} is not a plain file name")
        names.insert(0, f"{name}.{fmt}.j2")
    return _environment(template_dir, fmt).select_template(names)


@lru_cache(maxsize=32)
def _environment(template_dir: Path, fmt: str) -> ImmutableSandboxedEnvironment:
    esc = escaper_for(fmt)

    def finalize(value: object) -> Markup:
        return value if isinstance(value, Markup) else esc.text(value, one_line=False)

    # Per file: an override of _base.<fmt>.j2 restyles the packaged relation templates too.
    loader = ChoiceLoader([FileSystemLoader(template_dir), FileSystemLoader(DEFAULT_TEMPLATES)])
    env = ImmutableSandboxedEnvironment(
        loader=loader, autoescape=fmt in ("html", "telegram"),
        finalize=finalize, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["link"] = esc.link  # {{ url|link(label) }} for custom templates
    return env


def _fit(group: AlertGroup, relation: str, esc: Escaper, produce: Callable[..., str],
         desk: str | None) -> str:
    """The body with as many outlets as fit under the limit, full view first, then compact."""
    limit, roots = BODY_LIMITS[esc.format], _carriers(group.matches)
    links = _desk_links(esc, desk)

    def body(budget: Budget, count: int) -> str:
        return produce(**_view(group, relation, esc, budget, roots[:count], roots), **links)

    for budget in (FULL, COMPACT):
        low, high, best = 0, len(roots), ""
        while low < high:  # binary search for the largest count that fits
            middle = (low + high + 1) // 2
            candidate = body(budget, middle)
            if measure(esc.format, candidate) <= limit:
                low, best = middle, candidate
            else:
                high = middle - 1
        if best:
            return best
    return body(COMPACT, 1)  # over the limit only with an oversized custom template


def _desk_links(esc: Escaper, desk: str | None) -> dict[str, Markup]:
    """``desk_link`` (the claim's desk page as a link) and ``desk_url``; both "" without a
    public URL, so templates print no empty line."""
    if desk is None:
        return {"desk_link": Markup(""), "desk_url": Markup("")}
    return {"desk_link": esc.link(desk, "the claim's page"),
            "desk_url": esc.text(safe_url(desk) or "")}


def _carriers(matches: tuple[Match, ...]) -> list[tuple[Match, list[Match]]]:
    """First carriers in order, each with the reprints of its story found in this group."""
    by_item = {match.item.item_id: match for match in matches}
    groups: dict[str, tuple[Match, list[Match]]] = {}
    for match in matches:
        root, seen = match, {match.item.item_id}
        while root.evidence.reprint_of in by_item and root.evidence.reprint_of not in seen:
            root = by_item[root.evidence.reprint_of]
            seen.add(root.item.item_id)
        entry = groups.setdefault(root.item.item_id, (root, []))
        if root is not match:
            entry[1].append(match)
    return list(groups.values())


def _view(group: AlertGroup, relation: str, esc: Escaper, budget: Budget,
          shown: list[tuple[Match, list[Match]]],
          roots: list[tuple[Match, list[Match]]]) -> dict[str, Any]:
    style, claim = RELATIONS[relation], group.claim
    entries = tuple(_entry(root, reprints, esc, budget) for root, reprints in shown)
    omitted = sum(1 + len(reprints) for _, reprints in roots[len(shown):])
    return {
        "relation": relation, "label": style.label, "emoji": style.emoji,
        "colour": style.colour, "html_colour": style.html_colour, "test": group.test,
        "claim_id": esc.text(claim.id, 80), "claim_text": esc.text(claim.text, budget.claim),
        "claim_speaker": esc.text(claim.speaker or "", budget.speaker),
        "claim_tags": esc.text(", ".join(claim.tags), 200), "tags": claim.tags,
        "claim_link": esc.link(claim.source_url, "claim source") if claim.source_url
        else Markup(""), "claim_url": esc.text(safe_url(claim.source_url) or ""),
        "entries": entries, "outlets": outlet_count(group.matches),
        "items": len(group.matches), "tally": tally(group.matches), "omitted": omitted,
        "mixed": len({match.relation for match in group.matches}) > 1,
    }


def _entry(match: Match, reprints: list[Match], esc: Escaper, budget: Budget) -> Entry:
    item, evidence, style = match.item, match.evidence, RELATIONS[match.relation]
    url = safe_url(item.url)
    listed = tuple(_reprint(other, esc, budget) for other in reprints[:budget.reprints])
    also = Markup(", ").join(r.link if budget.reprint_links else r.source for r in listed)
    moment = (item.published_at or item.fetched_at).astimezone(UTC)
    return Entry(
        relation=match.relation, label=style.label, emoji=style.emoji,
        source=esc.text(item.source, budget.source), title=esc.text(item.title, budget.title),
        link=esc.link(url, item.title, budget.title), url=esc.text(url or ""),
        host=esc.text(urlsplit(url).hostname or "" if url else ""),
        language=esc.text(item.language or "?", 12),
        score=Markup(f"{match.score:.0f}"),
        published=Markup(moment.strftime("%Y-%m-%d %H:%M UTC")),
        summary=esc.text(item.summary, budget.summary) if budget.summary else Markup(""),
        terms=esc.text(", ".join(evidence.matched_terms), budget.terms),
        cue=esc.text(evidence.relation_cue, budget.cue),
        confidence=Markup(f"{evidence.relation_confidence:.2f}"),
        quote=esc.text(evidence.quote, budget.cue), speaker=esc.text(evidence.speaker, 80),
        meaning=Markup("" if evidence.meaning is None else f"{evidence.meaning:.2f}"),
        uncertain=evidence.uncertain, reprints=listed,
        also=also, more_reprints=len(reprints) - len(listed),
        reprint_elsewhere=evidence.reprint_of is not None, match_id=match.match_id,
    )


def _reprint(match: Match, esc: Escaper, budget: Budget) -> Reprint:
    url = safe_url(match.item.url)
    return Reprint(source=esc.text(match.item.source, budget.source), url=esc.text(url or ""),
                   link=esc.link(url, match.item.source, budget.source), match_id=match.match_id)


def _as_json(view: dict[str, Any], title: str) -> dict[str, Any]:
    """The json format: the view as plain data (text cleaned and cut, not marked up)."""
    return {"title": title, **{key: _plain(value) for key, value in view.items()
                               if key not in _NOT_JSON}}


_NOT_JSON = frozenset({"link", "also", "claim_link", "desk_link", "html_colour"})


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return [_plain(part) for part in value]
    if isinstance(value, Entry | Reprint):
        plain = {f.name: _plain(getattr(value, f.name)) for f in fields(value)
                 if f.name not in _NOT_JSON}
        return plain | {key: float(str(plain[key])) for key in ("score", "confidence", "meaning")
                        if plain.get(key)}
    return str(value) if isinstance(value, Markup) else value

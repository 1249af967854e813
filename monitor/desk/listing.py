"""The list of claims: every configured claim with its activity, filtered as asked. Pure.

A claim is listed whether or not anything was linked to it. Filters narrow by a tag of the
claim, a relation or a language among its linked items, and a text search over what the
desk writes of the claim (id, text and translations, speaker, subject, tags); an empty
filter does not narrow. The most recently active claims come first, quiet ones after them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.config.claims import ClaimConfig
from monitor.desk.record import RELATIONS
from monitor.desk.shown import utc
from monitor.desk.view import ClaimActivity


@dataclass(frozen=True, slots=True)
class Filters:
    """What the reader asked for (the list page's form, the API's query parameters)."""

    tag: str = ""
    relation: str = ""
    language: str = ""
    text: str = ""

    @classmethod
    def from_query(cls, args: Mapping[str, str]) -> Filters:
        return cls(tag=args.get("tag", "").strip(), relation=args.get("relation", "").strip(),
                   language=args.get("language", "").strip(), text=args.get("q", "").strip())

    def as_query(self) -> dict[str, str]:
        return {name: value for name, value in (("tag", self.tag), ("relation", self.relation),
                ("language", self.language), ("q", self.text)) if value}


@dataclass(frozen=True, slots=True)
class Row:
    claim: ClaimConfig
    activity: ClaimActivity | None  # None: nothing linked yet

    @property
    def by_relation(self) -> Mapping[str, int]:
        return self.activity.by_relation if self.activity else {}

    @property
    def languages(self) -> list[str]:
        return sorted(self.activity.languages) if self.activity else []

    @property
    def last_activity(self) -> datetime | None:
        return self.activity.last_activity if self.activity else None

    @property
    def items(self) -> int:
        return self.activity.items if self.activity else 0


@dataclass(frozen=True, slots=True)
class Choices:
    """The values each filter can take, for the form's menus."""

    tags: list[str]
    relations: list[str]
    languages: list[str]


def rows(claims: Sequence[ClaimConfig], activity: Mapping[str, ClaimActivity],
         filters: Filters) -> list[Row]:
    """The claims that pass ``filters``, the most recently active first."""
    listed = [Row(claim, activity.get(claim.id)) for claim in claims]
    kept = [row for row in listed if _passes(row, filters)]
    return sorted(kept, key=_recent_first)


def choices(claims: Sequence[ClaimConfig], activity: Mapping[str, ClaimActivity]) -> Choices:
    seen = [activity[c.id] for c in claims if c.id in activity]
    relations = {relation for a in seen for relation in a.by_relation}
    return Choices(tags=sorted({tag for claim in claims for tag in claim.tags}),
                   relations=[*RELATIONS, *sorted(relations - set(RELATIONS))],
                   languages=sorted({language for a in seen for language in a.languages}))


def _passes(row: Row, filters: Filters) -> bool:
    return ((not filters.tag or filters.tag in row.claim.tags)
            and (not filters.relation or row.by_relation.get(filters.relation, 0) > 0)
            and (not filters.language or filters.language in row.languages)
            and (not filters.text or _mentions(row.claim, filters.text)))


def _mentions(claim: ClaimConfig, text: str) -> bool:
    wanted = text.casefold()
    written = (claim.id, claim.text, *claim.texts.values(), claim.speaker or "",
               claim.subject or "", *claim.tags)
    return any(wanted in field.casefold() for field in written)


def _recent_first(row: Row) -> tuple[bool, float, str]:
    moment = row.last_activity
    return moment is None, -utc(moment).timestamp() if moment else 0.0, row.claim.id

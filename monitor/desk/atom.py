"""A claim's record as an Atom feed (RFC 4287): one entry per linked item, newest first.

Rendered by Flask's Jinja environment with autoescape on (``templates/claim.atom.xml``), so
feed text is escaped as XML and stripped of what XML 1.0 cannot carry. An entry's id is a
name-based UUID of the claim and the item, so it stays the same across restarts, hosts and
new versions of the item; its ``updated`` is when the monitor fetched the version shown, so
a reader notices a re-issued story.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from urllib.parse import quote

from flask import render_template

from monitor.desk.record import ClaimRecord, Entry
from monitor.desk.shown import iso, safe_link, utc
from monitor.links import claim_page_url

# Names are hashed under this namespace: a feed or entry id is the same wherever it is served.
_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:claim-monitor:desk")
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class AtomEntry:
    entry: Entry
    id: str
    link: str
    updated: str
    published: str | None
    background: bool
    reprint_of: Entry | None


def atom_feed(record: ClaimRecord, seen: Mapping[str, datetime], base_url: str) -> str:
    page = claim_page_url(base_url, record.claim.id)
    entries = sorted(_entries(record, seen, page),
                     key=lambda e: (utc(e.entry.at), e.entry.match_id), reverse=True)
    updated = max((utc(seen[e.entry.match_id]) for e in entries), default=None)
    if updated is None and record.claim.made_at:
        updated = datetime.combine(record.claim.made_at, time(), UTC)
    return render_template(
        "claim.atom.xml", claim=record.claim, entries=entries, page=page,
        feed_id=_urn(f"claims/{record.claim.id}"), updated=iso(updated or _NEVER))


def _entries(record: ClaimRecord, seen: Mapping[str, datetime], page: str) -> list[AtomEntry]:
    found = []
    for section, background in ((record.news, False), (record.background, True)):
        for carrier in section:
            for entry in carrier.with_reprints():
                found.append(AtomEntry(
                    entry=entry, id=_urn(f"claims/{record.claim.id}/items/{entry.item_id}"),
                    link=safe_link(entry.link) or f"{page}#item-{quote(entry.item_id, safe='')}",
                    updated=iso(seen[entry.match_id]) or "",
                    published=iso(entry.at) if entry.dated else None, background=background,
                    reprint_of=None if entry is carrier else carrier))
    return found


def _urn(name: str) -> str:
    return uuid.uuid5(_IDS, name).urn

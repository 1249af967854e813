"""The JSON the desk's API answers with, as plain dicts. Pure.

``monitor/desk/schema/desk-api.schema.json`` describes every shape here; keep the two in
step (tests/desk/test_api_schema.py validates real answers against it). Times are RFC 3339
in UTC; a link that is not plainly http(s) is null, as the pages show it as text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from monitor.desk.listing import Row
from monitor.desk.record import RELATIONS, ClaimRecord, Entry
from monitor.desk.shown import iso, safe_link, utc
from monitor.links import claim_page_url
from monitor.model import Match

Json = dict[str, Any]


def claim_json(row: Row, base_url: str) -> Json:
    """A claim as the list shows it: what it says, its activity, where to read more."""
    claim, api = row.claim, f"{base_url.rstrip('/')}/api/claims/{quote(row.claim.id, safe='')}"
    page = claim_page_url(base_url, claim.id)
    return {
        "id": claim.id, "text": claim.text, "texts": dict(claim.texts),
        "speaker": claim.speaker, "subject": claim.subject,
        "made_at": claim.made_at.isoformat() if claim.made_at else None,
        "expires": claim.expires.isoformat() if claim.expires else None,
        "source_url": safe_link(claim.source_url), "status": claim.status,
        "tags": list(claim.tags), "items": row.items,
        "by_relation": {**dict.fromkeys(RELATIONS, 0), **row.by_relation},
        "languages": row.languages, "last_activity": iso(row.last_activity),
        "links": {"page": page, "atom": f"{page}.atom", "api": api, "items": f"{api}/items"},
    }


def seen_times(matches: Iterable[Match]) -> dict[str, datetime]:
    """match id -> when the monitor fetched that version of the item."""
    return {match.match_id: match.item.fetched_at for match in matches}


def entry_json(entry: Entry, seen: Mapping[str, datetime]) -> Json:
    """One linked item, without its reprints."""
    return {
        "match_id": entry.match_id, "item_id": entry.item_id, "at": iso(entry.at),
        "dated": entry.dated, "seen_at": iso(seen[entry.match_id]),
        "relation": entry.relation, "confidence": entry.confidence,
        "uncertain": entry.uncertain, "outlet": entry.outlet, "language": entry.language,
        "title": entry.title, "link": safe_link(entry.link), "score": entry.score,
        "evidence": {"quote": entry.quote, "speaker": entry.speaker, "cue": entry.cue},
    }


def record_json(row: Row, record: ClaimRecord, seen: Mapping[str, datetime],
                base_url: str) -> Json:
    def carriers(entries: tuple[Entry, ...]) -> list[Json]:
        return [{**entry_json(carrier, seen),
                 "reprints": [entry_json(reprint, seen) for reprint in carrier.reprints]}
                for carrier in entries]

    def highlight(entry: Entry | None) -> Json | None:
        return None if entry is None else entry_json(entry, seen)

    return {
        "claim": claim_json(row, base_url),
        "outlets": {**dict.fromkeys(RELATIONS, 0), **record.outlets},
        "first_report": highlight(record.first_report),
        "latest_denial": highlight(record.latest_denial),
        "latest_corroboration": highlight(record.latest_corroboration),
        "news": carriers(record.news), "background": carriers(record.background),
    }


def items_json(record: ClaimRecord, seen: Mapping[str, datetime],
               since: datetime | None) -> Json:
    """Every linked item in the record's time order, flat: each says whether it is
    background and which item it reprints. ``since`` keeps those the monitor saw at or after
    it (inclusive: a reader passing the latest ``seen_at`` it has misses nothing)."""
    linked = [(entry, background, carrier)
              for section, background in ((record.news, False), (record.background, True))
              for carrier in section for entry in carrier.with_reprints()
              if since is None or utc(seen[entry.match_id]) >= utc(since)]
    linked.sort(key=lambda found: (utc(found[0].at), found[0].match_id))
    return {"claim_id": record.claim.id, "since": iso(since), "items": [
        {**entry_json(entry, seen), "background": background,
         "reprint_of": None if entry is carrier else carrier.item_id}
        for entry, background, carrier in linked]}

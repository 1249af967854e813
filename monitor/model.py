"""Messages that flow between the stages, and their JSON codecs.

Types are frozen dataclasses; codecs are separate functions with a schema version, so a stage
can refuse a message it does not understand instead of guessing.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from monitor.errors import InvalidInputError

ITEM_SCHEMA = 1


@dataclass(frozen=True, slots=True)
class Item:
    """One wire story as the poller saw it (the Item contract in DESIGN.md).

    ``item_id`` is stable across feeds of one outlet (derived from the canonical URL);
    ``content_hash`` changes when the title or summary is re-issued. ``backlog`` is set by the
    poller on the items of a feed's first successful poll (what the feed already listed when
    the desk started reading it): they are kept, matched and linked, but not alerted as news.
    It is optional on the wire: a message without it (older producers) is not backlog.
    """

    item_id: str
    feed_id: str
    source: str
    url: str | None
    guid: str | None
    title: str
    summary: str
    language: str | None
    published_at: datetime | None
    fetched_at: datetime
    content_hash: str
    backlog: bool = False


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is UTC:  # nearly all: one feed's items share their fetched_at
        return _utc_iso(moment)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@functools.lru_cache(maxsize=256)
def _utc_iso(moment: datetime) -> str:
    """``_iso`` of a datetime in UTC: equal ones (the cache's keys) write the same text."""
    return moment.isoformat().replace("+00:00", "Z")


def _parse_iso(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"item: field {field!r} must be an ISO-8601 string or null")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInputError(f"item: field {field!r} is not ISO-8601: {value!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def encode_item(item: Item, backlog: bool | None = None) -> bytes:
    """Serialize an item as compact UTF-8 JSON carrying ``schema``; ``backlog``: write the
    item as if its ``backlog`` were this (the parse processes mark first polls' items so,
    without copying them). A text UTF-8 cannot carry (a lone surrogate) raises
    orjson.JSONEncodeError (a TypeError)."""
    return orjson.dumps({"schema": ITEM_SCHEMA, **_item_fields(item, backlog)})


def _item_fields(item: Item, backlog: bool | None = None) -> dict[str, Any]:
    """An item's fields as its JSON carries them (in a match, without ``schema``)."""
    return {
        "item_id": item.item_id, "feed_id": item.feed_id, "source": item.source,
        "url": item.url, "guid": item.guid, "title": item.title, "summary": item.summary,
        "language": item.language, "published_at": _iso(item.published_at),
        "fetched_at": _iso(item.fetched_at), "content_hash": item.content_hash,
        "backlog": item.backlog if backlog is None else backlog,
    }


def encoded_items(items: Sequence[Item], payloads: Sequence[bytes] = ()) -> Sequence[bytes]:
    """:func:`encode_item` of each of ``items``: ``payloads`` when given (made ahead, by the
    parse process that read them), else encoded now."""
    if not payloads:
        return [encode_item(item) for item in items]
    if len(payloads) != len(items):  # a caller's bug: items would get others' payloads
        raise ValueError(f"{len(payloads)} payloads for {len(items)} items")
    return payloads


_REQUIRED_TEXT = ("item_id", "feed_id", "source", "title", "summary", "content_hash")
_OPTIONAL_TEXT = ("url", "guid", "language")


def decode_item(data: bytes) -> Item:
    """Parse bytes made by :func:`encode_item`; raise InvalidInputError naming what is wrong."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:  # invalid UTF-8 too
        raise InvalidInputError(f"item: not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidInputError("item: not a JSON object")
    if type(raw.get("schema")) is not int or raw["schema"] != ITEM_SCHEMA:
        raise InvalidInputError(f"item: unsupported schema {raw.get('schema')!r}")
    return _item_from_fields(raw)


def _item_from_fields(raw: dict[str, Any]) -> Item:
    """The item ``raw`` (decoded JSON) describes; InvalidInputError naming a wrong field."""
    for name in _REQUIRED_TEXT:
        if not isinstance(raw.get(name), str):
            raise InvalidInputError(f"item: field {name!r} must be a string")
    for name in _OPTIONAL_TEXT:
        if raw.get(name) is not None and not isinstance(raw[name], str):
            raise InvalidInputError(f"item: field {name!r} must be a string or null")
    fetched_at = _parse_iso(raw.get("fetched_at"), "fetched_at")
    if fetched_at is None:
        raise InvalidInputError("item: field 'fetched_at' is required")
    backlog = raw.get("backlog", False)  # absent in messages of older producers
    if not isinstance(backlog, bool):
        raise InvalidInputError("item: field 'backlog' must be true or false")
    return Item(
        item_id=raw["item_id"], feed_id=raw["feed_id"], source=raw["source"],
        url=raw.get("url"), guid=raw.get("guid"), title=raw["title"], summary=raw["summary"],
        language=raw.get("language"), published_at=_parse_iso(raw.get("published_at"),
                                                              "published_at"),
        fetched_at=fetched_at, content_hash=raw["content_hash"], backlog=backlog,
    )


@dataclass(frozen=True, slots=True)
class FeedState:
    """One feed's poll state as its last poll left it: validators, body hash, backoff.

    Kept by the poller's state store (the state file, or the shared pollers' state topic) and
    read by the metrics; it lives here, below both, so that neither imports the other.
    """

    feed_id: str
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    consecutive_failures: int = 0
    last_success_at: float | None = None  # unix seconds
    last_error: str | None = None
    next_check_at: float | None = None


MATCH_SCHEMA = 1


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why a match fired: the terms that linked it and the cue that decided the relation."""

    matched_terms: tuple[str, ...]
    compared_with: str  # which text of the claim was compared: "en", "ru", ... or "main"
    relation_cue: str
    relation_confidence: float
    reprint_of: str | None = None  # item_id of a near-identical earlier story, when known
    meaning: float | None = None  # cosine similarity of claim and item sentence vectors
    # The relation model was not sure enough for a denial or corroboration, so it says
    # follow-up: an editor should read the item before treating it as either.
    uncertain: bool = False
    quote: str = ""  # the words that decided the relation, whole words with their context
    speaker: str = ""  # who the item has speaking, when found ("Peskov", "the claim's subject")
    # Linked by `monitor claims backtest --apply`, after the fact: background, never alerted.
    backtest: bool = False


@dataclass(frozen=True, slots=True)
class Match:
    """An item linked to a claim (the Match contract in DESIGN.md)."""

    match_id: str
    claim_id: str
    item: Item
    score: float  # 0-100
    relation: str  # "follow-up" | "denial" | "corroboration"
    evidence: Evidence
    matcher_version: str


def encode_match(match: Match) -> bytes:
    return json.dumps(match_fields(match), ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


def match_fields(match: Match) -> dict[str, Any]:
    """The match as :func:`encode_match` writes it, as a JSON-ready dict (the alert stage's
    payloads and groups carry matches inside their own JSON)."""
    return {
        "schema": MATCH_SCHEMA, "match_id": match.match_id, "claim_id": match.claim_id,
        "item": _item_fields(match.item), "score": round(match.score, 2),
        "relation": match.relation,
        "evidence": asdict(match.evidence), "matcher_version": match.matcher_version,
    }


def decode_match(data: bytes) -> Match:
    """Parse bytes made by :func:`encode_match`; InvalidInputError naming what is wrong."""
    try:
        raw = json.loads(data)
    except ValueError as exc:  # not JSON, or not UTF-8
        raise InvalidInputError(f"match: malformed: {type(exc).__name__}: {exc}") from exc
    return match_from_fields(raw)


def match_from_fields(raw: Any) -> Match:
    """The match ``raw`` (decoded JSON of :func:`match_fields`) describes; InvalidInputError
    naming what is wrong."""
    try:
        if type(raw.get("schema")) is not int or raw["schema"] != MATCH_SCHEMA:
            raise InvalidInputError(f"match: unsupported schema {raw.get('schema')!r}")
        if not isinstance(raw["item"], dict):
            raise InvalidInputError("item: not a JSON object")
        item = _item_from_fields(raw["item"])
        evidence = raw["evidence"]
        return Match(
            match_id=str(raw["match_id"]), claim_id=str(raw["claim_id"]), item=item,
            score=float(raw["score"]), relation=str(raw["relation"]),
            evidence=Evidence(
                matched_terms=tuple(evidence["matched_terms"]),
                compared_with=str(evidence["compared_with"]),
                relation_cue=str(evidence["relation_cue"]),
                relation_confidence=float(evidence["relation_confidence"]),
                reprint_of=evidence.get("reprint_of"),
                meaning=None if evidence.get("meaning") is None else float(evidence["meaning"]),
                # Absent from matches made before match-0.4: read as "not said".
                uncertain=bool(evidence.get("uncertain", False)),
                quote=str(evidence.get("quote") or ""),
                speaker=str(evidence.get("speaker") or ""),
                backtest=bool(evidence.get("backtest", False)),
            ),
            matcher_version=str(raw["matcher_version"]),
        )
    except InvalidInputError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidInputError(f"match: malformed: {type(exc).__name__}: {exc}") from exc

"""monitor/model.py: the Item contract's JSON codec."""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from monitor.errors import InvalidInputError
from monitor.model import (
    ITEM_SCHEMA,
    Item,
    decode_item,
    decode_match,
    encode_item,
    encode_match,
    encoded_items,
)
from tests.alerting import make_match

MSK = timezone(timedelta(hours=3))

ITEM = Item(
    item_id="5f1c0ffee", feed_id="tass-ru", source="TASS", url="https://tass.ru/politika/1",
    guid="https://tass.ru/politika/1", title="Песков: «Кремль не комментирует» — 100%",
    summary="Пресс-секретарь 🇷🇺 \"заявил\" \\ что…", language="ru",
    published_at=datetime(2024, 4, 30, 15, 0, tzinfo=MSK),
    fetched_at=datetime(2024, 4, 30, 12, 1, 2, 345678, tzinfo=UTC), content_hash="abc123",
)


def fields(item: Item = ITEM, **changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(encode_item(item))
    raw.update(changes)
    return raw


def data(raw: dict[str, Any]) -> bytes:
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    "item",
    [
        pytest.param(ITEM, id="full-non-ascii"),
        pytest.param(replace(ITEM, url=None, guid=None, language=None, published_at=None),
                     id="optional-none"),
        pytest.param(replace(ITEM, title="", summary=""), id="empty-text"),
        # Ukrainian apostrophe and Belarusian ў survive as-is.
        pytest.param(replace(ITEM, title="Зеленський: м'ясо ўсё", language="uk"), id="uk-be"),
        pytest.param(replace(ITEM, backlog=True), id="backlog"),
    ],
)
def test_round_trip(item: Item) -> None:
    assert decode_item(encode_item(item)) == item


def test_encoding_is_utf8_json_with_schema_and_utc() -> None:
    raw = encode_item(ITEM)
    assert "Песков".encode() in raw  # not \u-escaped: readable on the topic
    doc = json.loads(raw)
    assert doc["schema"] == ITEM_SCHEMA
    # The contract: UTC ISO-8601. 15:00 Moscow time is 12:00 UTC.
    assert doc["published_at"] == "2024-04-30T12:00:00Z"
    assert doc["fetched_at"] == "2024-04-30T12:01:02.345678Z"
    decoded = decode_item(raw)
    assert decoded.published_at is not None
    assert decoded.published_at.utcoffset() == timedelta(0)


def test_encoding_carries_every_field_in_declaration_order() -> None:
    """Keys in the order of the dataclass, as ``asdict`` gave them before (same bytes on the
    topic from old and new pollers)."""
    doc = json.loads(encode_item(replace(ITEM, backlog=True)))
    assert list(doc) == ["schema", *(f.name for f in dataclasses.fields(Item))]
    assert doc["backlog"] is True


def expected_fields(item: Item) -> dict[str, Any]:
    """The values encode_item writes: the fields in order, dates as UTC ISO-8601 with Z."""
    expected = {"schema": ITEM_SCHEMA, **dataclasses.asdict(item)}
    for name in ("published_at", "fetched_at"):
        moment = expected[name]
        expected[name] = moment and moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return expected


@pytest.mark.parametrize("text", [
    "", "plain", "Песков «Кремль»", '"quoted" \\ back/slash', "\x00\x01\x1f\x7f\x80\x9f",
    "\b\f\n\r\t", "\u2028\u2029\ufeff\u200b", "🇷🇺 emoji", "\U0010ffff", "…</script>",
])
def test_encoding_decodes_to_the_fields(text: str) -> None:
    """What encode_item writes, read by any JSON reader (json here), gives the fields back."""
    for item in (replace(ITEM, title=text, summary=text * 3, guid=text or None),
                 replace(ITEM, url=None, guid=None, language=None, published_at=None,
                         backlog=True, source=text)):
        expected = expected_fields(item)
        assert json.loads(encode_item(item)) == expected
        flipped = encode_item(replace(item, backlog=not item.backlog), item.backlog)
        assert flipped == encode_item(item)


def test_encoding_over_generated_texts() -> None:
    rng = random.Random(5)
    alphabet = [*"abcdefghijklmnopqrstuvwxyz" * 3, *map(chr, range(0x30)), "\x7f", "\x80",
                "\xa0", "é", "Я", "\u2028", "€", "\ufeff", "\U0001f1f7", "\\", '"', "/",
                " "]
    for _ in range(1_000):
        texts = ["".join(rng.choices(alphabet, k=rng.randint(0, 90))) for _ in range(4)]
        item = replace(ITEM, title=texts[0], summary=texts[1], guid=texts[2] or None,
                       source=texts[3], backlog=rng.random() < 0.5)
        assert json.loads(encode_item(item)) == expected_fields(item)
        assert decode_item(encode_item(item)) == item


def test_lone_surrogate_is_refused() -> None:
    """A text UTF-8 cannot carry fails loudly (as str.encode refused it before orjson), and
    a payload escaping one is not read as an item."""
    with pytest.raises(orjson.JSONEncodeError, match="surrogates not allowed"):
        encode_item(replace(ITEM, title="a\ud800b"))
    with pytest.raises(InvalidInputError, match="not JSON"):
        decode_item(data(fields(title="a\ud800b")))


def test_naive_timestamp_read_as_utc() -> None:
    decoded = decode_item(data(fields(published_at="2024-04-30T12:00:00")))
    assert decoded.published_at == datetime(2024, 4, 30, 12, tzinfo=UTC)


def test_a_message_without_backlog_is_not_backlog() -> None:
    # Producers older than the field (items and matches already on a topic or in a log).
    raw = without("backlog")
    assert decode_item(data(raw)) == ITEM and ITEM.backlog is False
    match = make_match()
    payload = json.loads(encode_match(replace(match, item=replace(match.item, backlog=True))))
    assert payload["item"]["backlog"] is True
    assert decode_match(data(payload)).item.backlog is True  # carried by the Match
    del payload["item"]["backlog"]
    assert decode_match(data(payload)).item.backlog is False


def test_unknown_extra_field_is_tolerated() -> None:
    # A newer producer may add fields within the same schema version.
    assert decode_item(data(fields(extra="x"))) == ITEM


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param(b"not json", "not JSON", id="not-json"),
        pytest.param(b"", "not JSON", id="empty"),
        pytest.param(b"\xff\xfe\x00", "not JSON", id="binary"),
        pytest.param(b'{"schema": 1,', "not JSON", id="truncated"),
        pytest.param(b"[1, 2]", "not a JSON object", id="array"),
        pytest.param(b'"item"', "not a JSON object", id="string"),
        pytest.param(b"null", "not a JSON object", id="null"),
    ],
)
def test_decode_rejects_non_objects(payload: bytes, expected: str) -> None:
    with pytest.raises(InvalidInputError, match=expected):
        decode_item(payload)


def without(name: str) -> dict[str, Any]:
    raw = fields()
    del raw[name]
    return raw


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(fields(schema=2), "unsupported schema 2", id="future-schema"),
        pytest.param(fields(schema="1"), "unsupported schema '1'", id="schema-as-string"),
        pytest.param(without("schema"), "unsupported schema None", id="no-schema"),
        pytest.param(without("title"), "field 'title' must be a string", id="missing-title"),
        pytest.param(without("item_id"), "field 'item_id'", id="missing-item-id"),
        pytest.param(without("content_hash"), "field 'content_hash'", id="missing-hash"),
        pytest.param(without("fetched_at"), "field 'fetched_at' is required", id="no-fetched"),
        pytest.param(fields(title=5), "field 'title' must be a string", id="title-int"),
        pytest.param(fields(source=None), "field 'source' must be a string", id="source-null"),
        pytest.param(fields(url=["x"]), "field 'url' must be a string or null", id="url-list"),
        pytest.param(fields(language=1), "field 'language'", id="language-int"),
        pytest.param(fields(published_at="yesterday"), "field 'published_at' is not ISO-8601",
                     id="bad-date"),
        pytest.param(fields(fetched_at="2024-13-01T00:00:00Z"), "field 'fetched_at'",
                     id="month-13"),
        pytest.param(fields(published_at=1714478400), "field 'published_at' must be an ISO",
                     id="epoch-number"),
        pytest.param(fields(backlog="yes"), "field 'backlog' must be true or false",
                     id="backlog-string"),
    ],
)
def test_decode_errors_name_the_field(raw: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        decode_item(data(raw))
    assert expected in str(info.value)
    assert str(info.value).startswith("item: ")


@pytest.mark.parametrize("schema", [pytest.param(True, id="true"), pytest.param(1.0, id="float")])
def test_schema_must_be_the_integer(schema: object) -> None:
    with pytest.raises(InvalidInputError, match="unsupported schema"):
        decode_item(data(fields(schema=schema)))


def test_match_evidence_round_trips_and_older_matches_read_as_not_said() -> None:
    """match-0.4 evidence (uncertain, quote, speaker) survives the wire; a match written by
    an older matcher, without those keys, still decodes."""
    match = make_match()
    match = replace(match, evidence=replace(match.evidence, uncertain=True,
                                            quote="Kremlin denied the report", speaker="Peskov"))
    assert decode_match(encode_match(match)) == match
    raw = json.loads(encode_match(match))
    for key in ("uncertain", "quote", "speaker"):
        del raw["evidence"][key]
    old = decode_match(json.dumps(raw).encode())
    assert (old.evidence.uncertain, old.evidence.quote, old.evidence.speaker) == (False, "", "")


def test_encoded_items_are_the_payloads_made_ahead_or_made_now() -> None:
    item = ITEM
    other = replace(item, title="made ahead")
    assert encoded_items([item]) == [encode_item(item)]
    assert encoded_items([item], [encode_item(other)]) == [encode_item(other)]
    with pytest.raises(ValueError, match="2 payloads for 1 items"):
        encoded_items([item], [b"{}", b"{}"])  # a caller's bug, not a silent mismatch

"""The API's answers are what desk/schema/desk-api.schema.json (shipped in the package) says."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from importlib.resources import files
from typing import Any

import pytest
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

from tests.desk.webdesk import desk_app

SCHEMA = json.loads(files("monitor.desk").joinpath("schema", "desk-api.schema.json")
                    .read_text(encoding="utf-8"))
TIME_FIELDS = {"at", "seen_at", "last_activity", "since"}


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    return desk_app(public_url="https://desk.example.org").test_client()


def answers(client: FlaskClient) -> Iterator[tuple[str, int, Any]]:
    for path, status in (
            ("/api/claims", 200), ("/api/claims?tag=belarus&relation=denial", 200),
            ("/api/claims?tag=none", 200), ("/api/claims/generals-2022", 200),
            ("/api/claims/quiet-claim", 200), ("/api/claims/grain-deal", 200),
            ("/api/claims/generals-2022/items", 200),
            ("/api/claims/generals-2022/items?since=2026-11-25T00:00:00Z", 200),
            ("/api/claims/quiet-claim/items", 200), ("/api/claims/nope", 404),
            ("/api/claims/generals-2022/items?since=soon", 400)):
        answer = client.get(path)
        assert answer.status_code == status, path
        assert answer.mimetype == "application/json"
        yield path, status, answer.get_json()


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)


def test_the_desk_serves_the_schema_it_ships(client: FlaskClient) -> None:
    assert client.get("/api/schema.json").get_json() == SCHEMA


def test_every_answer_validates_against_the_schema(client: FlaskClient) -> None:
    validator = Draft202012Validator(SCHEMA)
    for path, _, document in answers(client):
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in validator.iter_errors(document)]
        assert not errors, (path, errors)


@pytest.mark.parametrize(("definition", "path"), [
    ("claimList", "/api/claims"), ("record", "/api/claims/generals-2022"),
    ("items", "/api/claims/generals-2022/items"), ("error", "/api/claims/nope")])
def test_each_route_answers_its_own_shape(client: FlaskClient, definition: str,
                                          path: str) -> None:
    shape = {"$ref": f"#/$defs/{definition}", "$defs": SCHEMA["$defs"]}
    Draft202012Validator(shape).validate(client.get(path).get_json())


def test_times_are_rfc3339_in_utc(client: FlaskClient) -> None:
    # jsonschema checks "format" only with optional packages: the times are checked here.
    seen = []
    for _, _, document in answers(client):
        for key, value in walk(document):
            if key in TIME_FIELDS and value is not None:
                assert value.endswith("Z"), (key, value)
                assert datetime.fromisoformat(value).utcoffset() == timedelta(0), (key, value)
                seen.append(value)
    assert len(seen) > 20


def test_the_schema_rejects_what_the_api_must_never_send() -> None:
    validator = Draft202012Validator(SCHEMA)
    entry = {"match_id": "m", "item_id": "i", "at": "2026-11-25T12:00:00Z", "dated": True,
             "seen_at": "2026-11-25T12:00:00Z", "relation": "denial", "confidence": 0.8,
             "uncertain": False, "outlet": "TASS", "language": "ru", "title": "t",
             "link": "javascript:alert(1)", "score": 77.0,
             "evidence": {"quote": "", "speaker": "", "cue": ""},
             "background": False, "reprint_of": None}
    assert not validator.is_valid({"claim_id": "c", "since": None, "items": [entry]})
    assert validator.is_valid({"claim_id": "c", "since": None,
                               "items": [{**entry, "link": None}]})
    assert not validator.is_valid({"claim_id": "c", "since": None,
                                   "items": [{**entry, "link": None, "extra": 1}]})


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)

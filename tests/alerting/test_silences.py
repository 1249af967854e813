"""monitor/alerting/silences.py: which unexpired silence, if any, covers a match."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.alerting.silences import Silence, active_silence, parse_silence_matchers
from monitor.errors import InvalidInputError
from tests.alerting import make_match

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def silence(*matchers: str, sid: str = "s1", hours: float = 2.0) -> Silence:
    return Silence(id=sid, matchers=parse_silence_matchers(matchers),
                   expires_at=NOW + timedelta(hours=hours), reason="known story",
                   created_by="editor@desk", created_at=NOW - timedelta(hours=1))


@pytest.mark.parametrize(
    ("matchers", "match_fields", "tags", "silenced"),
    [
        pytest.param(["claim = lukashenko-generals-2022"], {}, (), True, id="claim"),
        pytest.param(["claim = other-claim"], {}, (), False, id="other-claim"),
        pytest.param(["tag = belarus"], {}, ("belarus", "ukraine-war"), True, id="tag-any-of"),
        pytest.param(["tag = belarus"], {}, ("ukraine-war",), False, id="tag-absent"),
        pytest.param(["tags =~ bel.*"], {}, ("belarus",), True, id="tag-regex"),
        pytest.param(['source = "RIA Novosti"'], {"source": "RIA Novosti"}, (), True,
                     id="source"),
        pytest.param(["source =~ TASS|BelTA"], {"source": "TASS English"}, (), False,
                     id="source-regex-full-match"),
        pytest.param(["relation = follow-up"], {}, (), True, id="relation"),
        pytest.param(["relation = follow-up"], {"relation": "denial"}, (), False,
                     id="relation-denial-not-silenced"),
        # All matchers must hold: the claim's follow-ups are silenced, its denials are not.
        pytest.param(["claim = lukashenko-generals-2022", "relation != denial"],
                     {"relation": "denial"}, (), False, id="all-must-hold"),
        pytest.param(["claim = lukashenko-generals-2022", "relation != denial"],
                     {"relation": "follow-up"}, (), True, id="all-hold"),
    ],
)
def test_matching(matchers: list[str], match_fields: dict[str, Any], tags: tuple[str, ...],
                  silenced: bool) -> None:
    found = active_silence(make_match(**match_fields), tags, [silence(*matchers)], NOW)
    assert (found is not None) is silenced


@pytest.mark.parametrize(
    ("now", "active"),
    [
        pytest.param(NOW, True, id="active"),
        pytest.param(NOW + timedelta(hours=2) - timedelta(microseconds=1), True,
                     id="last-instant"),
        pytest.param(NOW + timedelta(hours=2), False, id="expires-at-is-exclusive"),
        pytest.param(NOW + timedelta(days=1), False, id="expired"),
    ],
)
def test_expiry(now: datetime, active: bool) -> None:
    found = active_silence(make_match(), (), [silence("relation = follow-up")], now)
    assert (found is not None) is active


def test_longest_lasting_silence_wins_whatever_the_order() -> None:
    short = silence("relation = follow-up", sid="a-short", hours=1)
    long = silence("claim = lukashenko-generals-2022", sid="b-long", hours=5)
    expired = silence("relation = follow-up", sid="c-old", hours=-1)
    other = silence("claim = other", sid="d-other", hours=9)
    for order in ([short, long, expired, other], [other, expired, long, short]):
        assert active_silence(make_match(), (), order, NOW) == long
    assert active_silence(make_match(), (), [expired, other], NOW) is None


@pytest.mark.parametrize(
    ("texts", "fragment"),
    [
        pytest.param([], "at least one matcher", id="none"),
        pytest.param(["score >= 50"], "not 'score'", id="score-not-allowed"),
        pytest.param(["language = ru"], "not 'language'", id="language-not-allowed"),
        pytest.param(["claim = a", "relation = denail"], "matcher 2: ", id="names-which"),
        pytest.param(["tag =~ ("], "invalid regular expression", id="bad-regex"),
        pytest.param(["claim: x"], "expected 'label op value'", id="syntax"),
    ],
)
def test_parse_errors(texts: list[str], fragment: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_silence_matchers(texts)
    assert str(info.value).startswith("silence: ")
    assert fragment in str(info.value)


def test_tag_is_an_alias_of_tags() -> None:
    (matcher,) = parse_silence_matchers(["tag = belarus"])
    assert (matcher.label, matcher.operator, matcher.value) == ("tags", "=", "belarus")


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"expires_at": datetime(2026, 11, 22)}, id="naive-expiry"),
        pytest.param({"created_at": datetime(2026, 11, 21)}, id="naive-creation"),
        pytest.param({"matchers": ()}, id="no-matchers"),
    ],
)
def test_invalid_silence(fields: dict[str, Any]) -> None:
    base: dict[str, Any] = {
        "id": "s1", "matchers": parse_silence_matchers(["claim = c"]),
        "expires_at": NOW, "reason": "r", "created_by": "e", "created_at": NOW}
    with pytest.raises(ValueError, match="silence s1"):
        Silence(**{**base, **fields})


def test_the_topic_codec_round_trips_and_refuses_what_it_cannot_read() -> None:
    from monitor.config.silences import decode_silence, encode_silence

    made = silence("claim = kupiansk-captured", 'source =~ "TASS|RIA Novosti"')
    assert decode_silence(encode_silence(made)) == made
    for bad in (b"{", b'{"schema": 2}', b'{"schema": 1, "id": "x"}',
                b'{"schema": 1, "id": "x", "matchers": ["score >= 5"], "expires_at": '
                b'"2026-11-21T12:00:00+00:00", "reason": "r", "created_by": "e", '
                b'"created_at": "2026-11-21T11:00:00+00:00"}'):
        with pytest.raises(InvalidInputError, match="silence"):
            decode_silence(bad)

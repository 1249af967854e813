"""monitor/config/matchers.py and monitor/alerting/routes.py: the matcher language and
Alertmanager-style routing."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.alerting.routes import MatchLabels, matcher_holds, route_match
from monitor.config.alerts import RootRoute
from monitor.config.matchers import parse_matcher
from tests.alerting import make_match

TREE = RootRoute.model_validate({
    "receiver": "r-root",
    "routes": [
        {"matchers": ["relation = denial"], "receiver": "r-deny", "group_wait": "10s",
         "continue": True,
         "routes": [{"matchers": ["score >= 90"], "receiver": "r-deny-high"}]},
        {"matchers": ['tags =~ "belarus|ukraine-war"'], "receiver": "r-region",
         "repeat_interval": "12h", "group_by": ["claim", "relation"]},
        {"matchers": ["source != TASS", "language = ru"], "receiver": "r-ru"},
        {"matchers": ["claim = c-special"]},
    ],
})


@pytest.mark.parametrize(
    ("match_fields", "tags", "expected"),
    [
        pytest.param({"source": "TASS"}, (), [("r-root", "root")], id="no-child-root-takes-it"),
        pytest.param({"language": "ru"}, ("belarus",), [("r-region", "root.routes[1]")],
                     id="first-match-wins-r-ru-not-reached"),
        pytest.param({"relation": "denial", "score": 60}, ("belarus",),
                     [("r-deny", "root.routes[0]"), ("r-region", "root.routes[1]")],
                     id="continue-tries-next-siblings"),
        pytest.param({"relation": "denial", "score": 60, "source": "TASS"}, (),
                     [("r-deny", "root.routes[0]")], id="continue-without-more-no-root"),
        pytest.param({"relation": "denial", "score": 95}, (),
                     [("r-deny-high", "root.routes[0].routes[0]")], id="matched-child-descends"),
        pytest.param({"relation": "denial", "score": 90}, (),
                     [("r-deny-high", "root.routes[0].routes[0]")], id="score-ge-boundary"),
        pytest.param({"relation": "denial", "score": 89.99}, (),
                     [("r-deny", "root.routes[0]")], id="no-child-matches-node-takes-it"),
        # Regexes match the whole tag: "belarus" must not catch "belarus-economy".
        pytest.param({}, ("belarus-economy",), [("r-root", "root")], id="regex-full-match"),
        pytest.param({}, ("sport", "ukraine-war"), [("r-region", "root.routes[1]")],
                     id="any-tag-suffices"),
        pytest.param({"source": "TASS", "language": "ru"}, (), [("r-root", "root")],
                     id="not-equal-source"),
        pytest.param({"language": None}, (), [("r-root", "root")], id="absent-language"),
        pytest.param({"claim_id": "c-special"}, (), [("r-root", "root.routes[3]")],
                     id="receiver-inherited-from-parent"),
    ],
)
def test_routing(match_fields: dict[str, Any], tags: tuple[str, ...],
                 expected: list[tuple[str, str]]) -> None:
    routed = route_match(make_match(**match_fields), tags, TREE)
    assert [(r.receiver, r.route_path) for r in routed] == expected


def test_timings_and_grouping_are_inherited() -> None:
    deny, region = route_match(make_match(relation="denial", score=60), ("belarus",), TREE)
    assert (deny.group_by, deny.group_wait_seconds, deny.group_interval_seconds,
            deny.repeat_interval_seconds) == (("claim",), 10.0, 300.0, 14400.0)
    assert (region.group_by, region.group_wait_seconds, region.repeat_interval_seconds) == (
        ("claim", "relation"), 30.0, 43200.0)
    (high,) = route_match(make_match(relation="denial", score=99), (), TREE)
    assert (high.group_wait_seconds, high.repeat_interval_seconds) == (10.0, 14400.0)


def test_root_defaults() -> None:
    (root,) = route_match(make_match(source="TASS"), (), RootRoute(receiver="x"))
    assert (root.receiver, root.group_by, root.group_wait_seconds, root.group_interval_seconds,
            root.repeat_interval_seconds) == ("x", ("claim",), 30.0, 300.0, 14400.0)


LABELS = MatchLabels(claim="c1", tags=("belarus", "ukraine-war"), relation="denial",
                     score=70.0, source="RIA Novosti", language="")


@pytest.mark.parametrize(
    ("text", "holds"),
    [
        pytest.param("claim = c1", True, id="eq"),
        pytest.param("claim != c1", False, id="ne"),
        pytest.param("tag = belarus", True, id="tag-alias-any-of"),
        pytest.param("tags != belarus", False, id="ne-means-no-tag-equals"),
        pytest.param("tags != russia", True, id="ne-no-tag-equals"),
        pytest.param("tags =~ ukr.*", True, id="regex-any-tag"),
        pytest.param("tags =~ ukr", False, id="regex-is-full-match"),
        pytest.param('tags !~ "bel.*"', False, id="not-regex-any-tag-matches"),
        pytest.param('source = "RIA Novosti"', True, id="quoted-value-with-space"),
        pytest.param("source = 'RIA Novosti'", True, id="single-quoted"),
        pytest.param("source =~ RIA.*", True, id="regex-source"),
        pytest.param('language = ""', True, id="absent-language-is-empty"),
        pytest.param("relation =~ denial|corroboration", True, id="regex-alternation"),
        pytest.param("score > 70", False, id="gt-strict"),
        pytest.param("score >= 70", True, id="ge"),
        pytest.param("score < 70.5", True, id="lt-fraction"),
        pytest.param("score <= 69.9", False, id="le"),
    ],
)
def test_matcher(text: str, holds: bool) -> None:
    assert matcher_holds(parse_matcher(text), LABELS) is holds


def test_no_tags_behave_as_one_empty_tag() -> None:
    bare = MatchLabels("c1", (), "denial", 70.0, "TASS", "ru")
    assert matcher_holds(parse_matcher("tags != belarus"), bare)
    assert not matcher_holds(parse_matcher("tags =~ .+"), bare)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param("relation == denial", "unknown operator '=='", id="double-equals"),
        pytest.param("score => 70", "unknown operator '=>'", id="arrow"),
        pytest.param("relation ~ denial", "expected 'label op value'", id="no-operator"),
        pytest.param("colour = red", "unknown label 'colour'", id="unknown-label"),
        pytest.param("tags =~ (belarus", "invalid regular expression", id="bad-regex"),
        pytest.param("score = 70", "only score compares", id="score-needs-comparison"),
        pytest.param("source >= TASS", "only score compares", id="compare-non-score"),
        pytest.param("score >= lots", "number from 0 to 100", id="score-not-number"),
        pytest.param("score >= 101", "number from 0 to 100", id="score-out-of-range"),
        pytest.param("relation = denail", "unknown relation 'denail'", id="relation-typo"),
        pytest.param("source =", "missing value", id="missing-value"),
    ],
)
def test_matcher_errors(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_matcher(text)
    assert fragment in str(info.value)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("text", ["tags =~ 'a|b'", 'source = "RIA "Novosti""',
                                  "score >= 70", 'language = ""', "claim != x-1"])
def test_str_parses_back(text: str) -> None:
    matcher = parse_matcher(text)
    assert parse_matcher(str(matcher)) == matcher

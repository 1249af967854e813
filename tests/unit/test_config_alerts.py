"""monitor/config/alerts.py: alerts/routes.yaml is validated, errors say where, secrets stay out."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from monitor.alerting.routes import route_match
from monitor.config.alerts import ReceiverConfig, load_alerts, resolve_urls
from monitor.errors import ConfigError
from tests.alerting import make_match

REPO = Path(__file__).resolve().parents[2]

RECEIVERS = """
receivers:
  - name: desk
    urls: ["json://hooks.example.org/desk"]
  - name: ops
    urls: ["jsons://hooks.example.org/ops"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_alerts(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    return message


def test_valid_file(tmp_path: Path) -> None:
    config = load_alerts(write(tmp_path, RECEIVERS + """
route:
  receiver: desk
  group_interval: 10m
  routes:
    - matchers: ["relation = denial", "score >= 70"]
      receiver: ops
      continue: true
      group_by: [claim, source]
"""))
    root, child = config.route, config.route.routes[0]
    assert (root.receiver, root.group_by, root.group_wait_seconds, root.group_interval_seconds,
            root.repeat_interval_seconds) == ("desk", ("claim",), 30.0, 600.0, 14400.0)
    assert [str(m) for m in child.matchers] == ['relation = "denial"', 'score >= "70"']
    assert (child.receiver, child.continue_, child.group_by, child.group_wait_seconds) == (
        "ops", True, ("claim", "source"), None)
    assert config.receiver("ops").urls == ("jsons://hooks.example.org/ops",)


ROUTE_ERRORS = [
    # (yaml below the receivers, fragments the message must hold)
    pytest.param("""
route:
  receiver: desk
  routes:
    - matchers: [relation = denial]
      receiver: desk
    - matchers: [relation = corroboration]
      receiver: nobody
""", ["route 'root.routes[1]': field 'receiver': unknown receiver 'nobody'",
      "known: desk, ops", "(line 13)"], id="unknown-receiver"),
    pytest.param("""
route:
  receiver: desk
  routes:
    - matchers: ["tags =~ (belarus"]
""", ["route 'root.routes[0]': field 'matchers[0]'", "invalid regular expression",
      "(line 10)"], id="bad-regex"),
    pytest.param("""
route:
  receiver: desk
  routes:
    - receiver: ops
      routes:
        - matchers: [score >= 10]
        - matchers: [relation == denial]
""", ["route 'root.routes[0].routes[1]': field 'matchers[0]'", "unknown operator '=='",
      "(line 13)"], id="bad-operator-nested"),
    pytest.param("""
route:
  receiver: desk
  routes:
    - group_wait: -5
""", ["route 'root.routes[0]': field 'group_wait'", "greater than or equal to 0",
      "(line 10)"], id="negative-duration"),
    pytest.param("""
route:
  receiver: desk
  repeat_interval: -4h
""", ["route 'root': field 'repeat_interval'", "not a duration", "(line 9)"],
        id="negative-duration-text"),
    pytest.param("""
route:
  receiver: desk
  group_interval: 0s
""", ["route 'root': field 'group_interval'", "greater than 0"], id="zero-interval"),
    pytest.param("""
route:
  receiver: desk
  routes:
    - receiver: ops
      contine: true
""", ["route 'root.routes[0]': unknown key 'contine'", "(line 11)"], id="unknown-key"),
    pytest.param("""
route:
  group_wait: 10s
""", ["route 'root': ", "needs a 'receiver'"], id="root-without-receiver"),
    pytest.param("""
route:
  receiver: desk
  matchers: [relation = denial]
""", ["route 'root': ", "move 'matchers'"], id="root-with-matchers"),
    pytest.param("""
route:
  receiver: desk
  group_by: [claim, item_id]
""", ["route 'root': field 'group_by'", "cannot group by 'item_id'"], id="group-by-label"),
    pytest.param("""
route:
  receiver: desk
  routes:
    - matchers: relation = denial
""", ["route 'root.routes[0]': field 'matchers'", "(line 10)"], id="matchers-not-a-list"),
    pytest.param("""
route:
  receiver: desk
  group_wait: null
""", ["route 'root': ", "cannot be null"], id="root-null-timing"),
    pytest.param("""
routes: []
""", ["field 'route': Field required", "unknown key 'routes'"], id="missing-route"),
]


@pytest.mark.parametrize(("body", "fragments"), ROUTE_ERRORS)
def test_route_errors(tmp_path: Path, body: str, fragments: list[str]) -> None:
    message = load_error(tmp_path, RECEIVERS + body)
    for fragment in fragments:
        assert fragment in message


RECEIVER_ERRORS = [
    pytest.param('[{name: web, urls: ["http://example.org/hook"]}]',
                 ["receivers[0] (name 'web'): field 'urls': url 1: unknown scheme 'http'"],
                 id="unknown-scheme"),
    pytest.param('[{name: web, urls: ["hooks.example.org"]}]',
                 ["field 'urls': url 1: must start with an Apprise scheme"], id="no-scheme"),
    pytest.param('[{name: web, urls: ["json://$HOST/x"]}]',
                 ["field 'urls': url 1: a '$' must start ${ENV_NAME}"], id="bare-dollar"),
    pytest.param('[{name: web, urls: ["json://${1X}/x"]}]', ["a '$' must start"],
                 id="bad-variable-name"),
    pytest.param("[{name: web, urls: []}]", ["field 'urls': "], id="no-urls"),
    pytest.param('[{name: Web Hook, urls: ["json://a"]}]', ["field 'name': "], id="bad-name"),
    pytest.param('[{name: web, urls: ["json://a"], rate_limit: {count: 5, per: 0}}]',
                 ["field 'rate_limit.per': ", "greater than 0"], id="rate-limit-zero"),
    pytest.param('[{name: web, urls: ["json://a"]}, {name: web, urls: ["json://b"]}]',
                 ["receivers[1] (name 'web'): field 'name': duplicate name 'web'"],
                 id="duplicate-name"),
    pytest.param("[]", ["field 'receivers': "], id="no-receivers"),
]


@pytest.mark.parametrize(("receivers", "fragments"), RECEIVER_ERRORS)
def test_receiver_errors(tmp_path: Path, receivers: str, fragments: list[str]) -> None:
    message = load_error(tmp_path, f"receivers: {receivers}\nroute: {{receiver: web}}\n")
    for fragment in fragments:
        assert fragment in message


def test_every_problem_is_listed(tmp_path: Path) -> None:
    message = load_error(tmp_path, RECEIVERS + """
route:
  receiver: desk
  routes:
    - matchers: [colour = red]
    - group_wait: soon
""")
    assert len(message.splitlines()) == 2
    assert "root.routes[0]" in message and "root.routes[1]" in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param("receivers: [\n  {name: a\n", "YAML syntax error at line 3", id="syntax"),
        pytest.param("", "expected a mapping", id="empty"),
        pytest.param("- a\n- b\n", "expected a mapping", id="list"),
    ],
)
def test_unreadable_files(tmp_path: Path, text: str, fragment: str) -> None:
    assert fragment in load_error(tmp_path, text)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_alerts(tmp_path / "nope.yaml")


MAIL = ReceiverConfig(name="mail", urls=(
    "mailtos://${SMTP_USER}:${SMTP_PASSWORD}@smtp.example.org?to=desk@example.org",
    "json://hooks.example.org/pay$$load?token=${HOOK_TOKEN}",
))


def test_resolve_urls_substitutes_variables_and_dollars() -> None:
    environ = {"SMTP_USER": "desk", "SMTP_PASSWORD": "pw", "HOOK_TOKEN": "t0k"}
    assert resolve_urls(MAIL, environ) == [
        "mailtos://desk:pw@smtp.example.org?to=desk@example.org",
        "json://hooks.example.org/pay$load?token=t0k",
    ]


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        pytest.param({"SMTP_USER": "user-value-1", "HOOK_TOKEN": "hook-value-2"},
                     "SMTP_PASSWORD", id="one-missing"),
        pytest.param({"SMTP_USER": "user-value-1", "SMTP_PASSWORD": "",
                      "HOOK_TOKEN": "hook-value-2"}, "SMTP_PASSWORD", id="empty-is-missing"),
        pytest.param({"SMTP_PASSWORD": "pass-value-3"}, "HOOK_TOKEN, SMTP_USER",
                     id="several-missing"),
    ],
)
def test_missing_variable_names_receiver_never_values(environ: dict[str, str],
                                                      missing: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_urls(MAIL, environ)
    message = str(info.value)
    assert "receiver 'mail'" in message and missing in message
    for value in environ.values():
        if value:
            assert value not in message
    assert "smtp.example.org" not in message  # nor the URL around the variables
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_shipped_routes_load_resolve_and_route(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLACK_TOKEN_A", "SLACK_TOKEN_B", "SLACK_TOKEN_C", "SMTP_USER",
                 "SMTP_PASSWORD", "OPS_WEBHOOK_TOKEN"):
        monkeypatch.setenv(name, f"fake-{name.lower()}")
    config = load_alerts(REPO / "alerts" / "routes.yaml")
    urls = {r.name: resolve_urls(r, os.environ) for r in config.receivers}
    assert urls["desk-slack"] == [
        "slack://fake-slack_token_a/fake-slack_token_b/fake-slack_token_c/#claims"]
    assert "fake-smtp_password@smtp." in urls["desk-email"][0]
    assert "fake-smtp_password" not in repr(config)

    def route(tags: tuple[str, ...], **fields: Any) -> list[tuple[str, str]]:
        routed = route_match(make_match(**fields), tags, config.route)
        return [(r.receiver, r.route_path) for r in routed]

    assert route(("belarus",), relation="denial") == [
        ("desk-slack", "root.routes[1]"), ("desk-email", "root.routes[2]")]
    assert route((), relation="corroboration") == [
        ("desk-slack", "root.routes[1]"), ("desk-email", "root.routes[3]")]
    assert route(("belarus",), relation="denial", score=40) == [("ops-webhook", "root.routes[0]")]
    assert route(()) == [("desk-email", "root")]
    assert route(("ukraine-war",), source="TASS") == [("desk-email", "root.routes[2].routes[0]")]

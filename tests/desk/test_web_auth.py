"""Who may read the desk: token, basic auth, nobody asked on loopback; never exposed open."""

from __future__ import annotations

import base64
import logging

import pytest

from monitor.config.settings import DeskSettings
from monitor.desk.auth import access_from
from monitor.desk.view import MemoryDeskView
from monitor.desk.web import DeskServer
from monitor.errors import ConfigError
from tests.desk.webdesk import CLAIMS, desk_app, settings

TOKEN = "s3cret-token-\u00e9"  # not ASCII: compared as UTF-8 bytes
PATHS = ["/", "/claims/generals-2022", "/claims/generals-2022.atom", "/api/claims",
         "/api/claims/generals-2022/items", "/claims/no-such-claim"]


def basic(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", PATHS)
def test_without_credentials_set_loopback_is_open(path: str) -> None:
    assert desk_app().test_client().get(path).status_code in (200, 404)


@pytest.mark.parametrize("path", PATHS)
def test_a_token_is_needed_in_the_header_or_the_query(path: str) -> None:
    client = desk_app(token=TOKEN).test_client()
    refused = client.get(path)
    assert refused.status_code == 401
    assert refused.headers.getlist("WWW-Authenticate") == ['Bearer realm="claim desk"']
    assert TOKEN not in refused.get_data(as_text=True)
    assert client.get(path, headers=bearer(TOKEN)).status_code in (200, 404)
    assert client.get(path, query_string={"token": TOKEN}).status_code in (200, 404)


@pytest.mark.parametrize("headers", [
    pytest.param(bearer("wrong"), id="wrong-token"),
    pytest.param(bearer(TOKEN[:-1]), id="prefix-of-token"),
    pytest.param(bearer(TOKEN + "x"), id="token-plus"),
    pytest.param(basic("editor", TOKEN), id="token-as-basic-password"),
    pytest.param({"Authorization": TOKEN}, id="no-scheme"),
    pytest.param({"Authorization": "Bearer"}, id="empty-bearer"),
])
def test_anything_but_the_token_is_refused(headers: dict[str, str]) -> None:
    assert desk_app(token=TOKEN).test_client().get("/", headers=headers).status_code == 401


def test_a_wrong_query_token_is_refused() -> None:
    client = desk_app(token=TOKEN).test_client()
    assert client.get("/api/claims?token=nope").status_code == 401
    assert client.get("/api/claims?token=").status_code == 401


def test_basic_auth_lets_the_user_in_and_asks_the_browser_otherwise() -> None:
    client = desk_app(username="editor", password="pass word:1").test_client()
    refused = client.get("/")
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == 'Basic realm="claim desk", charset="UTF-8"'
    assert client.get("/", headers=basic("editor", "pass word:1")).status_code == 200
    for user, password in (("editor", "pass word:2"), ("Editor", "pass word:1"), ("", "")):
        assert client.get("/", headers=basic(user, password)).status_code == 401
    assert client.get("/", headers=bearer("pass word:1")).status_code == 401


def test_with_both_set_either_is_enough_and_both_are_offered() -> None:
    client = desk_app(token=TOKEN, username="editor", password="pw").test_client()
    assert client.get("/", headers=basic("editor", "pw")).status_code == 200
    assert client.get("/", headers=bearer(TOKEN)).status_code == 200
    assert client.get("/").headers.getlist("WWW-Authenticate") == [
        'Basic realm="claim desk", charset="UTF-8"', 'Bearer realm="claim desk"']


def test_the_stylesheet_needs_no_credentials() -> None:
    # A feed reader or a browser with ?token= gets a styled page; the stylesheet holds nothing.
    assert desk_app(token=TOKEN).test_client().get("/static/desk.css").status_code == 200


@pytest.mark.parametrize("address", ["0.0.0.0:9465", ":9465", "192.0.2.7:9465",
                                     "desk.internal:9465"])
def test_a_reachable_address_without_credentials_is_refused(address: str) -> None:
    with pytest.raises(ConfigError, match="MONITOR_DESK__ADDRESS.*MONITOR_DESK__TOKEN"):
        DeskServer(MemoryDeskView(), lambda: CLAIMS, settings(address=address))


@pytest.mark.parametrize("address", ["127.0.0.1:0", "localhost:0", "127.0.0.2:0"])
def test_loopback_needs_no_credentials(address: str) -> None:
    access = access_from(DeskSettings(address=address))
    assert not access.required


@pytest.mark.parametrize("desk", [
    pytest.param({"token": TOKEN}, id="token"),
    pytest.param({"username": "editor", "password": "pw"}, id="basic"),
])
def test_a_reachable_address_with_credentials_is_accepted(desk: dict[str, str]) -> None:
    assert access_from(DeskSettings(address="0.0.0.0:9465", **desk)).required


@pytest.mark.parametrize("desk", [
    pytest.param({"username": "editor"}, id="user-without-password"),
    pytest.param({"password": "pw"}, id="password-without-user"),
])
def test_half_of_basic_auth_is_refused(desk: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="MONITOR_DESK__USERNAME and MONITOR_DESK__PASSWORD"):
        access_from(DeskSettings(**desk))


def test_an_empty_token_lets_nobody_in_and_counts_as_unset() -> None:
    with pytest.raises(ConfigError, match="no credentials"):
        access_from(DeskSettings(address="0.0.0.0:9465", token=""))
    assert not access_from(DeskSettings(token="")).required


def test_secrets_are_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    import httpx

    token, password = "plain-ascii-token", "pw-secret"
    caplog.set_level(logging.DEBUG)
    server = DeskServer(MemoryDeskView(), lambda: CLAIMS,
                        settings(token=token, username="editor", password=password))
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{base}/api/claims?token={token}").status_code == 200
        assert httpx.get(f"{base}/nowhere?token=guess-{token}").status_code == 401
        assert httpx.get(f"{base}/", headers=basic("editor", password)).status_code == 200
        assert httpx.get(f"{base}/", headers=basic("editor", "x" + password)).status_code == 401
    finally:
        server.stop()
    # The test's own HTTP client logs the URLs it asks for; everything else is the desk's.
    desk = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.__dict__}" for r in desk)
    assert "desk: serving on http://127.0.0.1:" in logged
    assert token not in logged and password not in logged

"""Delivering one rendered message to one URL: real webhook and SMTP receivers on 127.0.0.1,
httpx.MockTransport for the status table, and no secret anywhere."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest

from monitor.alerting.channels import (
    AppriseChannel,
    LogRedactor,
    WebhookChannel,
    build_channels,
    webhook_request,
    with_url_options,
)
from monitor.alerting.deliver import Channels, DeliveryResult, describe_url, secrets_of
from monitor.alerting.render import Rendered
from monitor.retry import is_retryable
from tests.support.clock import ManualClock
from tests.support.receivers import SmtpReceiver, WebhookReceiver

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MESSAGE = Rendered("🔴 DENIAL: surrender-terms — 1 outlet",
                   json.dumps({"title": "🔴 DENIAL", "claim_id": "surrender-terms"}), "json")
EMAIL = Rendered("🔴 DENIAL: surrender-terms — 2 outlets",
                 "<p><b>Kyiv</b> denies &lt;script&gt;</p>", "html")


@pytest.fixture
def redactor() -> Iterator[LogRedactor]:
    redactor = LogRedactor().install()
    yield redactor
    redactor.close()


@pytest.fixture
def webhook(redactor: LogRedactor) -> Iterator[WebhookChannel]:
    channel = WebhookChannel(redactor, timeout_seconds=0.5, clock=ManualClock(now=NOW.timestamp()))
    yield channel
    channel.close()


def test_webhook_posts_the_rendered_json(webhook: WebhookChannel, hook: WebhookReceiver) -> None:
    result = webhook.send(MESSAGE, hook.url("/alerts"))
    assert result == DeliveryResult(True, "sent", detail=f"deliver json://127.0.0.1:"
                                                         f"{hook.port}: HTTP 200")
    (got,) = hook.wait_for(1)
    assert got.path == "/alerts"
    assert got.body == {"title": "🔴 DENIAL", "claim_id": "surrender-terms"}
    assert got.headers["content-type"] == "application/json"


def test_webhook_headers_params_and_auth_from_the_url(webhook: WebhookChannel,
                                                      hook: WebhookReceiver) -> None:
    url = (f"json://desk:pa%24s@127.0.0.1:{hook.port}/alerts"
           "?+X-Token=abc+def%2F1&-source=monitor&format=json")
    assert webhook.send(MESSAGE, url).ok
    (got,) = hook.wait_for(1)
    assert got.headers["x-token"] == "abc+def/1"  # '+' kept: Apprise's raw query syntax
    assert got.query == {"source": "monitor"}  # Apprise options are not sent on
    assert got.headers["authorization"] == httpx.BasicAuth("desk", "pa$s")._auth_header


def test_webhook_carries_the_idempotency_key(webhook: WebhookChannel,
                                             hook: WebhookReceiver) -> None:
    # A receiver can drop the repeat that a crash between sending and recording causes.
    assert webhook.send(replace(MESSAGE, idempotency_key="n1-0"), hook.url("/alerts")).ok
    assert webhook.send(MESSAGE, hook.url("/alerts")).ok
    first, second = hook.wait_for(2)
    assert first.headers["idempotency-key"] == "n1-0"
    assert "idempotency-key" not in second.headers


def test_jsons_is_https() -> None:
    target, headers, params, auth = webhook_request("jsons://hooks.example.org/x?+A=1")
    assert (target, headers, params, auth) == ("https://hooks.example.org/x", {"A": "1"}, {},
                                               None)


def test_webhook_500_is_retryable(webhook: WebhookChannel, hook: WebhookReceiver) -> None:
    hook.fail(500)
    result = webhook.send(MESSAGE, hook.url())
    assert (result.ok, result.status, result.permanent) == (False, "server-error", False)
    assert is_retryable(result.error())
    assert "HTTP 500" in result.detail


def test_webhook_429_carries_retry_after(webhook: WebhookChannel, hook: WebhookReceiver) -> None:
    hook.fail(429, retry_after=30)
    result = webhook.send(MESSAGE, hook.url())
    assert (result.status, result.retry_after_seconds, result.permanent) == (
        "throttled", 30.0, False)
    error = result.error()
    assert is_retryable(error) and error.retry_after_seconds == 30.0


def test_webhook_refused_is_retryable_and_resumes(webhook: WebhookChannel,
                                                  hook: WebhookReceiver) -> None:
    hook.refuse()
    result = webhook.send(MESSAGE, hook.url())
    assert (result.status, result.permanent) == ("unreachable", False)
    hook.recover()
    assert webhook.send(MESSAGE, hook.url()).ok
    assert len(hook.wait_for(1)) == 1


def test_webhook_slow_answer_times_out(webhook: WebhookChannel, hook: WebhookReceiver) -> None:
    hook.slow(30.0)  # released when the receiver closes; the channel gives up after 0.5 s
    result = webhook.send(MESSAGE, hook.url())
    assert (result.status, result.permanent) == ("timeout", False)
    assert is_retryable(result.error())


def test_webhook_400_is_permanent(webhook: WebhookChannel, hook: WebhookReceiver) -> None:
    hook.fail(400, times=1)
    result = webhook.send(MESSAGE, hook.url())
    assert (result.status, result.permanent) == ("rejected", True)
    assert not is_retryable(result.error())
    assert webhook.send(MESSAGE, hook.url()).ok  # times=1: the receiver is well again


@pytest.mark.parametrize(("status", "headers", "expected"), [
    (204, {}, ("sent", None, False)),
    (400, {}, ("rejected", None, True)),
    (401, {}, ("rejected", None, True)),  # a revoked token: fix the config, do not hammer
    (404, {}, ("rejected", None, True)),
    (301, {"Location": "https://elsewhere"}, ("rejected", None, True)),  # not followed on POST
    (408, {}, ("timeout", None, False)),  # RFC 9110 15.5.9: the server timed out the request
    (429, {"Retry-After": "120"}, ("throttled", 120.0, False)),
    (429, {}, ("throttled", None, False)),
    (503, {"Retry-After": "Sun, 01 Mar 2026 12:05:00 GMT"}, ("throttled", 300.0, False)),
    (502, {}, ("server-error", None, False)),
    (500, {"Retry-After": "bogus"}, ("server-error", None, False)),
], ids=["204", "400", "401", "404", "301", "408", "429-seconds", "429-bare", "503-http-date",
        "502", "500-bad-retry-after"])
def test_status_table(redactor: LogRedactor, status: int, headers: dict[str, str],
                      expected: tuple[str, float | None, bool]) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, headers=headers))
    with httpx.Client(transport=transport) as client:
        channel = WebhookChannel(redactor, client=client, clock=ManualClock(now=NOW.timestamp()))
        result = channel.send(MESSAGE, "json://hooks.example.org/x")
    assert (result.status, result.retry_after_seconds, result.permanent) == expected
    assert result.ok is (expected[0] == "sent")


def test_registry_routes_by_scheme(webhook: WebhookChannel, redactor: LogRedactor) -> None:
    fallback = AppriseChannel(redactor)
    channels = Channels({"json": webhook, "jsons": webhook}, fallback)
    assert channels.for_url("JSONS://h/x") is webhook
    assert channels.for_url("slack://a/b/c") is fallback
    result = channels.send(MESSAGE, "no-scheme-here")
    assert (result.status, result.permanent) == ("invalid-url", True)


@pytest.mark.parametrize(("url", "expected"), [
    ("slack://TokA/TokB/TokC/#claims", "slack://TokA/TokB/TokC/#claims?blocks=yes"),
    ("slack://TokA/TokB/TokC?blocks=no", "slack://TokA/TokB/TokC?blocks=no"),  # ops decided
    ("tgram://123:abc/-100", "tgram://123:abc/-100?format=html"),
    ("tgram://123:abc/-100?silent=yes", "tgram://123:abc/-100?silent=yes&format=html"),
    ("mailto://smtp.example.org", "mailto://smtp.example.org"),
], ids=["slack", "slack-explicit", "telegram", "telegram-query", "email-untouched"])
def test_url_options_added_when_absent(url: str, expected: str) -> None:
    assert with_url_options(url) == expected


@pytest.mark.parametrize(("url", "expected"), [
    ("json://u:p@127.0.0.1:8080/hook/t0k?+X-Token=s", "json://127.0.0.1:8080"),
    ("mailtos://user:pw@smtp.example.org?to=desk@example.org", "mailtos://smtp.example.org"),
    ("slack://TokA/TokB/TokC/#claims", "slack://…"),  # the host is a token
    ("tgram://123456:AAbot/-100", "tgram://…"),
    ("nonsense", "(url without scheme)"),
], ids=["json", "mailtos", "slack", "telegram", "no-scheme"])
def test_describe_url_names_only_safe_parts(url: str, expected: str) -> None:
    assert describe_url(url) == expected


def test_email_arrives_through_apprise_with_title_and_html(redactor: LogRedactor) -> None:
    with SmtpReceiver() as smtp:
        result = AppriseChannel(redactor, timeout_seconds=10).send(EMAIL, smtp.apprise_url())
        assert result.ok, result.detail
        (mail,) = smtp.wait_for(1)
    assert mail.subject == EMAIL.title
    assert mail.body("html").strip() == EMAIL.body
    assert mail.rcpt_tos == ("desk@example.org",)


def test_apprise_failure_is_retryable_and_explained(redactor: LogRedactor) -> None:
    with SmtpReceiver() as smtp:  # no AUTH offered: a login attempt fails
        url = f"mailto://desk:pw-1234@127.0.0.1:{smtp.port}?from=monitor@example.org"
        result = AppriseChannel(redactor, timeout_seconds=10).send(EMAIL, url)
    assert (result.ok, result.status, result.permanent) == (False, "failed", False)
    assert result.detail.startswith(f"deliver mailto://127.0.0.1:{smtp.port}: Apprise failed: ")
    assert is_retryable(result.error())


def test_apprise_unusable_url_is_permanent(redactor: LogRedactor) -> None:
    result = AppriseChannel(redactor).send(EMAIL, "slack://only-one-token")
    assert (result.status, result.permanent) == ("invalid-url", True)


def test_no_secret_in_results_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # root: monitor.*, apprise, httpx, httpcore, urllib3 ...
    token, query_token, password = "tok-PATH-8842", "tok-QUERY-5571", "pw-SECRET-9930"
    channels = build_channels(timeout_seconds=0.5)
    second = LogRedactor().install()  # Apprise's own json:// plugin, through AppriseChannel
    results = []
    try:
        with WebhookReceiver() as hook, SmtpReceiver() as smtp:
            hook_url = (f"json://desk:{password}@127.0.0.1:{hook.port}/hook/{token}"
                        f"?+X-Token={query_token}&-key={query_token}")
            results.append(channels.send(MESSAGE, hook_url))
            hook.fail(500)
            results.append(channels.send(MESSAGE, hook_url))
            hook.refuse()
            results.append(channels.send(MESSAGE, hook_url))
            mail_url = (f"mailto://desk:{password}@127.0.0.1:{smtp.port}/{token}"
                        f"?from=monitor@example.org&to={query_token}@example.org")
            results.append(channels.send(EMAIL, mail_url))
            apprise_json = AppriseChannel(second, timeout_seconds=2)
            results.append(apprise_json.send(MESSAGE, hook_url))  # logs URLs at DEBUG
    finally:
        channels.close()
        second.close()
    assert [r.ok for r in results] == [True, False, False, False, False]
    texts = [repr(r) for r in results] + [str(r.error()) for r in results if not r.ok]
    texts += [record.getMessage() + (record.exc_text or "") for record in caplog.records
              if record.name != "mail.log"]  # the test SMTP server's own log, not ours
    texts.append(caplog.text.replace("mail.log", ""))
    for secret in (token, query_token, password):
        assert not [text for text in texts if secret in text], secret
    assert any("127.0.0.1" in r.detail for r in results)  # still says where it went


def test_secrets_of_covers_every_credential_place() -> None:
    secrets = secrets_of("slack://TokA123/TokB456/TokC789/#claims?blocks=yes&footer=no")
    assert {"TokA123", "TokB456", "TokC789", "#claims", "claims"} <= secrets
    assert "yes" not in secrets  # option values stay readable


def _socket_of_last_connection(channel: WebhookChannel, url: str) -> socket.socket:
    transport = channel._client._transport_for_url(httpx.URL(url))
    (connection,) = transport._pool.connections  # type: ignore[attr-defined]
    stream = connection._connection._network_stream
    sock = stream.get_extra_info("socket")
    assert isinstance(sock, socket.socket)
    return sock


def test_webhook_connections_do_not_wait_for_delayed_acks(webhook: WebhookChannel,
                                                          hook: WebhookReceiver) -> None:
    """httpcore writes a request's headers and body apart: with Nagle's algorithm on, the
    body would wait for the receiver's delayed ACK (up to 40 ms a delivery). httpcore turns it
    off itself; this holds any client the channel is given in future to the same."""
    assert webhook.send(MESSAGE, hook.url("/alerts")).status == "sent"
    sock = _socket_of_last_connection(webhook, f"http://127.0.0.1:{hook.port}/alerts")
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0

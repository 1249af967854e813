"""The channels: our own JSON webhook over httpx, and Apprise for everything else.

``json://`` / ``jsons://`` are sent by :class:`WebhookChannel` rather than Apprise, so that the
receiver's status code and Retry-After are known (Apprise only says yes or no). The URL form is
Apprise's: ``json://[user:password@]host[:port]/path?+X-Token=value&-param=value`` -- ``+name``
becomes a request header, ``-name`` a query parameter, user and password HTTP Basic auth.

:class:`LogRedactor` is a logging filter put on the libraries' loggers (Apprise, httpx,
httpcore, urllib3), which log request URLs at INFO and DEBUG: it replaces every fragment of a
receiver URL seen by a channel with ``***`` before any handler sees the record.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import unquote

import apprise
import httpx

from monitor.alerting.deliver import (
    Channels,
    DeliveryResult,
    describe_url,
    redact,
    scheme_of,
    secrets_of,
)
from monitor.alerting.render import Rendered
from monitor.clock import SYSTEM_CLOCK, Clock
from monitor.retry import parse_retry_after

LIBRARY_LOGGERS = ("apprise", "httpx", "httpcore.connection", "httpcore.http11",
                   "httpcore.http2", "httpcore.proxy", "urllib3.connectionpool",
                   "urllib3.connection", "urllib3.util.retry")
# Apprise's body_format for each rendered format: the body is already in that markup. None:
# already in the service's own dialect, passed through unconverted. Apprise reads a "markdown"
# body for Slack as CommonMark and turns ``[x](https://evil)`` into a live ``<https://evil|x>``
# (and escapes our entities again); a "text" body for a Markdown-only service (Rocket.Chat,
# Webex) gets backslashes that Rocket.Chat shows and that break our own link. The text format
# is inert as Markdown by itself (see monitor/alerting/escape.py).
BODY_FORMATS: dict[str, str | None] = {"slack": None, "markdown": "markdown",
                                       "telegram": "html", "html": "html", "text": None,
                                       "json": "text"}
# Options added when absent: Apprise's default Slack mode re-activates escaped mentions, and
# Telegram must parse our HTML (see monitor/alerting/escape.py).
URL_OPTIONS = {"slack": {"blocks": "yes"}, "tgram": {"format": "html"}}
THROTTLE_STATUSES = frozenset({429, 503})
EMAIL_SCHEMES = frozenset({"mailto", "mailtos"})
IDEMPOTENCY_HEADER = "X-Idempotency-Key"


class LogRedactor(logging.Filter):
    """Removes receiver-URL secrets from the records of third-party loggers.

    ``install()`` adds it to ``LIBRARY_LOGGERS``; ``close()`` removes it. Secrets are kept
    until ``close()`` (a plugin may log after its call returned); they are bounded by the
    receivers in the configuration.
    """

    def __init__(self, loggers: Iterable[str] = LIBRARY_LOGGERS) -> None:
        super().__init__()
        self._loggers = tuple(loggers)
        self._secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def install(self) -> LogRedactor:
        for name in self._loggers:
            logging.getLogger(name).addFilter(self)
        return self

    def close(self) -> None:
        for name in self._loggers:
            logging.getLogger(name).removeFilter(self)

    def protect(self, url: str) -> frozenset[str]:
        """Start hiding ``url``'s secrets; returns them."""
        secrets = secrets_of(url)
        with self._lock:
            self._secrets = self._secrets | secrets
        return secrets

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._secrets
        if secrets:
            record.msg, record.args = redact(record.getMessage(), secrets), ()
            if record.exc_info:
                text = logging.Formatter().formatException(record.exc_info)
                record.exc_info, record.exc_text = None, redact(text, secrets)
        return True


class WebhookChannel:
    """POSTs the rendered JSON body to a ``json://``/``jsons://`` URL (see module docstring).

    2xx is sent; 429 and 503 are throttled (retryable, with Retry-After); 408, other 5xx,
    timeouts and connection failures are retryable; every other status is a permanent
    rejection. Each request is bounded by ``timeout_seconds``.
    """

    def __init__(self, redactor: LogRedactor, *, client: httpx.Client | None = None,
                 timeout_seconds: float = 10.0,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self._redactor = redactor
        self._owned = client is None
        self._client = client or httpx.Client(follow_redirects=False)
        self._timeout = httpx.Timeout(timeout_seconds)
        self._clock = clock

    def close(self) -> None:
        if self._owned:
            self._client.close()

    def send(self, rendered: Rendered, url: str) -> DeliveryResult:
        secrets, where = self._redactor.protect(url), describe_url(url)
        try:
            target, headers, params, auth = webhook_request(url)
            if rendered.idempotency_key:
                headers = {"Idempotency-Key": rendered.idempotency_key, **headers}
            response = self._client.post(
                target, content=rendered.body.encode(), params=params,
                auth=auth or httpx.USE_CLIENT_DEFAULT, timeout=self._timeout,
                headers={"Content-Type": "application/json", **headers})
        except (httpx.InvalidURL, ValueError) as exc:
            return DeliveryResult(False, "invalid-url", permanent=True,
                                  detail=f"deliver {where}: bad webhook URL "
                                         f"({redact(str(exc), secrets)})")
        except httpx.HTTPError as exc:
            return _transport_failure(where, exc, secrets)
        now = datetime.fromtimestamp(self._clock.now(), UTC)  # a Retry-After date is from it
        return _status_result(where, response, now)


def webhook_request(url: str) -> tuple[str, dict[str, str], dict[str, str],
                                       httpx.BasicAuth | None]:
    """The http(s) target, headers, query parameters and Basic auth of a json(s):// URL."""
    scheme = scheme_of(url)
    if scheme not in ("json", "jsons"):
        raise ValueError(f"not a json:// or jsons:// URL ({scheme or 'no'} scheme)")
    rest, _, query = url.split("://", 1)[1].partition("?")
    authority, slash, path = rest.partition("/")
    userinfo, at, hostport = authority.rpartition("@")
    user, _, password = userinfo.partition(":")
    headers: dict[str, str] = {}
    params: dict[str, str] = {}
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")  # raw: '+' would decode to a space in parse_qsl
        if key[:1] in "+-" and len(key) > 1:
            target = headers if key[0] == "+" else params
            target[unquote(key[1:])] = unquote(value)
    http = "https" if scheme == "jsons" else "http"
    auth = httpx.BasicAuth(unquote(user), unquote(password)) if at else None
    return f"{http}://{hostport}{slash}{path}", headers, params, auth


def _transport_failure(where: str, exc: httpx.HTTPError,
                       secrets: frozenset[str]) -> DeliveryResult:
    status = ("timeout" if isinstance(exc, httpx.TimeoutException) else
              "unreachable" if isinstance(exc, httpx.ConnectError) else "transport-error")
    reason = redact(str(exc), secrets) or type(exc).__name__
    return DeliveryResult(False, status, detail=f"deliver {where}: {status} "
                                                f"({type(exc).__name__}: {reason}); retryable")


def _status_result(where: str, response: httpx.Response, now: datetime) -> DeliveryResult:
    code = response.status_code
    if 200 <= code < 300:
        return DeliveryResult(True, "sent", detail=f"deliver {where}: HTTP {code}")
    retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
    if code in THROTTLE_STATUSES:
        status = "throttled"
    elif code == 408:
        status = "timeout"
    elif code >= 500:
        status = "server-error"
    else:
        return DeliveryResult(False, "rejected", permanent=True,
                              detail=f"deliver {where}: HTTP {code}; rejected, not retried")
    wait = "" if retry_after is None else f"; Retry-After {retry_after:.0f} s"
    return DeliveryResult(False, status, retry_after_seconds=retry_after,
                          detail=f"deliver {where}: HTTP {code}{wait}; retryable")


class AppriseChannel:
    """Sends through Apprise (Slack, Teams, Telegram, e-mail, Matrix ...).

    ``body_format`` follows the rendered format (:data:`BODY_FORMATS`); :data:`URL_OPTIONS`
    are added to the URL when absent. Apprise reports only success or failure, not why, so
    every failure is treated as retryable -- a URL Apprise cannot parse is the one permanent
    case. The failure detail is Apprise's own log of the call (warnings and errors), redacted.
    ``timeout_seconds`` bounds the whole Apprise call.
    """

    def __init__(self, redactor: LogRedactor, *, timeout_seconds: float = 30.0) -> None:
        self._redactor = redactor
        self._timeout = timeout_seconds
        self._asset = apprise.AppriseAsset(storage_mode=apprise.PersistentStoreMode.MEMORY)

    def send(self, rendered: Rendered, url: str) -> DeliveryResult:
        url = with_url_options(url)
        secrets, where = self._redactor.protect(url), describe_url(url)
        notifier = apprise.Apprise(asset=self._asset)
        if not notifier.add(with_idempotency_header(url, rendered.idempotency_key)):
            return DeliveryResult(False, "invalid-url", permanent=True,
                                  detail=f"deliver {where}: Apprise cannot use this URL")
        result = notifier.notify(body=rendered.body, title=rendered.title,
                                 body_format=BODY_FORMATS.get(rendered.format, "text"),
                                 timeout=self._timeout, log_level=logging.WARNING)
        if result:
            return DeliveryResult(True, "sent", detail=f"deliver {where}: sent via Apprise")
        status = "timeout" if result.timeout_count else "failed"
        said = "; ".join(redact(entry.message, secrets) for entry in result.logs())
        return DeliveryResult(False, status, detail=f"deliver {where}: Apprise {status}"
                                                    f"{': ' + said if said else ''}; retryable")


def unusable_url(url: str) -> str | None:
    """Why Apprise cannot send to ``url`` (secrets already substituted), or None when it can.
    Never quotes the URL: only its scheme and host (``describe_url``)."""
    if url.split("://", 1)[0].lower() in ("json", "jsons"):
        return None  # ours: WebhookChannel reads it
    if apprise.Apprise.instantiate(with_url_options(url)) is None:
        return f"Apprise cannot use {describe_url(url)} (a wrong or incomplete URL)"
    return None


def with_url_options(url: str) -> str:
    """``url`` with the scheme's :data:`URL_OPTIONS` added where the query lacks them."""
    options = URL_OPTIONS.get(scheme_of(url), {})
    base, _, query = url.partition("?")
    present = {pair.partition("=")[0].lower() for pair in query.split("&") if pair}
    extra = [f"{key}={value}" for key, value in options.items() if key not in present]
    return f"{base}?{'&'.join(filter(None, [query, *extra]))}" if extra else url


def with_idempotency_header(url: str, key: str | None) -> str:
    """An e-mail URL with an ``X-Idempotency-Key`` header carrying ``key``.

    Apprise always writes its own random Message-ID (and RFC 5322 allows only one), so the
    stable key of a message travels in this header: a mail filter or a desk tool can drop a
    repeat by it. Other Apprise schemes have no header to carry it and are left unchanged.
    """
    if not key or scheme_of(url) not in EMAIL_SCHEMES:
        return url
    base, _, query = url.partition("?")
    return f"{base}?{'&'.join(filter(None, [query, f'+{IDEMPOTENCY_HEADER}={key}']))}"


def build_channels(*, timeout_seconds: float = 10.0,
                   clock: Clock = SYSTEM_CLOCK) -> Channels:
    """The production registry; ``close()`` it at shutdown.

    ``timeout_seconds`` bounds each webhook request; an Apprise call, which may make several
    requests, gets three times as long.
    """
    redactor = LogRedactor().install()
    webhook = WebhookChannel(redactor, timeout_seconds=timeout_seconds, clock=clock)
    fallback = AppriseChannel(redactor, timeout_seconds=3 * timeout_seconds)
    return Channels({"json": webhook, "jsons": webhook}, fallback,
                    closers=(webhook.close, redactor.close))

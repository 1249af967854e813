"""Real alert receivers on 127.0.0.1 for tests and benchmarks: a JSON webhook and an SMTP server.

``WebhookReceiver`` records every POST (path, query, headers, JSON body) and misbehaves on
demand: ``fail(500)``, ``fail(429, retry_after=30)``, ``slow(5.0)`` (answers only after that
long, or at once on ``release()``/exit), ``refuse()`` (closes its port: connections are refused)
and ``recover()`` (listens again on the same port, answers 200). ``times=`` limits a failure to
that many requests, after which it answers 200 again. ``answer_with(b"ok", "text/plain")`` sets
what a success says, for an Apprise plugin pointed here that checks the service's own answer
(Slack's webhook answers ``ok``).

``SmtpReceiver`` is an aiosmtpd server, no TLS and no AUTH, recording each message. Apprise
reaches it with a plain ``mailto://`` URL and no user or password, which Apprise sends in its
INSECURE mode (no STARTTLS, no login)::

    mailto://127.0.0.1:PORT?from=monitor@example.org&to=desk@example.org

(``receiver.apprise_url()`` builds it). Both wait on a condition, never sleep:
``wait_for(count, timeout_seconds)`` returns what was received or raises TimeoutError.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Delivery:
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: Any  # the decoded JSON, or the raw text when it is not JSON
    status: int  # what the receiver answered
    raw: bytes = b""  # the body exactly as received
    at: float = field(default_factory=time.time)  # recorded (unix s), after any slow() wait


@dataclass
class _Behaviour:
    status: int = 200
    retry_after: str | None = None
    delay_seconds: float = 0.0
    times: int | None = None  # None: until changed


class _Recorder:
    """A list guarded by a condition, waited on with a deadline."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.items: list[Any] = []

    def add(self, item: Any) -> None:
        with self.condition:
            self.items.append(item)
            self.condition.notify_all()

    def wait_for(self, count: int, timeout_seconds: float, accept: Any = None) -> list[Any]:
        def ready() -> list[Any] | None:
            chosen = [item for item in self.items if accept is None or accept(item)]
            return chosen if len(chosen) >= count else None

        with self.condition:
            if not self.condition.wait_for(ready, timeout_seconds):
                raise TimeoutError(f"expected {count} within {timeout_seconds} s, "
                                   f"got {len(self.items)}: {self.items!r}")
            return ready() or []


class WebhookReceiver:
    """``with WebhookReceiver() as hook: ...; hook.wait_for(1)``; ``hook.url("/x")`` for json://."""

    def __init__(self) -> None:
        self._recorder = _Recorder()
        self._behaviours: list[_Behaviour] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._success = (b"{}", "application/json")
        self._server = self._bind(0)
        self.port = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/hook", scheme: str = "json") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    @property
    def requests(self) -> list[Delivery]:
        with self._recorder.condition:
            return list(self._recorder.items)

    @property
    def accepted(self) -> list[Delivery]:
        return [d for d in self.requests if 200 <= d.status < 300]

    def fail(self, status: int, *, retry_after: int | str | None = None,
             times: int | None = None) -> None:
        ra = None if retry_after is None else str(retry_after)
        self._push(_Behaviour(status=status, retry_after=ra, times=times))

    def answer_with(self, body: bytes, content_type: str = "application/json") -> None:
        """What a 2xx answer carries from now on (default ``{}``)."""
        self._success = (body, content_type)

    def slow(self, delay_seconds: float, *, times: int | None = None) -> None:
        self._push(_Behaviour(delay_seconds=delay_seconds, times=times))

    def release(self) -> None:
        """Let every slow answer go now."""
        self._released.set()

    def refuse(self) -> None:
        """Close the port: connections are refused until ``recover()``."""
        self._stop()

    def recover(self) -> None:
        """Answer 200 again, listening on the same port if ``refuse()`` closed it."""
        with self._lock:
            self._behaviours.clear()
        if self._thread is None:
            self._server = self._bind(self.port)
            self._start()

    def wait_for(self, count: int, timeout_seconds: float = 5.0, *,
                 accepted: bool = True) -> list[Delivery]:
        """The first ``count`` accepted (or, with ``accepted=False``, any) requests."""
        accept = (lambda d: 200 <= d.status < 300) if accepted else None
        return self._recorder.wait_for(count, timeout_seconds, accept)

    def __enter__(self) -> WebhookReceiver:
        self._start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._released.set()
        self._stop()

    def _bind(self, port: int) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        server.daemon_threads = True
        return server

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def _stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._thread = None

    def _push(self, behaviour: _Behaviour) -> None:
        with self._lock:
            self._behaviours = [behaviour]

    def _next_behaviour(self) -> _Behaviour:
        with self._lock:
            if not self._behaviours:
                return _Behaviour()
            current = self._behaviours[0]
            if current.times is not None:
                current.times -= 1
                if current.times <= 0:
                    self._behaviours.pop(0)
            return current

    def _record(self, delivery: Delivery) -> None:
        self._recorder.add(delivery)


class _WebhookHandler(BaseHTTPRequestHandler):
    receiver: WebhookReceiver
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: as real servers do, do not let Nagle hold the
    # body for the client's delayed ACK (40 ms an answer on a kept-alive connection).
    disable_nagle_algorithm = True

    def do_POST(self) -> None:  # noqa: N802
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        behaviour = self.receiver._next_behaviour()
        if behaviour.delay_seconds:
            self.receiver._released.wait(behaviour.delay_seconds)
        parts = urlsplit(self.path)
        self.receiver._record(Delivery(
            path=parts.path, query=dict(parse_qsl(parts.query)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=_json_or_text(raw), status=behaviour.status, raw=raw))
        headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after else {}
        self._answer(behaviour.status, headers)

    def _answer(self, status: int, headers: dict[str, str]) -> None:
        body, content_type = self.receiver._success
        if status >= 300:
            body, content_type = b'{"error": "on demand"}', "application/json"
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(status)
            for name, value in {"Content-Type": content_type, **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def _handler_for(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    return type("WebhookHandler", (_WebhookHandler,), {"receiver": receiver})


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


@dataclass(frozen=True)
class Mail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage = field(repr=False)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def body(self, subtype: str = "html") -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        return "" if part is None else str(part.get_content())


class _MailHandler:
    def __init__(self, recorder: _Recorder) -> None:
        self._recorder = recorder

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self._recorder.add(Mail(envelope.mail_from, tuple(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


class SmtpReceiver:
    """``with SmtpReceiver() as smtp: ...; smtp.wait_for(1)[0].subject``."""

    def __init__(self) -> None:
        self._recorder = _Recorder()
        self.port = free_port()
        self._controller = Controller(_MailHandler(self._recorder), hostname="127.0.0.1",
                                      port=self.port)

    def apprise_url(self, to: str = "desk@example.org",
                    sender: str = "monitor@example.org") -> str:
        return f"mailto://127.0.0.1:{self.port}?from={sender}&to={to}"

    @property
    def messages(self) -> list[Mail]:
        with self._recorder.condition:
            return list(self._recorder.items)

    def wait_for(self, count: int, timeout_seconds: float = 10.0) -> list[Mail]:
        return self._recorder.wait_for(count, timeout_seconds)

    def __enter__(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._controller.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

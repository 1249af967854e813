"""A real HTTP feed server on 127.0.0.1 for tests and benchmarks.

Serves registered bodies with ETag and Last-Modified, answers conditional requests with 304,
and can misbehave on demand (status codes, Retry-After, redirects, slow answers, gzip).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import ipaddress
import threading
import time
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# The fetcher refuses loopback addresses unless allowed (SSRF guard); fetchers built by tests
# that poll this server allow them with FetchLimits(allowed_networks=LOOPBACK).
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


@dataclass(frozen=True)
class Route:
    body: bytes = b""
    content_type: str = "application/rss+xml; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    conditional: bool = True  # honour If-None-Match / If-Modified-Since
    gzip: bool = False  # send with Content-Encoding: gzip
    delay_seconds: float = 0.0


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    status: int
    at: float


class FeedServer:
    """``with FeedServer() as server: server.set("/a.xml", body); server.url("/a.xml")``."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests ever served at the same moment
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def set(self, path: str, body: bytes, **options: Any) -> Route:
        """Serve ``body`` at ``path``; a new body gets a new ETag and Last-Modified."""
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        route = Route(body=body, etag=etag, last_modified=formatdate(usegmt=True), **options)
        with self._lock:
            self._routes[path] = route
        return route

    def set_file(self, path: str, file: Path, **options: Any) -> Route:
        return self.set(path, file.read_bytes(), **options)

    def change(self, path: str, **options: Any) -> None:
        """Alter how ``path`` is served (status, headers ...) keeping its body and validators."""
        with self._lock:
            self._routes[path] = replace(self._routes.get(path, Route()), **options)

    def route(self, path: str) -> Route | None:
        with self._lock:
            return self._routes.get(path)

    def hits(self, path: str) -> list[Request]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def __enter__(self) -> FeedServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class _FeedHandler(BaseHTTPRequestHandler):
    feeds: FeedServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: as real servers do, do not let Nagle hold the
    # body for the client's delayed ACK (40 ms an answer on a kept-alive connection).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802
        self.feeds.enter()
        try:
            self._serve()
        finally:
            self.feeds.leave()

    def _serve(self) -> None:
        route = self.feeds.route(self.path)
        if route is None:
            self._send(404, b"not found", {"Content-Type": "text/plain"})
            return
        if route.delay_seconds:
            time.sleep(route.delay_seconds)
        if route.status == 200 and route.conditional and self._not_modified(route):
            self._send(304, b"", self._validators(route))
            return
        body = gzip.compress(route.body) if route.gzip else route.body
        headers = {"Content-Type": route.content_type, **self._validators(route),
                   **route.headers}
        if route.gzip:
            headers["Content-Encoding"] = "gzip"
        self._send(route.status, body if route.status != 304 else b"", headers)

    def _not_modified(self, route: Route) -> bool:
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            return if_none_match == route.etag
        return self.headers.get("If-Modified-Since") == route.last_modified

    def _validators(self, route: Route) -> dict[str, str]:
        return _validators(route)

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.feeds.record(Request(self.path, dict(self.headers), status, time.time()))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # The client may have given up (a size limit or a timeout under test).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def _handler_for(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    return type("FeedHandler", (_FeedHandler,), {"feeds": server})


def _validators(route: Route) -> dict[str, str]:
    if not route.conditional:
        return {}
    return {"ETag": route.etag or "", "Last-Modified": route.last_modified or ""}

"""A hostile feed server on a loopback address: one path per attack on the fetch path.

Each path misbehaves the way a stranger's server can (tests/hostile/ drives the real fetcher and
the real daemon against it):

    /slow-body          headers at once, then one byte of body a second, for ever
    /slow-headers       the status line, then one header byte a second, for ever
    /gzip-raw-bomb      a gzip file of ``bomb_bytes`` zeros, served without Content-Encoding
    /gzip-encoded-bomb  the same with Content-Encoding: gzip
    /deflate-bomb       zeros as Content-Encoding: deflate
    /redirect?to=URL    302 to URL (absolute, with userinfo if the test wants)
    /redirect-loop      302 to itself
    /auth-echo          a feed whose one item's title says which Authorization header came
    /feed/NAME          a registered body (``set``), with an ETag
    /status/NNN         that status, with a small body

Every request is recorded (path and headers) so a test can show what was, or was not, sent.
"""

from __future__ import annotations

import functools
import socket
import sys
import threading
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Seen:
    path: str
    headers: dict[str, str]


@functools.cache
def compressed_zeros(total_bytes: int, wbits: int) -> bytes:
    """``total_bytes`` zeros compressed (gzip: wbits 31, zlib: 15) without holding them all."""
    encoder = zlib.compressobj(9, zlib.DEFLATED, wbits)
    zeros = bytes(_CHUNK)
    parts = [encoder.compress(zeros) for _ in range(total_bytes // _CHUNK)]
    return b"".join(parts) + encoder.flush()


def rss(*titles: str, link_base: str = "https://example.org/story") -> bytes:
    """A small RSS 2.0 document, one item per title, declared UTF-8."""
    items = "".join(f"<item><title>{title}</title><link>{link_base}/{index}</link></item>"
                    for index, title in enumerate(titles))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>hostile</title>{items}</channel></rss>").encode()


class HostileServer:
    """``with HostileServer("127.0.0.1") as server: server.url("/slow-body")``."""

    def __init__(self, host: str = "127.0.0.1", bomb_bytes: int = 64 << 20) -> None:
        self.host = host
        self.seen: list[Seen] = []
        self.feeds: dict[str, bytes] = {}
        self.stop = threading.Event()  # ends every slow answer
        self._lock = threading.Lock()
        self._gzip_bomb = compressed_zeros(bomb_bytes, 31)
        self._deflate_bomb = compressed_zeros(bomb_bytes, 15)
        self._server = _QuietServer((host, 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str, userinfo: str = "") -> str:
        return f"http://{userinfo + '@' if userinfo else ''}{self.host}:{self.port}{path}"

    def set(self, name: str, body: bytes) -> str:
        with self._lock:
            self.feeds[name] = body
        return self.url(f"/feed/{name}")

    def requests_to(self, path: str) -> list[Seen]:
        with self._lock:
            return [seen for seen in self.seen if urlsplit(seen.path).path == path]

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def body(self, name: str) -> bytes | None:
        with self._lock:
            return self.feeds.get(name)

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self._server.shutdown()
        self._server.server_close()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that gave up on a slow answer: expected here, not news
        super().handle_error(request, client_address)


def _handler_for(server: HostileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_HostileHandler):
        hostile = server

    return Handler


class _HostileHandler(BaseHTTPRequestHandler):
    hostile: HostileServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in separate writes; without this, Nagle and the client's
        # delayed ACK add ~40 ms to every answer (which bench/hostile.py would measure).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.hostile.record(Seen(self.path, dict(self.headers.items())))
        path = urlsplit(self.path).path
        routes = {
            "/slow-body": self._slow_body, "/slow-headers": self._slow_headers,
            "/gzip-raw-bomb": lambda: self._send(200, self.hostile._gzip_bomb),
            "/gzip-encoded-bomb": lambda: self._send(
                200, self.hostile._gzip_bomb, {"Content-Encoding": "gzip"}),
            "/deflate-bomb": lambda: self._send(
                200, self.hostile._deflate_bomb, {"Content-Encoding": "deflate"}),
            "/redirect": self._redirect, "/redirect-loop": self._redirect_loop,
            "/auth-echo": self._auth_echo,
        }
        try:
            if path in routes:
                routes[path]()
            elif path.startswith("/feed/"):
                self._feed(path.removeprefix("/feed/"))
            elif path.startswith("/status/"):
                self._send(int(path.removeprefix("/status/")), b"no")
            else:
                self._send(404, b"unknown path")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on us: that is what the tests want to see

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drip(self, data: bytes) -> None:
        """One byte a second until the client leaves or the server stops."""
        for byte in data:
            if self.hostile.stop.wait(1.0):
                return
            self.wfile.write(bytes([byte]))
            self.wfile.flush()

    def _slow_body(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        self.end_headers()  # no length: the body ends when the connection does
        self.wfile.flush()
        self._drip(rss("never finished") * 1000)

    def _slow_headers(self) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        self.wfile.flush()
        self._drip(b"X-Slow: " + b"a" * 100_000)

    def _redirect(self) -> None:
        target = parse_qs(urlsplit(self.path).query).get("to", [""])[0]
        self._send(302, b"", {"Location": target})

    def _redirect_loop(self) -> None:
        self._send(302, b"", {"Location": "/redirect-loop"})

    def _auth_echo(self) -> None:
        said = self.headers.get("Authorization") or "none"
        self._send(200, rss(f"authorization {said}"))

    def _feed(self, name: str) -> None:
        body = self.hostile.body(name)
        if body is None:
            self._send(404, b"no such feed")
        else:
            self._send(200, body)

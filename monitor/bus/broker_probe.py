"""Does a Kafka broker answer? One ApiVersions request (v0) over a socket of its own.

A TCP connection alone would say yes too early: a restarting broker accepts connections before
it serves requests. ApiVersions is the request every client sends first, answered before any
authentication (so also on SASL listeners) and by every broker version; the probe only checks
that an answer with its correlation id comes back. It uses no kafka-python client, so it adds
no reconnect loop and no log lines of the library's.
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Callable, Sequence

API_VERSIONS, VERSION_0 = 18, 0
_CORRELATION_ID = 0x6D6F6E  # "mon"
_CLIENT_ID = b"monitor-probe"

# (servers, tls, timeout_seconds) -> None when one server answered, else why none did.
Probe = Callable[[Sequence[str], bool, float], str | None]


def probe_broker(servers: Sequence[str], tls: bool, timeout_seconds: float) -> str | None:
    """Ask each ``host:port`` in turn; None as soon as one answers, else the last reason."""
    reason = "no bootstrap servers configured"
    for server in servers:
        try:
            _ask(server, tls, timeout_seconds)
        except (OSError, ValueError) as exc:
            reason = _describe(exc)
            continue
        return None
    return reason


def _ask(server: str, tls: bool, timeout_seconds: float) -> None:
    host, port = split_server(server)
    with socket.create_connection((host, port), timeout=timeout_seconds) as raw:
        sock = _wrap(raw, host) if tls else raw
        sock.sendall(api_versions_request())
        size, correlation_id = struct.unpack(">ii", _read(sock, 8))
        if size < 4 or correlation_id != _CORRELATION_ID:
            raise ValueError(f"unexpected answer (size {size}, correlation id {correlation_id})")


def api_versions_request() -> bytes:
    header = struct.pack(">hhih", API_VERSIONS, VERSION_0, _CORRELATION_ID, len(_CLIENT_ID))
    body = header + _CLIENT_ID  # ApiVersions v0 has an empty body
    return struct.pack(">i", len(body)) + body


def split_server(server: str) -> tuple[str, int]:
    """``host:port`` or ``[v6 address]:port``; ValueError naming the server otherwise."""
    host, sep, port = server.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"bootstrap server {server!r} is not host:port")
    return host.strip("[]"), int(port)


def _wrap(raw: socket.socket, host: str) -> socket.socket:
    # The probe sends nothing secret and only asks whether TLS and Kafka answer; the clients,
    # which do send credentials, verify the certificate as configured.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket(raw, server_hostname=host)


def _read(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionResetError("the broker closed the connection without answering")
        data += chunk
    return data


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer within the probe's timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc) or type(exc).__name__

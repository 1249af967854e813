"""The network under every feed request: which addresses may be reached, and by when.

Two guarantees the rest of the fetch path cannot give on its own:

- **No request reaches an internal address** (server-side request forgery through a feed URL or
  a redirect): every connection is opened here, to an address this module resolved and checked
  itself, so the address checked is the address connected to and DNS cannot smuggle another
  one in. Loopback, private, link-local, shared (CGNAT), multicast, unspecified and reserved
  addresses are refused unless ``MONITOR_POLL__ALLOWED_NETWORKS`` lists a network holding them.
- **A request ends by its deadline** whatever the server does (one byte a second, headers that
  never end): every read waits at most until the deadline of the request in progress, checked
  again at least every ``TICK_SECONDS``, and :meth:`Deadlines.stop` ends every request in
  progress within its grace period (shutdown).

httpx takes no network backend of its own, but its connection pool (httpcore) does:
:class:`GuardedTransport` is httpx's transport with the pool built over :class:`GuardedBackend`.
Name resolution (``getaddrinfo``) cannot be interrupted, so it runs in a thread of its own and
the request stops waiting for it at its deadline like for anything else.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

from monitor.clock import SYSTEM_CLOCK, Clock

TICK_SECONDS = 0.5
# httpcore asks for 64 KiB a read; each read is a round through h11's event machinery, which
# costs more CPU than the bytes: a 220 KB body in 4-5 rounds instead of one or two. The body's
# own bound is the fetcher's (max_body_bytes); this only sizes one recv.
READ_BYTES = 256 * 1024
ALLOWED_NETWORKS_SETTING = "MONITOR_POLL__ALLOWED_NETWORKS"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., list[tuple[Any, ...]]]  # socket.getaddrinfo's shape


class AddressRefused(httpcore.ConnectError):
    """Every address of the host is one the policy refuses. The message names it."""


class DeadlineExceeded(httpcore.ReadTimeout):
    """The request in progress passed its deadline (or the fetcher is stopping)."""


class AddressPolicy:
    """Default-deny for every address that is not globally routable, with operator exceptions."""

    def __init__(self, allowed: Iterable[IPNetwork] = ()) -> None:
        self._allowed = tuple(allowed)

    def refusal(self, address: IPAddress) -> str | None:
        """Why ``address`` may not be reached, or None when it may."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        if any(address.version == net.version and address in net for net in self._allowed):
            return None
        kind = _kind(address)
        return None if kind is None else f"{address} is a {kind} address"


def _kind(address: IPAddress) -> str | None:
    checks = (("loopback", address.is_loopback), ("link-local", address.is_link_local),
              ("multicast", address.is_multicast), ("unspecified", address.is_unspecified),
              ("reserved", address.is_reserved), ("private", address.is_private))
    for kind, matches in checks:
        if matches:
            return kind
    return None if address.is_global else "non-public"


class Deadlines:
    """The deadline of the request the current thread is making, and a process-wide stop."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._current: ContextVar[float | None] = ContextVar("request_deadline", default=None)
        self._stop_at: float | None = None

    @contextlib.contextmanager
    def request(self, seconds: float) -> Iterator[None]:
        token = self._current.set(self._clock.monotonic() + seconds)
        try:
            yield
        finally:
            self._current.reset(token)

    def stop(self, grace_seconds: float) -> None:
        """End every request in progress within ``grace_seconds``; later ones fail at once."""
        self._stop_at = self._clock.monotonic() + grace_seconds

    @property
    def stopping(self) -> bool:
        return self._stop_at is not None

    def remaining(self) -> float | None:
        """Seconds left for the current request (<= 0: over), None when nothing bounds it."""
        bounds = [t for t in (self._current.get(), self._stop_at) if t is not None]
        return min(bounds) - self._clock.monotonic() if bounds else None

    def wait_seconds(self, timeout: float | None) -> float:
        """How long the next blocking call may wait; DeadlineExceeded when time is up."""
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded("stopping" if self.stopping else "deadline passed")
        waits = [w for w in (timeout, remaining) if w is not None]
        return min([*waits, TICK_SECONDS])


class GuardedStream(httpcore.NetworkStream):
    """A connected stream whose reads and writes end by the request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadlines: Deadlines) -> None:
        self._inner, self._deadlines = inner, deadlines

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # The caller's own timeout is counted on the real clock, as the socket counts it.
        started = time.monotonic()
        while True:
            wait = self._deadlines.wait_seconds(timeout)
            try:
                return self._inner.read(max(max_bytes, READ_BYTES), wait)
            except httpcore.ReadTimeout:
                # Our tick ended, not the caller's own read timeout: look at the deadline again.
                if timeout is not None and time.monotonic() - started >= timeout:
                    raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # One bounded call: retrying a half-sent buffer would send its start twice.
        remaining = self._deadlines.remaining()
        limit = [w for w in (timeout, remaining) if w is not None]
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded("deadline passed")
        self._inner.write(buffer, min(limit) if limit else None)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        remaining = self._deadlines.remaining()
        bounded = min(w for w in (timeout, remaining, 3600.0) if w is not None)
        return GuardedStream(self._inner.start_tls(ssl_context, server_hostname, bounded),
                             self._deadlines)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """Opens TCP connections only to addresses the policy allows, within the deadline."""

    def __init__(self, policy: AddressPolicy, deadlines: Deadlines,
                 resolver: Resolver = socket.getaddrinfo) -> None:
        self._policy, self._deadlines, self._resolver = policy, deadlines, resolver
        self._sync = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        addresses = self._resolve(host, port)
        verdicts = [(address, self._policy.refusal(address[0])) for address in addresses]
        allowed = [address for address, why in verdicts if why is None]
        if not allowed:
            raise AddressRefused(
                f"refused to connect to {host} ({verdicts[0][1]}); allow it with "
                f"{ALLOWED_NETWORKS_SETTING} if this feed is meant to be internal"
            )
        return GuardedStream(self._connect(allowed, port, timeout, socket_options),
                             self._deadlines)

    def _resolve(self, host: str, port: int) -> list[tuple[IPAddress, tuple[Any, ...], int]]:
        lookup = self._lookup(host, port)
        while True:
            wait = self._deadlines.wait_seconds(None)  # DeadlineExceeded when time is up
            try:
                infos = lookup.result(timeout=wait)
                break
            except FutureTimeout:
                continue
            except (OSError, UnicodeError) as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        return [(ipaddress.ip_address(str(info[4][0]).split("%")[0]), info[4], info[0])
                for info in infos]

    def _lookup(self, host: str, port: int) -> Future[list[tuple[Any, ...]]]:
        """getaddrinfo cannot be interrupted: it runs in a daemon thread of its own, which the
        request waits for only until its deadline (and which never holds up process exit)."""
        lookup: Future[list[tuple[Any, ...]]] = Future()

        def run() -> None:
            try:
                lookup.set_result(self._resolver(host, port, type=socket.SOCK_STREAM))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting request
                lookup.set_exception(exc)

        threading.Thread(target=run, name=f"resolve {host}", daemon=True).start()
        return lookup

    def _connect(self, addresses: list[tuple[IPAddress, tuple[Any, ...], int]], port: int,
                 timeout: float | None,
                 socket_options: Iterable[Any] | None) -> httpcore.NetworkStream:
        last: httpcore.ConnectError | None = None
        for _address, sockaddr, _family in addresses:
            remaining = self._deadlines.remaining()
            wait = min(w for w in (timeout, remaining, 3600.0) if w is not None)
            if wait <= 0:
                raise httpcore.ConnectTimeout("deadline passed while connecting")
            try:
                # An address literal: httpcore connects to exactly the address checked above.
                return self._sync.connect_tcp(str(sockaddr[0]), port, wait,
                                              socket_options=socket_options)
            except httpcore.ConnectTimeout:
                raise
            except httpcore.ConnectError as exc:  # refused or unreachable: try the next address
                last = exc
        raise last or httpcore.ConnectError("no address to connect to")

    def sleep(self, seconds: float) -> None:
        self._sync.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's HTTP/1.1 transport with its connection pool built over :class:`GuardedBackend`."""

    def __init__(self, backend: GuardedBackend, ssl_context: ssl.SSLContext | None = None,
                 max_keepalive_connections: int | None = None) -> None:
        super().__init__(http2=False)
        limits = httpx.Limits()  # httpx's own defaults, which httpcore's pool does not share
        # HTTPTransport builds its pool in __init__ and accepts no backend; replace the pool.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=(limits.max_keepalive_connections
                                       if max_keepalive_connections is None
                                       else max_keepalive_connections),
            keepalive_expiry=limits.keepalive_expiry, http1=True, http2=False,
            network_backend=backend,
        )

    def handle_core(self, request: httpcore.Request) -> httpcore.Response:
        """httpcore's request straight to the pool: httpcore's response and exceptions
        (``direct.py``), none of httpx's wrapping."""
        return self._pool.handle_request(request)

"""The desk's HTTP server: the application of :mod:`monitor.desk.app` served by waitress.

Waitress is a production WSGI server whose event loop runs on one thread we own (requests
are handled by its small pool of worker threads), so the desk lives inside ``monitor run``
as well as in ``monitor desk``. The constructor only checks the settings (ConfigError names
the setting: credentials, an address nothing can listen on); ``start`` binds and serves;
``stop`` closes the listening socket and every connection from inside the loop, then waits
for the workers.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Any, Protocol, cast

from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server

from monitor.config.settings import Settings
from monitor.desk.app import Claims, create_app
from monitor.desk.auth import access_from
from monitor.desk.view import DeskView
from monitor.errors import ConfigError

log = logging.getLogger(__name__)

WORKER_THREADS = 4  # a newsroom screen or two and some feed readers
STOP_TIMEOUT_SECONDS = 10


class _Trigger(Protocol):
    """Waitress's wake-up pipe: runs a callable on the loop thread (the stubs say int)."""

    def pull_trigger(self, thunk: Callable[[], None] | None = None) -> None: ...


class DeskServer:
    """Serves the desk on a background thread at ``settings.desk.address`` (port 0: any).

    ``claims`` gives the current claims (a sequence, or by id as ClaimRegistry.current does);
    it is asked on every request, so a reloaded claims file shows at once."""

    def __init__(self, view: DeskView, claims: Claims, settings: Settings) -> None:
        self._desk = settings.desk
        self._app = create_app(view, claims, access_from(settings.desk),
                               settings.http.public_url)
        self._map: dict[int, Any] = {}  # fd -> waitress's dispatchers; ours to close
        self._server: BaseWSGIServer | None = None
        self._port: int | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("desk: the port is known once the server has started")
        return self._port

    def start(self) -> None:
        listening = self._bind()
        self._port = int(listening.getsockname()[1])
        server = create_server(self._app, map=self._map, sockets=[listening],
                               threads=WORKER_THREADS, ident="claim-monitor desk")
        self._server = cast(BaseWSGIServer, server)  # one socket: never a MultiSocketServer
        self._thread = threading.Thread(target=server.run, name="desk-http", daemon=True)
        self._thread.start()
        log.info("desk: serving on http://%s:%d/", self._desk.host, self.port)

    def stop(self) -> None:
        """Stop serving; a second call does nothing."""
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is None or thread is None:
            return
        try:
            cast(_Trigger, server.trigger).pull_trigger(self._close_all)
        except OSError as exc:
            # The loop's wake-up pipe is gone (seen once in CI: EBADF, its fd closed under
            # it). Close the dispatchers from here: the loop ends within its 1 s poll when
            # it finds its map empty.
            log.warning("desk: cannot wake the server loop (%s); closing its sockets directly",
                        exc)
            self._close_all()
        thread.join(STOP_TIMEOUT_SECONDS)
        server.task_dispatcher.shutdown(timeout=STOP_TIMEOUT_SECONDS)
        if thread.is_alive():
            raise RuntimeError("desk: the server loop did not stop")

    def _close_all(self) -> None:
        wasyncore.close_all(self._map)  # an empty map ends the loop

    def _bind(self) -> socket.socket:
        host, port = self._desk.host, self._desk.port
        try:
            return socket.create_server((host, port))
        except OSError as exc:
            raise ConfigError(f"desk: cannot listen on {host}:{port} (MONITOR_DESK__ADDRESS): "
                              f"{exc.strerror or exc}") from exc

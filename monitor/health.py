"""The HTTP endpoints ops and Prometheus use: /metrics, /healthz, /readyz.

/healthz answers 200 while the process lives. /readyz answers 200 only when every registered
readiness check passes, and 503 naming the checks that fail otherwise. The same checks are
exported on every scrape as ``monitor_ready{check}``, so Prometheus can page on them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from monitor.errors import ConfigError
from monitor.metrics import ReadinessCollector

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], bool]


class HealthServer:
    """Serves the endpoints on a background thread; ``port`` is the bound port (0 -> any)."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        self._checks: dict[str, ReadinessCheck] = {}
        handler = _make_handler(registry, self._failing_checks)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(f"http: cannot listen on {host}:{port}: {exc.strerror}") from exc
        self._server.daemon_threads = True
        self._registry = registry
        self._readiness = ReadinessCollector(self._check_results)
        registry.register(self._readiness)
        self._thread = threading.Thread(target=self._server.serve_forever, name="health-http",
                                        daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def add_check(self, name: str, check: ReadinessCheck) -> None:
        self._checks[name] = check

    def _check_results(self) -> dict[str, bool]:
        results = {}
        for name, check in list(self._checks.items()):
            try:
                results[name] = bool(check())
            except Exception:  # a check that raises is a failing check, not a crashed server
                log.exception("readyz: check %s raised", name)
                results[name] = False
        return results

    def _failing_checks(self) -> list[str]:
        return [name for name, ok in self._check_results().items() if not ok]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._registry.unregister(self._readiness)


def _make_handler(
    registry: CollectorRegistry, failing_checks: Callable[[], list[str]]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._reply(200, b"ok\n")
            elif path == "/readyz":
                failing = failing_checks()
                if failing:
                    self._reply(503, f"not ready: {', '.join(failing)}\n".encode())
                else:
                    self._reply(200, b"ready\n")
            else:
                self._reply(404, b"not found\n")

        def _reply(self, status: int, body: bytes,
                   content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            """Scrapes every few seconds are not worth a log line each."""

    return Handler

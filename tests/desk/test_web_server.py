"""DeskServer: serves on a thread at the bound port, and stops even with connections open."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest

from monitor.desk.view import MemoryDeskView
from monitor.desk.web import DeskServer
from monitor.errors import ConfigError
from tests.desk.webdesk import CLAIMS, desk_matches, settings


def test_serves_on_the_bound_port_and_stops_with_a_connection_kept_alive() -> None:
    server = DeskServer(MemoryDeskView(desk_matches()), lambda: CLAIMS, settings())
    with pytest.raises(RuntimeError, match="once the server has started"):
        server.port  # noqa: B018 - the property is what is tested
    server.start()
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as kept_alive:
        assert kept_alive.get("/api/claims").status_code == 200
        assert kept_alive.get("/claims/generals-2022").status_code == 200
        server.stop()  # the client still holds its connection open
    server.stop()  # a second stop does nothing
    assert not [t for t in threading.enumerate() if t.name == "desk-http"]
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", server.port)) != 0  # nothing listens any more


def test_an_address_in_use_is_a_config_error_naming_the_setting() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        server = DeskServer(MemoryDeskView(), lambda: CLAIMS,
                            settings(address=f"127.0.0.1:{port}"))
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}.*MONITOR_DESK__ADDRESS"):
            server.start()


def test_stop_before_start_does_nothing() -> None:
    DeskServer(MemoryDeskView(), lambda: CLAIMS, settings()).stop()

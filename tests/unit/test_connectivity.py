"""The broker watch: one line when the broker goes, one when it is back, readiness after a grace.

The clock is injected and advanced by hand; the probe is a stand-in that answers as told (the
real probe is tested below against sockets on 127.0.0.1, and against the real broker in
tests/integration/test_broker_outage.py).
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Sequence

import pytest

from monitor.bus.broker_probe import api_versions_request, probe_broker, split_server
from monitor.bus.connectivity import BrokerWatch, Reachability
from monitor.config.settings import KafkaSettings
from tests.support.clock import ManualClock
from tests.support.waiting import eventually

START = 1_790_000_000.0  # 2026-09-21T14:13:20Z


class Probe:
    """Answers with ``failure`` (None: the broker answered) and counts the calls."""

    def __init__(self) -> None:
        self.failure: str | None = None
        self.calls = 0

    def __call__(self, servers: Sequence[str], tls: bool, timeout_seconds: float) -> str | None:
        self.calls += 1
        return self.failure


def kafka_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "monitor.bus.connectivity" and r.levelno == level]


def test_an_outage_is_one_warning_and_one_info_whatever_the_number_of_failures(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="monitor.bus.connectivity")
    clock = ManualClock(now=START)
    link = Reachability("127.0.0.1:9092", clock=clock)
    link.succeeded()  # up and told so again: nothing to say
    for _ in range(20):
        link.failed("connection refused")
        clock.advance(2.05)
    assert link.down and link.down_for() == pytest.approx(41.0)
    link.succeeded()
    link.succeeded()
    assert kafka_lines(caplog, logging.WARNING) == [
        "kafka: broker 127.0.0.1:9092 unreachable since 2026-09-21T14:13:20Z: "
        "connection refused"]
    assert kafka_lines(caplog, logging.INFO) == [
        "kafka: broker 127.0.0.1:9092 reachable again after 41 s"]
    assert not link.down and link.down_for() == 0.0


def test_a_second_outage_is_said_again(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="monitor.bus.connectivity")
    link = Reachability("b:9092", clock=ManualClock(now=START))
    for _ in range(2):
        link.failed("connection refused")
        link.succeeded()
    assert len(kafka_lines(caplog, logging.WARNING)) == 2
    assert len(kafka_lines(caplog, logging.INFO)) == 2


def test_readiness_fails_only_after_the_grace_and_comes_back_with_the_first_answer() -> None:
    clock, probe = ManualClock(now=START), Probe()
    watch = BrokerWatch(KafkaSettings(bootstrap_servers=("b:9092",)), probe=probe, clock=clock)
    assert watch.check() and watch.is_ready(15)
    probe.failure = "connection refused"
    assert not watch.check()
    clock.advance(15)
    assert watch.is_ready(15)
    clock.advance(0.5)
    assert not watch.is_ready(15)
    probe.failure = None
    watch.check()
    assert watch.is_ready(15)


def test_a_failing_stage_probes_at_once_unless_a_probe_just_answered() -> None:
    clock, probe = ManualClock(now=START), Probe()
    watch = BrokerWatch(KafkaSettings(bootstrap_servers=("b:9092",)), probe=probe, clock=clock)
    assert watch.level_for_failure() == logging.WARNING  # the broker answers: the stage's own
    assert probe.calls == 1
    probe.failure = "connection refused"
    assert watch.level_for_failure() == logging.WARNING  # answered 0 s ago: not asked again
    assert probe.calls == 1
    clock.advance(1)
    assert watch.level_for_failure() == logging.DEBUG  # asked, found gone, said once
    assert probe.calls == 2 and watch.reachability.down


def test_the_probe_thread_notices_an_outage_by_itself() -> None:
    probe = Probe()
    probe.failure = "connection refused"
    watch = BrokerWatch(KafkaSettings(bootstrap_servers=("b:9092",)), probe=probe)
    watch.start()
    try:
        eventually(lambda: watch.reachability.down, 5, "the outage noticed")
    finally:
        watch.close()


# -- the probe, on real sockets ----------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server
    server.close()


def serve_once(server: socket.socket, answer: Callable[[bytes], bytes] | None
               ) -> threading.Thread:
    """Accept one connection, read the request, send ``answer(request)`` (None: close)."""

    def run() -> None:
        conn, _ = server.accept()
        with conn:
            size = struct.unpack(">i", conn.recv(4))[0]
            request = conn.recv(size)
            assert request[:4] == struct.pack(">hh", 18, 0)  # ApiVersions v0
            if answer is not None:
                conn.sendall(answer(request))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def address(server: socket.socket) -> str:
    return f"127.0.0.1:{server.getsockname()[1]}"


def test_a_broker_that_answers_with_our_correlation_id_is_reachable(
        listener: socket.socket) -> None:
    def answer(request: bytes) -> bytes:
        return struct.pack(">i", 10) + request[4:8] + b"\x00" * 6  # size, correlation id, body

    thread = serve_once(listener, answer)
    assert probe_broker(["127.0.0.1:1", address(listener)], False, 2.0) is None
    thread.join(timeout=5)


def test_a_port_that_accepts_but_does_not_answer_is_not_a_broker(
        listener: socket.socket) -> None:
    serve_once(listener, None)
    assert "closed the connection" in (probe_broker([address(listener)], False, 2.0) or "")


def test_a_refused_connection_is_named(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    listener.close()
    assert probe_broker([f"127.0.0.1:{port}"], False, 2.0) == "connection refused"


@pytest.mark.parametrize(("server", "expected"), [
    ("broker-1:9092", ("broker-1", 9092)),
    ("[::1]:9092", ("::1", 9092)),
], ids=["name", "ipv6"])
def test_bootstrap_servers_are_split(server: str, expected: tuple[str, int]) -> None:
    assert split_server(server) == expected


def test_a_server_without_a_port_is_named_in_the_reason() -> None:
    assert probe_broker(["broker-1"], False, 1.0) == (
        "bootstrap server 'broker-1' is not host:port")


def test_the_request_is_a_sized_api_versions_v0_frame() -> None:
    frame = api_versions_request()
    assert struct.unpack(">i", frame[:4])[0] == len(frame) - 4
    assert struct.unpack(">hh", frame[4:8]) == (18, 0)

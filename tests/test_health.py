"""/metrics, /healthz and /readyz over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry

from monitor.health import HealthServer
from monitor.metrics import Metrics, PollOutcome
from monitor.model import FeedState


@pytest.fixture
def served() -> Iterator[tuple[HealthServer, Metrics, str]]:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    server = HealthServer("127.0.0.1", 0, registry)
    server.start()
    yield server, metrics, f"http://127.0.0.1:{server.port}"
    server.stop()


def test_metrics_are_exposed_in_prometheus_text_format(served) -> None:
    _, metrics, base = served
    metrics.init_feed("ria-world")
    metrics.feeds.record_poll(PollOutcome.NOT_MODIFIED, FeedState("ria-world"))
    response = httpx.get(f"{base}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    body = response.text
    assert 'monitor_feed_polls_total{feed="ria-world",outcome="not_modified"} 1.0' in body
    assert 'monitor_feed_polls_total{feed="ria-world",outcome="fetch_error"} 0.0' in body
    assert "monitor_build_info{" in body


def test_readyz_names_the_failing_checks_and_healthz_stays_up(served) -> None:
    server, _, base = served
    state = {"kafka": True}
    server.add_check("scheduler", lambda: True)
    server.add_check("kafka", lambda: state["kafka"])
    assert httpx.get(f"{base}/readyz").status_code == 200
    state["kafka"] = False
    response = httpx.get(f"{base}/readyz")
    assert response.status_code == 503 and "kafka" in response.text
    assert "scheduler" not in response.text
    assert httpx.get(f"{base}/healthz").status_code == 200


def test_a_check_that_raises_counts_as_not_ready(served) -> None:
    server, _, base = served

    def broken() -> bool:
        raise RuntimeError("boom")

    server.add_check("broken", broken)
    assert httpx.get(f"{base}/readyz").status_code == 503


def test_unknown_paths_are_404(served) -> None:
    assert httpx.get(f"{served[2]}/nope").status_code == 404


def test_a_port_in_use_is_a_config_error(served) -> None:
    from monitor.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot listen on 127.0.0.1"):
        HealthServer("127.0.0.1", served[0].port, CollectorRegistry())

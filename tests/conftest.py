"""Shared fixtures: the real data folder, a real feed server, a real Kafka broker."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.feed_server import FeedServer
from tests.support.kafka_broker import LocalKafka, free_port
from tests.support.receivers import SmtpReceiver, WebhookReceiver

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DATA_DIR", REPO.parent / "shared"))
REAL_FEEDS = SHARED / "feeds" / "real"


def pytest_configure(config: pytest.Config) -> None:
    # Sentence vectors computed by tests go to a cache of the run's own, not the user's.
    cache = Path(tempfile.gettempdir(), "monitor-test-embeddings.sqlite3")
    os.environ.setdefault("MONITOR_MATCH__EMBEDDING_CACHE", str(cache))
    # The suite serves its feeds on 127.0.0.1, which the fetcher refuses by default (SSRF);
    # tests of that refusal set the variable themselves.
    os.environ.setdefault("MONITOR_POLL__ALLOWED_NETWORKS", "127.0.0.0/8")
    # Daemons started by tests run side by side (two xdist workers): the desk they serve
    # takes any free port unless a test names one.
    os.environ.setdefault("MONITOR_DESK__ADDRESS", "127.0.0.1:0")


@pytest.fixture
def real_feeds() -> Path:
    """The captured real feed documents; tests that need them skip when they are absent."""
    if not REAL_FEEDS.is_dir():
        pytest.skip(f"real feed documents not found at {REAL_FEEDS}")
    return REAL_FEEDS


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    """A real webhook receiver on 127.0.0.1 that records what it gets and fails on demand."""
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    """A real SMTP server on 127.0.0.1 (aiosmtpd) that records the messages it gets."""
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """One real Apache Kafka broker for the whole session (per xdist worker), assembled by
    deploy/kafka."""
    broker = LocalKafka(tmp_path_factory.mktemp("kafka"), free_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()

"""The desk as ops run it: inside the embedded daemon, and as ``monitor desk`` processes on
the matches topic (two copies, one of them rebuilt from the topic after its view is deleted)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from monitor.model import encode_match
from tests.conftest import REPO
from tests.contract.test_match_contract import CLAIMS, MATCHING, UNRELATED
from tests.desk.factory import CLAIM
from tests.desk.test_timeline_cli import claims_file, story
from tests.support.at_the_end import AtTheEnd, at_the_end  # noqa: F401 (a fixture)
from tests.support.feed_server import FeedServer
from tests.support.kafka_broker import LocalKafka, free_port, isolated_kafka_settings
from tests.support.waiting import eventually
from tests.test_cli import MONITOR, monitor_env


def rss(titles: list[str]) -> bytes:
    items = "".join(f"<item><title>{title}</title><link>https://wire.example/{n}</link>"
                    f"<pubDate>Sat, 28 Nov 2026 1{n}:00:00 GMT</pubDate></item>"
                    for n, title in enumerate(titles))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>W'
            f"</title><language>ru</language>{items}</channel></rss>").encode()


class Process:
    """A ``monitor`` process with its own state file, metrics port and desk port."""

    def __init__(self, args: list[str], env: dict[str, str], home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home, self.port, self.desk_port = home, free_port(), free_port()
        self.log = home / "process.log"
        self._args = args
        self._env = {**env, "MONITOR_STATE_PATH": str(home / "state.sqlite3"),
                     "MONITOR_HTTP__ADDRESS": f"127.0.0.1:{self.port}",
                     "MONITOR_DESK__ADDRESS": f"127.0.0.1:{self.desk_port}"}
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([*MONITOR, *self._args], cwd=REPO, env=self._env,
                                            stdout=out, stderr=out)

    def items(self, claim_id: str) -> list[dict[str, Any]] | None:
        """The desk's items of ``claim_id`` (None while it does not answer)."""
        try:
            answer = httpx.get(f"http://127.0.0.1:{self.desk_port}/api/claims/{claim_id}/items",
                               timeout=2)
        except httpx.HTTPError:
            return None
        return answer.json()["items"] if answer.status_code == 200 else None

    def ready(self) -> bool:
        return self.readiness().startswith("200")

    def readiness(self) -> str:
        """``/readyz`` as status and body ("503 not ready: desk"), or why it did not answer."""
        try:
            answer = httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2)
        except httpx.HTTPError as exc:
            return f"no answer: {exc!r}"
        return f"{answer.status_code} {answer.text.strip()}"

    def logged(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


@pytest.fixture
def processes(at_the_end: AtTheEnd) -> list[Process]:  # noqa: F811
    return at_the_end([])


@pytest.fixture
def config(tmp_path: Path, feed_server: FeedServer) -> tuple[Path, Path]:
    feed_server.set("/wire.xml", rss(MATCHING + UNRELATED))
    feeds, claims = tmp_path / "feeds.yaml", tmp_path / "claims.yaml"
    feeds.write_text(f"feeds:\n  - id: wire\n    source: Wire\n    url: "
                     f"{feed_server.url('/wire.xml')}\n    interval: 3600\n", encoding="utf-8")
    claims.write_text(CLAIMS, encoding="utf-8")
    return feeds, claims


def linked(desk: Process, claim_id: str, count: int) -> list[dict[str, Any]]:
    def shown() -> list[dict[str, Any]] | None:
        items = desk.items(claim_id)
        return items if items is not None and len(items) >= count else None

    items = eventually(shown, 90, f"{count} items of the claim on the desk")
    assert len(items) == count
    return items


ENV = {"MONITOR_MATCH__SEMANTIC": "false", "MONITOR_POLL__JITTER_RATIO": "0"}


def test_the_embedded_daemon_serves_the_desk(tmp_path: Path, config: tuple[Path, Path],
                                             processes: list[Process]) -> None:
    feeds, claims = config
    daemon = Process(["run", "--feeds", str(feeds), "--claims", str(claims)], monitor_env(ENV),
                     tmp_path / "daemon")
    processes.append(daemon)

    items = linked(daemon, "generals", len(MATCHING))
    assert {item["title"] for item in items} == set(MATCHING)
    eventually(daemon.ready, 30, "/readyz with the desk caught up")
    logged = daemon.logged()
    assert f"desk: serving on http://127.0.0.1:{daemon.desk_port}/" in logged
    assert "poll+match+desk: 1 feeds scheduled, embedded mode" in logged
    assert (tmp_path / "daemon" / "desk.sqlite3").exists()  # beside the state file
    assert daemon.stop() == 0


@pytest.mark.kafka
def test_two_desks_on_the_matches_topic_hold_the_same_view(
        tmp_path: Path, kafka_broker: LocalKafka, processes: list[Process]) -> None:
    """What the match stage wrote (and one record it did not) on monitor.matches: each
    ``monitor desk`` holds all of it, and one whose view is deleted rebuilds the same."""
    kafka = isolated_kafka_settings(kafka_broker.bootstrap)
    producer = KafkaProducer(bootstrap_servers=list(kafka.bootstrap_servers), acks="all",
                             enable_idempotence=True)
    try:
        sent = [producer.send(kafka.matches_topic, key=m.claim_id.encode(),
                              value=encode_match(m)) for m in story()]
        sent.append(producer.send(kafka.matches_topic, key=CLAIM.id.encode(), value=b"\xff"))
        for future in sent:
            future.get(timeout=30)
    finally:
        producer.close(timeout=5)
    claims = claims_file(tmp_path)
    env = monitor_env({"MONITOR_KAFKA__BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
                       "MONITOR_KAFKA__MATCHES_TOPIC": kafka.matches_topic})
    desks = [Process(["desk", "--claims", str(claims)], env, tmp_path / name)
             for name in ("desk-a", "desk-b")]
    processes.extend(desks)
    shown = sum(m.claim_id == CLAIM.id for m in story())

    first, second = (linked(desk, CLAIM.id, shown) for desk in desks)
    assert first == second
    assert {item["title"] for item in first} == {m.item.title for m in story()
                                                 if m.claim_id == CLAIM.id}
    try:
        eventually(desks[0].ready, 30, "the desk ready once caught up")
    except AssertionError as exc:  # seen once in a CI run (2026-12-01): say what would explain it
        raise AssertionError(f"{exc}; /readyz: {desks[0].readiness()!r}; the desk's log ends:\n"
                             f"{desks[0].logged()[-4000:]}") from None
    assert "skipped" in desks[0].logged()

    assert desks[0].stop() == 0
    for made in (tmp_path / "desk-a").glob("desk.sqlite3*"):
        made.unlink()
    desks[0].start()
    assert linked(desks[0], CLAIM.id, shown) == first
    restarted = desks[0].logged().split("received SIGTERM")[-1]
    assert f"holds {kafka.matches_topic} up to its end ({len(story())} matches)" in restarted

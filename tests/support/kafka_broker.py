"""A real single-node Kafka broker for the test suite.

Thin typed wrapper around ``deploy/kafka/local-kafka`` (KRaft broker and
controller in one JVM, jars from Maven Central, cached outside the repository
under ``$MONITOR_KAFKA_CACHE`` or ``~/.cache/monitor/kafka-4.3.1``).

Typical use in a fixture::

    broker = LocalKafka(tmp_path / "kafka", free_port())
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()

The broker runs in its own session (``setsid``), so it outlives the test
process unless :meth:`LocalKafka.stop` is called.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from monitor.config.settings import KafkaSettings

REPO_ROOT: Path = Path(__file__).resolve().parents[2]
SCRIPT: Path = REPO_ROOT / "deploy" / "kafka" / "local-kafka"

# Cold resolution of the jars through Maven; instant once cached.
_FETCH_TIMEOUT_SECONDS = 900.0
# local-kafka waits up to 30 s after SIGTERM before SIGKILL.
_STOP_TIMEOUT_SECONDS = 60.0


def _describe(result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"exit code {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


def _run(
    args: list[str], timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [str(SCRIPT), *args]
    try:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(
            f"{' '.join(command)} timed out after {timeout:.0f}s\n"
            f"--- stdout ---\n{_text(exc.stdout)}\n--- stderr ---\n{_text(exc.stderr)}"
        ) from exc


def _text(output: str | bytes | None) -> str:
    if output is None:
        return ""
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output


def fetch() -> None:
    """Resolve the broker jars into the cache (no-op when already cached)."""
    result = _run(["fetch"], timeout=_FETCH_TIMEOUT_SECONDS)
    if result.returncode != 0:
        raise RuntimeError(f"local-kafka fetch failed: {_describe(result)}")


@dataclass
class LocalKafka:
    """One broker: its data directory and client port (controller = port + 1)."""

    data_dir: Path
    port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _dir_args(self) -> list[str]:
        return ["--dir", str(self.data_dir)]

    def start(self, timeout_seconds: float = 120) -> None:
        """Start the broker (formatting ``data_dir`` on first use) and wait
        until it answers, at most ``timeout_seconds`` (jar fetch excluded).

        Starting again on the same ``data_dir`` after :meth:`stop` keeps the
        data. Raises ``RuntimeError`` with the script's output (which includes
        the tail of the broker log) on failure.
        """
        fetch()
        env = dict(os.environ)
        env["MONITOR_KAFKA_START_TIMEOUT"] = str(max(1, math.ceil(timeout_seconds)))
        result = _run(
            ["start", *self._dir_args(), "--port", str(self.port)],
            # Readiness deadline, plus formatting and a stop after a failure.
            timeout=timeout_seconds + _STOP_TIMEOUT_SECONDS + 30,
            env=env,
        )
        if result.returncode != 0:
            raise RuntimeError(f"local-kafka start on {self.bootstrap} failed: {_describe(result)}")
        expected = f"bootstrap={self.bootstrap}"
        if expected not in result.stdout.split():
            raise RuntimeError(f"local-kafka start did not report {expected}: {_describe(result)}")

    def stop(self) -> None:
        """Stop the broker (SIGTERM, SIGKILL after 30 s). Idempotent."""
        result = _run(["stop", *self._dir_args()], timeout=_STOP_TIMEOUT_SECONDS)
        if result.returncode != 0:
            raise RuntimeError(f"local-kafka stop failed: {_describe(result)}")

    def is_running(self) -> bool:
        """True if the broker process is alive and answers on its port."""
        if not self.data_dir.is_dir():
            return False
        result = _run(["status", *self._dir_args()], timeout=60)
        return result.returncode == 0 and self.bootstrap in result.stdout

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free TCP port on 127.0.0.1 whose successor (the controller port) is
    free too. Another process may still take it before the broker binds; the
    script then fails with "already in use"."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port < 65535 and _port_free(port) and _port_free(port + 1):
            return port
    raise RuntimeError("no free pair of adjacent TCP ports on 127.0.0.1")


def isolated_kafka_settings(bootstrap: str, **overrides: object) -> KafkaSettings:
    """Settings whose topics, groups and transactional id belong to one test alone (the
    broker is shared by the whole session), with the topics created."""
    from monitor.bus.kafka import ensure_topics, item_topics

    run = uuid.uuid4().hex[:8]
    settings = KafkaSettings.model_validate({
        "bootstrap_servers": bootstrap, "items_topic": f"items.{run}",
        "matches_topic": f"matches.{run}", "dlq_topic": f"dlq.{run}",
        "alerts_topic": f"alerts.{run}", "item_features_topic": f"item-features.{run}",
        "silences_topic": f"silences.{run}", "match_group": f"match-{run}",
        "alert_group": f"alert-{run}", "transactional_id": f"match-{run}-0",
        "topic_partitions": 3, "max_block_seconds": 10, "startup_timeout_seconds": 30,
        **overrides})
    ensure_topics(settings, item_topics(settings))
    return settings

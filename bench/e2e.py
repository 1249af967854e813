"""End to end: feed response -> poll -> match -> alert -> webhook, embedded or through Kafka.

One process runs the real stages (``Service`` with claims and alerts) against a feed served
on 127.0.0.1 and a real webhook receiver: in embedded mode by default, or with ``--kafka
BOOTSTRAP`` as Kafka mode runs them (items, matches and alerts topics on that broker, fresh
topic and group names per run, the alerter as a consumer-group member). Latency is measured
from the moment the feed server sent the response that first carried an item to the moment
its alert reached the receiver; throughput from one burst of new items to the last of their
alerts, with the latency of the burst's first and last alert. Grouping waits are set to zero
so that the pipeline, not the configured waits, is measured. Each measured alert is split in
three by the times its records were logged (the state file's tables, or the topics' record
timestamps): feed response -> match logged (poll and match), -> ``pending`` alert record
logged (the alert stage's intake), -> webhook (delivery). The figures are given again without
the first batch, whose alerts also pay what a process pays once (through Kafka: the topics'
metadata, the group coordinator's lookup, the first read of the silences topic).

The feed server and the webhook receiver run in a process of their own, as a wire's server
and a newsroom's receiver do: their request handling, and the bench's waiting for them, do
not take the interpreter lock from the stages (in the same process they took ~10 % of its
time during the measurement, and the bench's polling of them ~15 %). ``--servers-in-process``
runs them in the measured process, as before 2026-12-01.

    .venv/bin/python bench/e2e.py [--alerts 200] [--batch 10] [--burst 200] [--servers-in-process]
    deploy/kafka/local-kafka start        # prints bootstrap=127.0.0.1:PORT
    .venv/bin/python bench/e2e.py --kafka 127.0.0.1:PORT
    deploy/kafka/local-kafka stop
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monitor.config.feeds import FeedConfig  # noqa: E402
from monitor.config.settings import Settings  # noqa: E402
from monitor.service import Service  # noqa: E402
from tests.support.feed_server import FeedServer  # noqa: E402
from tests.support.receivers import WebhookReceiver  # noqa: E402


def claims_yaml(count: int) -> str:
    entries = "".join(
        f"  - id: bench-claim-{n}\n    text: Officials say codename{n:04d} never happened\n"
        f"    keywords: [[codename{n:04d}]]\n    threshold: 30\n" for n in range(count))
    return "claims:\n" + entries


def alerts_yaml(url: str) -> str:
    return (f"receivers:\n  - name: bench\n    urls: ['{url}']\nroute:\n  receiver: bench\n"
            "  group_by: [claim]\n  group_wait: 0s\n  group_interval: 1s\n"
            "  repeat_interval: 1h\n")


# Item texts new to every run, as on a wire: the matcher keeps each item text's vector in its
# embedding cache (~/.cache/monitor), and a rerun must not find them there.
RUN = uuid.uuid4().hex[:8]


FEED_PATH = "/wire.xml"


def rss(numbers: range) -> bytes:
    items = "".join(
        f"<item><title>Ministry denies codename{n:04d} report, run {RUN}</title>"
        f"<link>https://wire.example/{n}</link></item>" for n in numbers)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Bench</title>{items}'
            "</channel></rss>").encode()


class Servers:
    """The feed server and the webhook receiver, driven by the measuring thread: in this
    process (``FeedServer``, ``WebhookReceiver``), or in a child one (:class:`OutsideServers`)."""

    def __init__(self, feeds: FeedServer, hook: WebhookReceiver) -> None:
        self.feeds, self.hook = feeds, hook

    def urls(self) -> tuple[str, str]:
        return self.feeds.url(FEED_PATH), self.hook.url()

    def set_feed(self, body: bytes) -> None:
        self.feeds.set(FEED_PATH, body)

    def first_response_after(self, moment: float) -> float:
        """When the feed server first answered the feed with 200 after ``moment``."""
        deadline = time.time() + 30
        while time.time() < deadline:
            hits = [r.at for r in self.feeds.hits(FEED_PATH) if r.status == 200 and r.at > moment]
            if hits:
                return min(hits)
            time.sleep(0.005)
        raise TimeoutError("the feed was not polled")

    def wait_past_first_poll(self) -> None:
        """A feed's first poll is its backlog and never alerts: measure from the second on
        (the poller asks again only once the first poll is recorded)."""
        deadline = time.time() + 30
        while len(self.feeds.hits(FEED_PATH)) < 2:
            if time.time() > deadline:
                raise TimeoutError("the feed was not polled twice")
            time.sleep(0.01)

    def arrivals(self, count: int, timeout_seconds: float) -> list[tuple[float, Any]]:
        """(time received, JSON body) of the first ``count`` webhook requests, once they came."""
        return [(d.at, d.body) for d in self.hook.wait_for(count, timeout_seconds)[:count]]

    def request_count(self) -> int:
        return len(self.hook.requests)


class OutsideServers:
    """:class:`Servers` in a child process, asked through a pipe (one question at a time)."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child,), daemon=True)
        self._process.start()
        child.close()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def ask(*args: Any) -> Any:
            self._conn.send((name, args))
            ok, answer = self._conn.recv()
            if not ok:
                raise RuntimeError(f"bench servers: {name}: {answer}")
            return answer
        return ask

    def close(self) -> None:
        self._conn.send(None)
        self._process.join(10)


def _serve(conn: Connection) -> None:
    """The child process: serve until told to stop, answering the parent's questions."""
    with FeedServer() as feeds, WebhookReceiver() as hook:
        servers = Servers(feeds, hook)
        while (question := conn.recv()) is not None:
            name, args = question
            try:
                conn.send((True, getattr(servers, name)(*args)))
            except Exception as exc:  # noqa: BLE001 - the parent raises it
                conn.send((False, repr(exc)))


@contextmanager
def bench_servers(in_process: bool) -> Iterator[Any]:
    if in_process:
        with FeedServer() as feeds, WebhookReceiver() as hook:
            yield Servers(feeds, hook)
        return
    outside = OutsideServers()
    try:
        yield outside
    finally:
        outside.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--kafka", metavar="BOOTSTRAP",
                        help="Run the stages in Kafka mode against this broker.")
    parser.add_argument("--process-per-stage", action="store_true",
                        help="With --kafka: each stage in a process of its own, as "
                             "deploy/systemd runs Kafka mode.")
    parser.add_argument("--servers-in-process", action="store_true",
                        help="Run the feed server and the webhook receiver in this process.")
    args = parser.parse_args()
    if args.process_per_stage and not args.kafka:
        parser.error("--process-per-stage needs --kafka (embedded mode is one process)")
    total = args.alerts + args.burst
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, bench_servers(args.servers_in_process) as servers:
        feed_url, hook_url = servers.urls()
        folder = Path(tmp)
        (folder / "claims.yaml").write_text(claims_yaml(total), encoding="utf-8")
        (folder / "routes.yaml").write_text(alerts_yaml(hook_url), encoding="utf-8")
        servers.set_feed(rss(range(0)))
        values = {"http": {"address": "127.0.0.1:0"},
                  # the bench's feed server is on loopback
                  "poll": {"allowed_networks": ["127.0.0.0/8"]},
                  "state_path": folder / "state.sqlite3", "log_level": "WARNING",
                  **kafka_settings(args.kafka)}
        settings = Settings.model_validate(values)
        feed = {"id": "wire", "url": feed_url, "source": "Bench Wire", "interval": 1}
        with (stage_processes(values, feed, folder) if args.process_per_stage
              else one_service(settings, feed, folder)):
            servers.wait_past_first_poll()
            responses, latencies, arrived = measure_latency(servers, args.alerts, args.batch)
            burst = measure_burst(servers, args.alerts, args.burst)
            bodies = [body for _, body in servers.arrivals(total, 10)]
            requests = servers.request_count()
        logged = (logged_at_embedded(settings.state_path) if args.kafka is None
                  else logged_at_kafka(settings))
        parts = split_latency(responses, arrived, logged)
    name = "e2e-kafka" if args.kafka else "e2e-embedded"
    name += "-process-per-stage" if args.process_per_stage else ""
    report(latencies, burst, parts, bodies, requests,
           name + ("-servers-in-process" if args.servers_in_process else ""),
           (load_before, os.getloadavg()[0]), args.batch)
    return 0


@contextmanager
def one_service(settings: Settings, feed: dict[str, Any], folder: Path) -> Iterator[None]:
    """The three stages in this process, as embedded mode (and ``monitor run``) runs them."""
    service = Service(settings, [FeedConfig.model_validate(feed)], CollectorRegistry(),
                      claims_path=folder / "claims.yaml", alerts_path=folder / "routes.yaml")
    service.start()
    cpu_before = time.process_time()
    try:
        yield
    finally:
        service.close()
        print(f"CPU seconds of the stages' process, started to stopped: "
              f"{time.process_time() - cpu_before:.1f}")


# Each stage's Service arguments when it runs alone, as deploy/systemd and deploy/k8s run
# Kafka mode (``monitor poll``, ``monitor match``, ``monitor alert``): downstream first.
STAGES = {"alert": {"poll": False, "match": False, "claims": True, "alerts": True},
          "match": {"poll": False, "match": True, "claims": True, "alerts": False},
          "poll": {"poll": True, "match": False, "claims": False, "alerts": False}}


@contextmanager
def stage_processes(values: dict[str, Any], feed: dict[str, Any],
                    folder: Path) -> Iterator[None]:
    """Each stage in a process of its own (Kafka mode only), each started once the one
    downstream of it has started; all stopped at the end."""
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    children: dict[str, tuple[Any, Connection]] = {}
    try:
        for role in STAGES:
            ready, child_end = context.Pipe()
            process = context.Process(target=_run_stage, daemon=True,
                                      args=(role, values, feed, folder, child_end, stop))
            process.start()
            children[role] = (process, ready)
            answer = ready.recv() if ready.poll(120) else "no answer"
            if answer != "started":
                raise RuntimeError(f"bench: the {role} stage did not start: {answer}")
        yield
    finally:
        stop.set()
        cpu = {}
        for role, (process, ready) in children.items():
            process.join(60)
            cpu[role] = ready.recv() if ready.poll(0) else float("nan")
        print("CPU seconds of each stage's process, started to stopped: " + ", ".join(
            f"{role} {seconds:.1f}" for role, seconds in cpu.items()))


def _run_stage(role: str, values: dict[str, Any], feed: dict[str, Any], folder: Path,
               ready: Connection, stop: Any) -> None:
    """A child process: one stage's Service (its own state file) until ``stop`` is set."""
    shape = STAGES[role]
    settings = Settings.model_validate({**values, "state_path": folder / f"{role}.sqlite3"})
    service = Service(settings, [FeedConfig.model_validate(feed)] if shape["poll"] else [],
                      CollectorRegistry(),
                      claims_path=folder / "claims.yaml" if shape["claims"] else None,
                      alerts_path=folder / "routes.yaml" if shape["alerts"] else None,
                      poll=bool(shape["poll"]), match=bool(shape["match"]))
    try:
        service.start()
    except Exception as exc:
        ready.send(repr(exc))
        raise
    ready.send("started")
    cpu_before = time.process_time()
    try:
        stop.wait()
    finally:
        service.close()
        ready.send(time.process_time() - cpu_before)


def kafka_settings(bootstrap: str | None) -> dict[str, Any]:
    """Fresh topics and groups on ``bootstrap`` (nothing when None: embedded mode)."""
    if bootstrap is None:
        return {}
    run = uuid.uuid4().hex[:8]
    return {"kafka": {"bootstrap_servers": bootstrap, "items_topic": f"bench.items.{run}",
                      "matches_topic": f"bench.matches.{run}", "dlq_topic": f"bench.dlq.{run}",
                      "alerts_topic": f"bench.alerts.{run}", "match_group": f"bench-match-{run}",
                      "alert_group": f"bench-alert-{run}",
                      "transactional_id": f"bench-match-{run}-0"}}


def arrival_times(servers: Any, numbers: range, timeout_seconds: float) -> dict[int, float]:
    """When the first alert naming each bench claim in ``numbers`` arrived (an alert names its
    claim in its body: a repeated or unexpected delivery cannot stand in for another's)."""
    deadline = time.time() + timeout_seconds
    wanted = numbers.stop
    while True:
        try:
            arrived = servers.arrivals(wanted, max(0.0, deadline - time.time()))
        except (TimeoutError, RuntimeError) as exc:
            raise TimeoutError(f"alerts {numbers.start}..{numbers.stop} did not all "
                               "arrive") from exc
        first: dict[int, float] = {}
        for at, body in arrived:
            first.setdefault(_number(json.dumps(body)), at)
        if all(n in first for n in numbers):
            return {n: first[n] for n in numbers}
        wanted = len(arrived) + 1


def measure_latency(servers: Any, count: int, batch: int
                    ) -> tuple[dict[int, float], list[float], dict[int, float]]:
    """Alerts ``batch`` new items at a time; (feed response time per item number, latencies,
    arrival time per item number)."""
    responses: dict[int, float] = {}
    latencies: list[float] = []
    arrivals: dict[int, float] = {}
    for start in range(0, count, batch):
        before = time.time()
        servers.set_feed(rss(range(start + batch)))
        response_at = servers.first_response_after(before)
        numbers = range(start, start + batch)
        responses.update({n: response_at for n in numbers})
        arrived = arrival_times(servers, numbers, 60)
        arrivals.update(arrived)
        latencies.extend(arrived[n] - response_at for n in numbers)
    return responses, latencies, arrivals


@dataclass(frozen=True)
class Burst:
    first_seconds: float  # feed response -> the burst's first alert
    last_seconds: float  # ... -> its last alert
    alerts_per_second: float


def measure_burst(servers: Any, done: int, burst: int) -> Burst:
    before = time.time()
    servers.set_feed(rss(range(done + burst)))
    response_at = servers.first_response_after(before)
    arrived = arrival_times(servers, range(done, done + burst), 300)
    first, last = min(arrived.values()) - response_at, max(arrived.values()) - response_at
    return Burst(first, last, burst / last)


# claim number -> (match logged, "pending" alert record logged), unix seconds
Logged = dict[int, tuple[float, float]]
CLAIM_NUMBER = re.compile(r"bench-claim-(\d+)")


def logged_at_embedded(state_path: Path) -> Logged:
    """When each claim's match and first ``pending`` record were written to the state file."""
    conn = sqlite3.connect(f"file:{state_path}?mode=ro", uri=True)
    try:
        matches = {_number(claim): at for claim, at in conn.execute(
            "SELECT claim_id, logged_at FROM match_log ORDER BY seq DESC")}
        pending: dict[int, float] = {}
        for key, payload, at in conn.execute(
                "SELECT key, payload, logged_at FROM alert_log ORDER BY seq DESC"):
            if json.loads(payload)["event"] == "pending":
                pending[_number(bytes(key).decode())] = at
    finally:
        conn.close()
    return {n: (matches[n], pending[n]) for n in matches.keys() & pending.keys()}


def logged_at_kafka(settings: Settings) -> Logged:
    """The same from the record timestamps (producer time) of the matches and alerts topics."""
    from kafka import KafkaConsumer, TopicPartition

    def first_times(topic: str, event: str | None) -> dict[int, float]:
        reader = KafkaConsumer(bootstrap_servers=list(settings.kafka.bootstrap_servers),
                               isolation_level="read_committed", enable_auto_commit=False)
        try:
            tps = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or ()]
            reader.assign(tps)
            reader.seek_to_beginning(*tps)
            ends = reader.end_offsets(tps)
            found: dict[int, float] = {}
            deadline = time.time() + 60
            while any(reader.position(tp) < ends[tp] for tp in tps) and time.time() < deadline:
                for records in reader.poll(timeout_ms=500).values():
                    for r in records:
                        if event is None or json.loads(r.value)["event"] == event:
                            n = _number(r.key.decode())
                            found[n] = min(found.get(n, r.timestamp / 1000), r.timestamp / 1000)
            return found
        finally:
            reader.close()

    matches = first_times(settings.kafka.matches_topic, None)
    pending = first_times(settings.kafka.alerts_topic, "pending")
    return {n: (matches[n], pending[n]) for n in matches.keys() & pending.keys()}


def _number(claim_id: str) -> int:
    found = CLAIM_NUMBER.search(claim_id)
    if found is None:
        raise ValueError(f"not a bench claim: {claim_id!r}")
    return int(found.group(1))


# One measured alert's parts in seconds: (poll and match, alert intake, delivery)
Parts = tuple[float, float, float]


def split_latency(responses: dict[int, float], arrived: dict[int, float],
                  logged: Logged) -> dict[int, Parts]:
    """Every measured alert's parts, by item number (the order items were added)."""
    parts = {}
    for n, at in arrived.items():
        if n in responses and n in logged:
            matched, pending = logged[n]
            parts[n] = (matched - responses[n], pending - matched, at - pending)
    return parts


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * share + 0.5) - 1)]


def report(latencies: list[float], burst: Burst, by_item: dict[int, Parts],
           bodies: list[Any], requests: int, name: str,
           load: tuple[float, float], batch: int) -> None:
    parts = list(by_item.values())
    p50 = statistics.median(latencies)
    p95, p99 = percentile(latencies, 0.95), percentile(latencies, 0.99)
    claims = {json.dumps(body, ensure_ascii=False).count("bench-claim") > 0 for body in bodies}
    print(f"alerts measured: {len(latencies)}; webhook requests: {requests}; "
          f"load average {load[0]:.2f} before, {load[1]:.2f} after")
    print(f"latency feed response -> webhook: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
          f"p99 {p99 * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")
    print(f"burst of new items: first alert {burst.first_seconds * 1000:.0f} ms, last "
          f"{burst.last_seconds * 1000:.0f} ms after the response; "
          f"{burst.alerts_per_second:.1f} alerts/s")
    split = {}
    for index, part in enumerate(("poll_match", "alert_intake", "delivery")):
        values = [p[index] for p in parts]
        split[part] = (round(statistics.median(values) * 1000),
                       round(percentile(values, 0.95) * 1000))
        print(f"  {part:<13} p50 {split[part][0]:>5} ms, p95 {split[part][1]:>5} ms")
    slowest = sorted(parts, key=sum)[-max(1, len(parts) // 20):]  # the alerts at p95 and above
    match_share = statistics.median(p[0] / sum(p) for p in slowest)
    print(f"  of the slowest 5% of alerts, poll and match are {match_share:.0%} (median)")
    later = latencies[batch:]  # measure_latency keeps them in batch order
    later_intake = [p[1] for n, p in by_item.items() if n >= batch]
    later_p50, later_p95 = statistics.median(later), percentile(later, 0.95)
    intake_p50 = statistics.median(later_intake)
    intake_p95 = percentile(later_intake, 0.95)
    first_max = max(latencies[:batch])
    print(f"after the first batch ({len(later)} alerts): p50 {later_p50 * 1000:.0f} ms, p95 "
          f"{later_p95 * 1000:.0f} ms; alert intake p50 {intake_p50 * 1000:.0f} ms, p95 "
          f"{intake_p95 * 1000:.0f} ms; the first batch's slowest alert {first_max * 1000:.0f} ms")
    warm = {"p50_ms": round(later_p50 * 1000), "p95_ms": round(later_p95 * 1000),
            "alert_intake_p50_p95_ms": [round(intake_p50 * 1000), round(intake_p95 * 1000)],
            "first_batch_max_ms": round(first_max * 1000)}
    print(json.dumps({"benchmark": name, "alerts": len(latencies),
                      "p50_ms": round(p50 * 1000), "p95_ms": round(p95 * 1000),
                      "p99_ms": round(p99 * 1000), "alerts_per_second":
                      round(burst.alerts_per_second, 1),
                      "burst_first_ms": round(burst.first_seconds * 1000),
                      "burst_last_ms": round(burst.last_seconds * 1000),
                      "split_p50_p95_ms": split, "slowest_match_share": round(match_share, 2),
                      "after_first_batch": warm,
                      "load": [round(x, 2) for x in load], "bodies_name_claims": all(claims)}))


if __name__ == "__main__":
    sys.exit(main())

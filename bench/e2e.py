"""End to end: feed response -> poll -> match -> alert -> webhook, embedded or through Kafka.

One process runs the real stages (``Service`` with claims and alerts) against a feed served
on 127.0.0.1 and a real webhook receiver: in embedded mode by default, or with ``--kafka
BOOTSTRAP`` as Kafka mode runs them (items, matches and alerts topics on that broker, fresh
topic and group names per run, the alerter as a consumer-group member). Latency is measured
from the moment the feed server sent the response that first carried an item to the moment
its alert reached the receiver; throughput from one burst of new items to the last of their
alerts. Grouping waits are set to zero so that the pipeline, not the configured waits, is
measured.

    .venv/bin/python bench/e2e.py [--alerts 200] [--batch 10] [--burst 200]
    deploy/kafka/local-kafka start        # prints bootstrap=127.0.0.1:PORT
    .venv/bin/python bench/e2e.py --kafka 127.0.0.1:PORT
    deploy/kafka/local-kafka stop
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
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


def rss(numbers: range) -> bytes:
    items = "".join(
        f"<item><title>Ministry denies codename{n:04d} report</title>"
        f"<link>https://wire.example/{n}</link></item>" for n in numbers)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Bench</title>{items}'
            "</channel></rss>").encode()


class Arrivals:
    """Stamps each webhook delivery with the time this watcher first saw it."""

    def __init__(self, hook: WebhookReceiver) -> None:
        self.hook, self.times, self._stop = hook, [], threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            seen = len(self.hook.requests)
            while len(self.times) < seen:
                self.times.append(time.time())
            time.sleep(0.002)

    def wait(self, count: int, deadline: float) -> bool:
        while len(self.times) < count and time.time() < deadline:
            time.sleep(0.005)
        return len(self.times) >= count

    def stop(self) -> None:
        self._stop.set()


def first_response_after(server: FeedServer, moment: float) -> float:
    deadline = time.time() + 30
    while time.time() < deadline:
        hits = [r.at for r in server.hits("/wire.xml") if r.status == 200 and r.at > moment]
        if hits:
            return min(hits)
        time.sleep(0.005)
    raise TimeoutError("the feed was not polled")


def wait_past_first_poll(server: FeedServer) -> None:
    """A feed's first poll is its backlog and never alerts: measure from the second on (the
    poller asks again only once the first poll is recorded)."""
    deadline = time.time() + 30
    while len(server.hits("/wire.xml")) < 2:
        if time.time() > deadline:
            raise TimeoutError("the feed was not polled twice")
        time.sleep(0.01)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--kafka", metavar="BOOTSTRAP",
                        help="Run the stages in Kafka mode against this broker.")
    args = parser.parse_args()
    total = args.alerts + args.burst
    with tempfile.TemporaryDirectory() as tmp, FeedServer() as feeds, WebhookReceiver() as hook:
        folder = Path(tmp)
        (folder / "claims.yaml").write_text(claims_yaml(total), encoding="utf-8")
        (folder / "routes.yaml").write_text(alerts_yaml(hook.url()), encoding="utf-8")
        feeds.set("/wire.xml", rss(range(0)))
        settings = Settings.model_validate({"http": {"address": "127.0.0.1:0"},
                                            # the bench's feed server is on loopback
                                            "poll": {"allowed_networks": ["127.0.0.0/8"]},
                                            "state_path": folder / "state.sqlite3",
                                            "log_level": "WARNING",
                                            **kafka_settings(args.kafka)})
        feed = FeedConfig.model_validate({"id": "wire", "url": feeds.url("/wire.xml"),
                                          "source": "Bench Wire", "interval": 1})
        service = Service(settings, [feed], CollectorRegistry(),
                              claims_path=folder / "claims.yaml",
                              alerts_path=folder / "routes.yaml")
        arrivals = Arrivals(hook)
        service.start()
        try:
            wait_past_first_poll(feeds)
            latencies = measure_latency(feeds, arrivals, args.alerts, args.batch)
            rate = measure_burst(feeds, arrivals, args.alerts, args.burst)
        finally:
            arrivals.stop()
            service.close()
    report(latencies, rate, hook, "e2e-kafka" if args.kafka else "e2e-embedded")
    return 0


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


def measure_latency(feeds: FeedServer, arrivals: Arrivals, count: int, batch: int
                    ) -> list[float]:
    latencies: list[float] = []
    for start in range(0, count, batch):
        before = time.time()
        feeds.set("/wire.xml", rss(range(start + batch)))
        response_at = first_response_after(feeds, before)
        if not arrivals.wait(start + batch, time.time() + 60):
            raise TimeoutError(f"alerts {start}..{start + batch} did not all arrive")
        latencies.extend(t - response_at for t in arrivals.times[start:start + batch])
    return latencies


def measure_burst(feeds: FeedServer, arrivals: Arrivals, done: int, burst: int) -> float:
    before = time.time()
    feeds.set("/wire.xml", rss(range(done + burst)))
    response_at = first_response_after(feeds, before)
    if not arrivals.wait(done + burst, time.time() + 300):
        raise TimeoutError("the burst's alerts did not all arrive")
    return burst / (arrivals.times[done + burst - 1] - response_at)


def report(latencies: list[float], rate: float, hook: WebhookReceiver, name: str) -> None:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    claims = {json.dumps(d.body, ensure_ascii=False).count("bench-claim") > 0
              for d in hook.requests}
    print(f"alerts measured: {len(ordered)}; webhook requests: {len(hook.requests)}")
    print(f"latency feed response -> webhook: p50 {p50 * 1000:.0f} ms, "
          f"p95 {p95 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms")
    print(f"sustained: {rate:.1f} alerts/s (one burst)")
    print(json.dumps({"benchmark": name, "alerts": len(ordered),
                      "p50_ms": round(p50 * 1000), "p95_ms": round(p95 * 1000),
                      "alerts_per_second": round(rate, 1), "bodies_name_claims": all(claims)}))


if __name__ == "__main__":
    sys.exit(main())

"""What a hostile feed server costs the fetcher: time to cut off a dripping server, memory on
compression bombs, and the price of the address guard on a good feed.

    .venv/bin/python bench/hostile.py [--timeout 2] [--limit-mib 10] [--bomb-mib 512]

Everything runs against tests.support.hostile_server on 127.0.0.1 (allowed explicitly, as an
intranet feed would be). Peak memory is tracemalloc's (Python allocations, bytes objects
included) around the fetch alone. Prints a table, then one line of JSON with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import statistics
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from monitor.errors import MonitorError  # noqa: E402
from monitor.feeds.fetch import Fetcher, FetchLimits, Validators  # noqa: E402
from monitor.feeds.parse import FeedSource, TextLimits, parse_feed  # noqa: E402
from tests.support.hostile_server import HostileServer, rss  # noqa: E402

NOW = datetime.now(UTC)
LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"),)


def fetcher(timeout: float, limit: int) -> Fetcher:
    return Fetcher(FetchLimits(user_agent="monitor-bench/1", timeout_seconds=timeout,
                               max_body_bytes=limit, allowed_networks=LOOPBACK))


def cut_off_seconds(server: HostileServer, path: str, timeout: float) -> float:
    started = time.monotonic()
    with contextlib.suppress(MonitorError):
        fetcher(timeout, 10 << 20).fetch(server.url(path), Validators(), NOW)
    return time.monotonic() - started


def bomb_peak_mib(server: HostileServer, path: str, limit: int) -> tuple[float, str]:
    tracemalloc.start()
    try:
        fetched = fetcher(30, limit).fetch(server.url(path), Validators(), NOW)
        parse_feed(fetched.body, fetched.content_type, FeedSource("b", "B", None), NOW,
                   TextLimits(max_inflated_bytes=limit))
        outcome = "accepted"
    except MonitorError as exc:
        outcome = type(exc).__name__
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20, outcome


def good_fetch_ms(server: HostileServer, rounds: int) -> tuple[float, float]:
    """Median ms of a small good feed: through the guarded fetcher and through plain httpx."""
    url = server.set("good", rss(*(f"story {n}" for n in range(50))))
    guarded = fetcher(10, 10 << 20)
    plain = httpx.Client()
    times: dict[str, list[float]] = {"guarded": [], "plain": []}
    for _ in range(rounds):
        for name, get in (("guarded", lambda: guarded.fetch(url, Validators(), NOW)),
                          ("plain", lambda: plain.get(url))):
            started = time.perf_counter()
            get()
            times[name].append((time.perf_counter() - started) * 1000)
    return statistics.median(times["guarded"]), statistics.median(times["plain"])


def _key(path: str) -> str:
    return path.replace("/", "_").replace("-", "_")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--limit-mib", type=int, default=10)
    parser.add_argument("--bomb-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    limit = args.limit_mib << 20
    figures: dict[str, object] = {"timeout_seconds": args.timeout, "limit_mib": args.limit_mib,
                                  "bomb_mib": args.bomb_mib}
    with HostileServer("127.0.0.1", bomb_bytes=args.bomb_mib << 20) as server:
        for path in ("/slow-body", "/slow-headers"):
            seconds = cut_off_seconds(server, path, args.timeout)
            figures[f"cut_off_seconds{_key(path)}"] = round(seconds, 2)
            print(f"{path:22} cut off after {seconds:6.2f} s (deadline {args.timeout:g} s)")
        for path in ("/gzip-raw-bomb", "/gzip-encoded-bomb", "/deflate-bomb"):
            peak, outcome = bomb_peak_mib(server, path, limit)
            figures[f"peak_mib{_key(path)}"] = round(peak, 1)
            print(f"{path:22} {args.bomb_mib} MiB of zeros: {outcome}, peak {peak:6.1f} MiB "
                  f"(limit {args.limit_mib} MiB)")
        guarded, plain = good_fetch_ms(server, args.rounds)
        figures.update(good_fetch_ms_guarded=round(guarded, 2), good_fetch_ms_plain=round(plain, 2))
        print(f"{'good feed (50 items)':22} guarded fetcher {guarded:.2f} ms, plain httpx "
              f"{plain:.2f} ms (median of {args.rounds})")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

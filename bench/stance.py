"""The relation decision's speed: decisions per second on a headline alone and on a headline
with a feed summary (the body model), per CPU second and per wall second.

    .venv/bin/python bench/stance.py [--decisions 600] [--rounds 5]

These were timed tests (tests/match/test_stance.py aimed at > 500 headline decisions/s,
tests/match/test_body_stance.py at > 100 body decisions/s); a wall-clock figure fails under
load, so it is measured here and printed instead. "per core" is decisions over the process's
CPU seconds, the figure that holds on a loaded machine. Prints a table, then one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.match.stance import decide_relation  # noqa: E402

# The claim behind the product (DESIGN.md) and two answers to it, in English and Russian.
CLAIM_EN = "Lukashenko: Ukrainian generals asked him in 2022 to get Putin to stop the war"
CLAIM_RU = ("Лукашенко: украинские генералы просили его в 2022 году уговорить Путина "
            "остановить войну")
HEADLINES = ((CLAIM_EN, "Kyiv says Lukashenko's story about generals is untrue"),
             (CLAIM_RU, "Генштаб ВСУ опроверг слова Лукашенко о просьбе генералов"))
# A headline over a ~600-character summary (FNC-1's pattern: a body debunking the story).
BODY_CLAIM = "Banksy arrested in London, identity revealed"
BODY_TITLE = "Banksy and the London police"
SUMMARY = (
    "A story claiming that the street artist Banksy was arrested in London is a hoax. "
    "The report was published by a satirical site. Police said no such arrest took place and "
    "the claims are false. Banksy's identity has not been revealed. "
    "According to unconfirmed reports, the street artist Banksy may have been arrested in "
    "London. The claims could not be verified, and a spokesman declined to comment. "
    "Sources say his identity might be revealed soon."
)


def headline_decisions(count: int) -> None:
    for n in range(count):
        claim, title = HEADLINES[n % len(HEADLINES)]
        decide_relation(claim, title)


def body_decisions(count: int) -> None:
    for _ in range(count):
        decide_relation(BODY_CLAIM, BODY_TITLE, SUMMARY, language="en")


def rates(run: Callable[[int], None], count: int, rounds: int) -> dict[str, float]:
    """Median decisions per CPU second and per wall second over ``rounds`` runs."""
    run(10)  # models loaded, caches warm
    per_cpu, per_wall = [], []
    for _ in range(rounds):
        cpu, wall = time.process_time(), time.perf_counter()
        run(count)
        per_cpu.append(count / (time.process_time() - cpu))
        per_wall.append(count / (time.perf_counter() - wall))
    return {"per_core": round(statistics.median(per_cpu)),
            "wall": round(statistics.median(per_wall))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=600, help="decisions a round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; medians are printed")
    args = parser.parse_args()
    figures = {"headline": rates(headline_decisions, args.decisions, args.rounds),
               "body": rates(body_decisions, args.decisions, args.rounds)}
    print(f"{'decisions':>10} {'per core/s':>11} {'wall/s':>8}")
    for name, rate in figures.items():
        print(f"{name:>10} {rate['per_core']:>11} {rate['wall']:>8}")
    print(json.dumps({"decisions": args.decisions, "rounds": args.rounds,
                      "load_average_1m": round(os.getloadavg()[0], 2), **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

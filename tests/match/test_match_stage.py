"""The match stage on the embedded log: claims files change under a running stage.

Exactly once, restarts and dead letters are behaviours of both modes: tests/contract.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry

from monitor.bus.transport import EmbeddedTransport
from monitor.match.registry import ClaimRegistry
from monitor.match.stage import MatchProcessor, MatchStage
from monitor.metrics import Metrics
from monitor.store import Database
from tests.contract.test_match_contract import CLAIMS, story


def drain(stage: MatchStage) -> None:
    for _ in range(100):
        stage.step()
        if stage.caught_up():
            return
    raise AssertionError("the stage did not catch up")


def test_claims_changes_apply_without_restart_and_bad_files_are_refused(tmp_path: Path) -> None:
    claims = tmp_path / "claims.yaml"
    claims.write_text(CLAIMS, encoding="utf-8")
    db = Database(tmp_path / "state.sqlite3")
    transport = EmbeddedTransport(db)
    metrics = Metrics(CollectorRegistry())
    stage = MatchStage(transport.stage_log("match"),
                       MatchProcessor(ClaimRegistry(claims), metrics), metrics)
    matches = transport.stage_log("alert")  # reads what the match stage wrote
    items = transport.publisher()
    claims.write_text(CLAIMS.replace("[generals, генералы]", "[Путин, Putin]"), encoding="utf-8")
    os.utime(claims, ns=(1, 1))  # a distinct stamp even within one clock tick
    items.publish([story(1, "Лукашенко встретился с Путиным")])
    drain(stage)
    assert len(matches.poll(0).records) == 1
    claims.write_text("claims:\n  - id: BAD ID\n", encoding="utf-8")
    os.utime(claims, ns=(2, 2))
    items.publish([story(2, "Лукашенко и Путин снова встретились")])
    drain(stage)  # the invalid file is logged and the previous claims keep matching
    assert len(matches.poll(0).records) == 1
    db.close()

"""The suite's longest tests run first, so neither xdist worker is left with one at the end.

Under ``-n 2`` the run ends when the later worker does: a 3-minute test that starts in the last
minutes leaves the other worker idle for most of them. With ``--maxschedchunk=1`` (pyproject's
addopts) xdist hands each worker two tests to start with and then one test whenever one ends,
in collection order; the longest tests are put at the front, each followed by one ordinary test
(a worker holds one test besides the one it runs), so the two longest start at once on the two
workers and the rest of the long ones go to whichever worker is free first.

The durations are those measured with ``--durations`` on the 2-core CI machine; a test missing
here or renamed only loses its place at the front.
"""

from __future__ import annotations

import pytest

# Node ids, longest first (seconds of one run under -n 2, fresh clone, 2026-11-30).
LONGEST = (
    "tests/integration/test_stage_startup.py::"
    "test_stage_logs_opened_while_the_broker_is_down_wait_for_it",  # 205
    "tests/integration/test_poll_exactly_once.py::"
    "test_chaos_kills_of_every_stage_and_a_broker_restart_lose_and_repeat_nothing",  # 150
    "tests/integration/test_broker_outage.py::"
    "test_a_broker_outage_is_two_lines_a_process_readyz_503_and_nothing_lost",  # 140
    "tests/integration/test_poll_shared.py::"
    "test_three_pollers_share_the_feeds_and_take_over_from_a_killed_one",  # 90
    "tests/test_once.py::"
    "test_an_alert_pending_at_the_deadline_exits_1_without_waiting_for_its_retry",  # 61
    "tests/integration/test_poll_exactly_once.py::"
    "test_two_shared_pollers_frozen_and_killed_mid_stream_publish_every_item_and_match_once",
    "tests/test_alerts_e2e.py::test_a_new_denial_reaches_the_webhook_and_the_mailbox_once",
)


def longest_first(items: list[pytest.Item]) -> None:
    """Reorder ``items`` in place: each of LONGEST (in its order) followed by one other test,
    then the others in their collection order."""
    rank = {node_id: n for n, node_id in enumerate(LONGEST)}
    long_ones = sorted((i for i in items if i.nodeid in rank), key=lambda i: rank[i.nodeid])
    others = [i for i in items if i.nodeid not in rank]
    ordered: list[pytest.Item] = []
    for n, item in enumerate(long_ones):
        ordered.append(item)
        if n < len(others):
            ordered.append(others[n])
    ordered.extend(others[len(long_ones):])
    items[:] = ordered

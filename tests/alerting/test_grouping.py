"""monitor/alerting/grouping.py: Alertmanager-style grouping, timings and rate limits.

The clock is a plain number passed to every call; nothing sleeps.
"""

from __future__ import annotations

import json
from dataclasses import replace

from monitor.alerting.grouping import Grouper, Notification
from monitor.alerting.routes import RoutedTo
from monitor.config.alerts import RateLimit
from monitor.model import Match
from tests.alerting import make_match

WAIT, INTERVAL, REPEAT = 30.0, 300.0, 3600.0
DESK = RoutedTo("desk", "root", ("claim",), WAIT, INTERVAL, REPEAT)


def wire(match_id: str, claim_id: str = "lukashenko-generals-2022", relation: str = "denial",
         source: str = "Reuters") -> Match:
    return replace(make_match(claim_id=claim_id, relation=relation, source=source),
                   match_id=match_id)


def send_all(grouper: Grouper, now: float) -> list[Notification]:
    found = grouper.due(now)
    for notification in found:
        grouper.mark_sent(notification, now)
    return found


def test_three_wires_within_group_wait_make_one_notification() -> None:
    grouper = Grouper()
    for offset, match_id in [(0, "ria"), (12, "tass"), (25, "belta")]:
        assert grouper.add(wire(match_id), DESK, offset)
    assert grouper.due(WAIT - 1) == []
    assert grouper.next_wakeup() == WAIT
    (notification,) = grouper.due(WAIT)
    assert notification.match_ids == ("ria", "tass", "belta")
    assert notification.first and notification.receiver == "desk"


def test_a_fourth_wire_after_the_first_notification_waits_group_interval() -> None:
    grouper = Grouper()
    for match_id in ("ria", "tass", "belta"):
        grouper.add(wire(match_id), DESK, 0)
    send_all(grouper, WAIT)
    grouper.add(wire("ukrinform"), DESK, WAIT + 10)
    assert grouper.next_wakeup() == WAIT + INTERVAL
    assert grouper.due(WAIT + INTERVAL - 1) == []
    (notification,) = send_all(grouper, WAIT + INTERVAL)
    assert notification.match_ids == ("ukrinform",)  # already-sent wires are not repeated
    assert not notification.first


def test_a_burst_after_a_lull_still_waits_group_wait() -> None:
    grouper = Grouper()
    grouper.add(wire("ria"), DESK, 0)
    send_all(grouper, WAIT)
    late = WAIT + INTERVAL + 100
    grouper.add(wire("tass"), DESK, late)
    grouper.add(wire("belta"), DESK, late + 5)
    assert grouper.due(late + WAIT - 1) == []
    (notification,) = grouper.due(late + WAIT)
    assert notification.match_ids == ("tass", "belta")


def test_nothing_new_means_nothing_sent_and_repeat_interval_retires_the_group() -> None:
    grouper = Grouper()
    grouper.add(wire("ria"), DESK, 0)
    send_all(grouper, WAIT)
    assert not grouper.add(wire("ria"), DESK, WAIT + 60)  # same match within the group's life
    assert grouper.due(WAIT + REPEAT - 1) == []  # no re-send of what the desk has seen
    assert grouper.next_wakeup() is None
    grouper.add(wire("tass"), DESK, WAIT + REPEAT + 1)
    (notification,) = grouper.due(WAIT + REPEAT + 1 + WAIT)
    assert notification.first  # a fresh group: "new activity on this claim"


def test_different_claims_make_different_groups() -> None:
    grouper = Grouper()
    grouper.add(wire("a1", claim_id="claim-a"), DESK, 0)
    grouper.add(wire("b1", claim_id="claim-b"), DESK, 0)
    grouper.add(wire("a2", claim_id="claim-a"), DESK, 1)
    found = {n.key.labels: n.match_ids for n in grouper.due(WAIT + 1)}
    assert found == {(("claim", "claim-a"),): ("a1", "a2"), (("claim", "claim-b"),): ("b1",)}


def test_group_by_relation_splits_a_claim() -> None:
    by_relation = replace(DESK, group_by=("claim", "relation"))
    grouper = Grouper()
    grouper.add(wire("d1", relation="denial"), by_relation, 0)
    grouper.add(wire("c1", relation="corroboration"), by_relation, 0)
    grouper.add(wire("d2", relation="denial"), by_relation, 0)
    found = sorted(n.match_ids for n in grouper.due(WAIT))
    assert found == [("c1",), ("d1", "d2")]


def test_same_match_to_two_receivers_is_grouped_for_each() -> None:
    grouper = Grouper()
    other = replace(DESK, receiver="email", route_path="root.routes[0]")
    grouper.add(wire("ria"), DESK, 0)
    grouper.add(wire("ria"), other, 0)
    assert sorted(n.receiver for n in grouper.due(WAIT)) == ["desk", "email"]


def test_rate_limit_holds_the_excess_and_releases_it_with_nothing_lost() -> None:
    grouper = Grouper({"desk": RateLimit(count=2, per=600)})
    for claim in ("a", "b", "c"):
        grouper.add(wire(f"{claim}1", claim_id=claim), DESK, 0)
    first = send_all(grouper, WAIT)
    assert len(first) == 2
    assert grouper.pop_held() == {"desk": 1}
    assert grouper.due(WAIT + 100) == []
    assert grouper.pop_held() == {}  # the same hold is counted once
    grouper.add(wire("c2", claim_id="c"), DESK, WAIT + 200)  # joins the held group
    assert grouper.next_wakeup() == WAIT + 600
    assert grouper.due(WAIT + 599) == []
    (released,) = send_all(grouper, WAIT + 600)
    assert released.match_ids == ("c1", "c2")
    sent = {m for n in [*first, released] for m in n.match_ids}
    assert sent == {"a1", "b1", "c1", "c2"}
    assert grouper.pending_count() == 0


def test_notification_id_is_stable_for_the_same_group_and_matches() -> None:
    one, two = Grouper(), Grouper()
    for grouper in (one, two):
        grouper.add(wire("ria"), DESK, 0)
        grouper.add(wire("tass"), DESK, 1)
    (a,), (b,) = one.due(WAIT + 1), two.due(WAIT + 1)
    assert a.notification_id == b.notification_id
    grouper = Grouper()
    grouper.add(wire("ria"), DESK, 0)
    (c,) = grouper.due(WAIT)
    assert c.notification_id != a.notification_id


def test_state_round_trips_through_its_json_form() -> None:
    limits = {"desk": RateLimit(count=1, per=600)}
    grouper = Grouper(limits)
    grouper.add(wire("a1", claim_id="a"), DESK, 0)
    grouper.add(wire("b1", claim_id="b"), DESK, 0)
    send_all(grouper, WAIT)  # one sent, one held
    grouper.add(wire("a2", claim_id="a"), DESK, WAIT + 1)
    state = json.loads(json.dumps(grouper.to_dict()))
    restored = Grouper.from_dict(state, limits)
    assert restored.to_dict() == grouper.to_dict()
    assert restored.next_wakeup() == grouper.next_wakeup()
    later = WAIT + 600
    assert restored.due(later) == grouper.due(later)
    assert not restored.add(wire("a1", claim_id="a"), DESK, WAIT + 2)  # sent ids survive


def test_pairs_dropped_after_hand_over_are_taken_in_again_when_the_partition_returns() -> None:
    """A rebalance moved the partition after the notification was handed over but before its
    "pending" record was written (the write failed in a broker outage): dropping its pairs
    must forget them as sent too, or the partition coming back to this process skips them,
    commits past them, and the alerts are lost (a chaos run lost five that way)."""
    grouper = Grouper()
    for match_id in ("ria", "tass"):
        assert grouper.add(wire(match_id), DESK, 0)
    send_all(grouper, WAIT)  # handed over; the pending write then fails
    grouper.add(wire("belta"), DESK, WAIT + 1)  # still waiting in the group
    assert grouper.drop({("ria", "desk"), ("tass", "desk"), ("belta", "desk")}) == 1
    assert grouper.add(wire("ria"), DESK, WAIT + 2)  # the partition is back: taken in again
    assert grouper.add(wire("belta"), DESK, WAIT + 2)
    assert not grouper.add(wire("ria"), DESK, WAIT + 3)  # still known once taken in


def test_dropping_another_receivers_pairs_leaves_a_group_alone() -> None:
    grouper = Grouper()
    grouper.add(wire("ria"), DESK, 0)
    send_all(grouper, WAIT)
    assert grouper.drop({("ria", "other-desk")}) == 0
    assert not grouper.add(wire("ria"), DESK, WAIT + 1)  # still sent to this receiver

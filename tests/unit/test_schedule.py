"""monitor/feeds/schedule.py: when to poll next, Retry-After and Cache-Control max-age
(the Retry-After header itself is read by monitor/retry.py: tests/test_retry.py)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.feeds.schedule import (
    SchedulePolicy,
    next_delay_seconds,
    parse_max_age,
)

POLICY = SchedulePolicy(backoff_cap_seconds=3600.0, max_age_cap_seconds=7200.0, jitter_ratio=0.1)


def delays(failures: int, interval: float = 300.0, n: int = 200, **kw: float) -> list[float]:
    rng = random.Random(1234)
    return [next_delay_seconds(interval, failures, POLICY, rng=rng, **kw) for _ in range(n)]


def test_success_waits_interval_plus_bounded_jitter() -> None:
    got = delays(0)
    assert all(300.0 <= d <= 330.0 for d in got)
    assert max(got) - min(got) > 10  # the jitter is really there, so feeds spread out


def test_seeded_rng_is_reproducible() -> None:
    assert delays(3) == delays(3)


def test_no_jitter_when_ratio_is_zero() -> None:
    policy = SchedulePolicy(jitter_ratio=0.0)
    assert next_delay_seconds(300.0, 0, policy, rng=random.Random(1)) == 300.0


@pytest.mark.parametrize(
    ("max_age", "low", "high"),
    [
        # RFC 9111 5.2.2.1: fresh for max-age seconds; polling sooner is wasted.
        pytest.param(900.0, 900.0, 930.0, id="stretches"),
        pytest.param(60.0, 300.0, 330.0, id="shorter-than-interval-ignored"),
        pytest.param(86400.0, 7200.0, 7230.0, id="capped"),
        pytest.param(0.0, 300.0, 330.0, id="zero-ignored"),
    ],
)
def test_max_age_stretches_success_delay(max_age: float, low: float, high: float) -> None:
    assert all(low <= d <= high for d in delays(0, max_age_seconds=max_age))


def test_first_failure_retries_after_one_interval() -> None:
    assert set(delays(1)) == {300.0}


@pytest.mark.parametrize("failures", [2, 3, 4, 5, 6])
def test_failures_back_off_exponentially_with_equal_jitter(failures: int) -> None:
    backoff = min(300.0 * 2 ** (failures - 1), POLICY.backoff_cap_seconds)
    got = delays(failures)
    assert all(backoff / 2 <= d <= backoff for d in got)
    assert max(got) - min(got) > backoff / 4  # spread over the upper half


def test_backoff_grows_until_the_cap() -> None:
    lows = [min(delays(n)) for n in range(1, 9)]
    assert lows[:4] == sorted(lows[:4])
    assert all(d <= 3600.0 for n in range(1, 40) for d in delays(n, n=20))


@pytest.mark.parametrize("failures", [10, 64, 1025, 10**9])
def test_huge_failure_count_is_capped_not_overflowing(failures: int) -> None:
    got = delays(failures)
    assert all(1800.0 <= d <= 3600.0 for d in got)


def test_interval_longer_than_cap_is_capped_on_failure() -> None:
    assert set(delays(1, interval=7200.0)) == {3600.0}


@pytest.mark.parametrize(
    ("failures", "retry_after", "low", "high"),
    [
        # RFC 9110 10.2.3: a 503/429 Retry-After asks the client to wait at least that long.
        pytest.param(0, 1000.0, 1000.0, 1000.0, id="success-longer-wins"),
        pytest.param(0, 10.0, 300.0, 330.0, id="success-shorter-ignored"),
        pytest.param(1, 1000.0, 1000.0, 1000.0, id="failure-longer-wins"),
        pytest.param(4, 100.0, 1200.0, 2400.0, id="failure-shorter-ignored"),
        pytest.param(1, 10**7, 3600.0, 3600.0, id="capped"),
    ],
)
def test_retry_after(failures: int, retry_after: float, low: float, high: float) -> None:
    got = delays(failures, retry_after_seconds=retry_after)
    assert all(low <= d <= high for d in got)


@settings(max_examples=200, deadline=None)
@given(
    interval=st.floats(min_value=1.0, max_value=86400.0),
    failures=st.integers(min_value=1, max_value=10**6),
    retry_after=st.one_of(st.none(), st.floats(min_value=0.0, max_value=1e9)),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_failure_delay_never_exceeds_the_cap(
    interval: float, failures: int, retry_after: float | None, seed: int
) -> None:
    delay = next_delay_seconds(
        interval, failures, POLICY, retry_after_seconds=retry_after, rng=random.Random(seed)
    )
    assert 0 < delay <= POLICY.backoff_cap_seconds


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # RFC 9111 5.2.2.1 max-age; directive names are case-insensitive (5.2).
        pytest.param("max-age=300", 300.0, id="max-age"),
        pytest.param("public, max-age=300, must-revalidate", 300.0, id="in-a-list"),
        pytest.param("Max-Age=60", 60.0, id="case-insensitive"),
        pytest.param('max-age="120"', 120.0, id="quoted"),
        # RFC 9111 5.2.2.10: s-maxage is for shared caches; a poller is a private cache.
        pytest.param("public, s-maxage=60", None, id="s-maxage-only-ignored"),
        pytest.param("public, s-maxage=60, max-age=30", 30.0, id="s-maxage-and-max-age"),
        pytest.param("no-cache", None, id="no-cache"),
        pytest.param("max-age=300, no-cache", None, id="no-cache-wins"),
        pytest.param("private", None, id="no-max-age"),
        pytest.param("max-age=abc", None, id="not-a-number"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="absent"),
    ],
)
def test_parse_max_age(value: str | None, expected: float | None) -> None:
    assert parse_max_age(value) == expected

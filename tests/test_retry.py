"""monitor/retry.py: backoff table, jitter bounds, cap, giving up or not, Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from monitor.alerting.deliver import DeliveryError
from monitor.errors import ConfigError, FetchError, InvalidInputError, PublishError
from monitor.retry import RetryPolicy, is_retryable, parse_retry_after

POLICY = RetryPolicy(max_attempts=8, base_delay_seconds=5.0, max_delay_seconds=60.0)
STEADY = RetryPolicy(max_attempts=8, base_delay_seconds=5.0, max_delay_seconds=60.0,
                     jitter=False)


@pytest.mark.parametrize(("attempt", "expected"), [
    (1, 5.0), (2, 10.0), (3, 20.0), (4, 40.0),
    (5, 60.0),  # 80 capped
    (7, 60.0),
], ids=["first", "second", "third", "fourth", "capped", "still-capped"])
def test_delays_double_up_to_the_cap(attempt: int, expected: float) -> None:
    assert STEADY.next_delay(attempt) == expected


def test_equal_jitter_stays_within_half_to_full_backoff() -> None:
    rng = random.Random(1234)
    for attempt in range(1, POLICY.max_attempts):
        base = POLICY.backoff_seconds(attempt)
        delays = [POLICY.next_delay(attempt, rng=rng) for _ in range(200)]
        assert all(d is not None and base / 2 <= d <= base for d in delays)
        assert len(set(delays)) > 100  # spread, not a constant


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    first = [POLICY.next_delay(a, rng=random.Random(7)) for a in range(1, 8)]
    again = [POLICY.next_delay(a, rng=random.Random(7)) for a in range(1, 8)]
    assert first == again


@pytest.mark.parametrize(("max_attempts", "attempt", "gives_up"), [
    (1, 1, True),  # one attempt: never retried
    (3, 2, False),
    (3, 3, True),
    (3, 9, True),
], ids=["single-attempt", "before-last", "after-last", "way-past"])
def test_gives_up_after_max_attempts(max_attempts: int, attempt: int, gives_up: bool) -> None:
    policy = RetryPolicy(max_attempts=max_attempts, jitter=False)
    assert (policy.next_delay(attempt) is None) is gives_up


@pytest.mark.parametrize(("attempt", "retry_after", "expected"), [
    (1, 120.0, 120.0),  # longer than our backoff: wait as asked (RFC 9110 10.2.3)
    (4, 7.0, 40.0),  # shorter than our backoff: our backoff still applies
    (1, 900.0, 900.0),  # beyond max_delay (ours) but within max_retry_after: honoured in full
    (1, 3601.0, None),  # beyond max_retry_after: give up, dead-letter, ops replay later
    (1, 0.0, 5.0),
], ids=["longer", "shorter", "beyond-our-cap", "beyond-retry-after-cap", "zero"])
def test_retry_after_is_honoured_never_shortened(attempt: int, retry_after: float,
                                                 expected: float | None) -> None:
    assert STEADY.next_delay(attempt, retry_after) == expected


def test_retry_after_with_jitter_is_at_least_what_was_asked() -> None:
    rng = random.Random(99)
    assert all((POLICY.next_delay(1, 30.0, rng) or 0) >= 30.0 for _ in range(100))


def test_a_whole_schedule_on_a_fake_clock_is_bounded() -> None:
    rng, now, attempt = random.Random(3), 0.0, 1
    while (delay := POLICY.next_delay(attempt, rng=rng)) is not None:
        now, attempt = now + delay, attempt + 1
    assert attempt == POLICY.max_attempts
    upper = sum(POLICY.backoff_seconds(a) for a in range(1, POLICY.max_attempts))
    assert upper / 2 <= now <= upper


@pytest.mark.parametrize("kwargs", [
    {"max_attempts": 0},
    {"base_delay_seconds": 0},
    {"base_delay_seconds": 10, "max_delay_seconds": 5},
    {"max_delay_seconds": 600, "max_retry_after_seconds": 60},
], ids=["no-attempts", "zero-base", "base-over-cap", "retry-after-cap-below-cap"])
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="retry policy"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("error", "retryable"), [
    (DeliveryError("deliver json://h: HTTP 500"), True),
    (DeliveryError("deliver json://h: HTTP 429", retry_after_seconds=5), True),
    (DeliveryError("deliver json://h: HTTP 400", permanent=True), False),
    (FetchError("fetch x: HTTP 503"), True),
    (PublishError("bus down"), True),
    (InvalidInputError("bad match"), False),
    (ConfigError("receiver env missing"), False),
    (ValueError("a bug"), False),
], ids=["server-error", "throttled", "rejected", "fetch", "publish", "invalid", "config",
        "bug"])
def test_is_retryable(error: Exception, retryable: bool) -> None:
    assert is_retryable(error) is retryable


UNLIMITED = RetryPolicy(max_attempts=None, base_delay_seconds=5.0, max_delay_seconds=60.0,
                        jitter=False, max_retry_after_seconds=600.0)


@pytest.mark.parametrize(("attempt", "retry_after", "expected"), [
    (1, None, 5.0),
    (10**9, None, 60.0),  # a stage failing for days still retries, at the cap
    (3, 120.0, 120.0),
    (3, 10**7, 600.0),  # cannot give up: waits the longest Retry-After it honours
], ids=["first", "huge-attempt", "retry-after", "retry-after-beyond-limit"])
def test_unlimited_attempts_never_give_up(attempt: int, retry_after: float | None,
                                         expected: float) -> None:
    assert UNLIMITED.next_delay(attempt, retry_after) == expected


NOW = datetime(2024, 4, 30, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # RFC 9110 10.2.3: Retry-After = HTTP-date / delay-seconds
        pytest.param("120", 120.0, id="delta-seconds"),
        pytest.param(" 120 ", 120.0, id="delta-seconds-padded"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param("Tue, 30 Apr 2024 12:02:00 GMT", 120.0, id="imf-fixdate"),
        pytest.param("Tue, 30 Apr 2024 11:00:00 GMT", 0.0, id="date-in-past-is-zero"),
        # RFC 9110 5.6.7: recipients should also accept the obsolete RFC 850 form.
        pytest.param("Tuesday, 30-Apr-24 12:01:00 GMT", 60.0, id="rfc850-date"),
        pytest.param(None, None, id="absent"),
        pytest.param("", None, id="empty"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("-5", None, id="negative"),
        pytest.param("1.5", None, id="fraction-not-allowed"),
        pytest.param("Tue, 30 Apr 2024 12:02:00", None, id="date-without-zone"),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_superscript_digit_is_garbage() -> None:
    # httpx decodes a raw 0xB2 header byte as Latin-1 '²'; a hostile server can send it.
    assert parse_retry_after("\u00b2", NOW) is None


def test_parse_retry_after_is_relative_to_now() -> None:
    later = NOW + timedelta(seconds=30)
    assert parse_retry_after("Tue, 30 Apr 2024 12:02:00 GMT", later) == 90.0

"""The delivery retry policy, a pure function (docs/delivery.md, Retry policy)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fedblog.jobs.retry import (
    HORIZON,
    MAX_WAIT,
    UNAVAILABLE_WAIT,
    is_permanent_status,
    next_attempt,
    parse_retry_after,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize("status", [400, 403, 404, 410, 422, 501])
def test_permanent_statuses(status: int) -> None:
    assert is_permanent_status(status)


@pytest.mark.parametrize("status", [401, 408, 429, 500, 502, 503, 504])
def test_retryable_statuses(status: int) -> None:
    assert not is_permanent_status(status)


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    low = [next_attempt(n, T0, T0, rand=lambda: 0.0) - T0 for n in range(1, 15)]  # type: ignore[operator]
    high = [next_attempt(n, T0, T0, rand=lambda: 1.0) - T0 for n in range(1, 15)]  # type: ignore[operator]
    assert low == sorted(low) and low[0] == timedelta(seconds=30)
    assert all(lo <= hi <= MAX_WAIT for lo, hi in zip(low, high, strict=True))
    assert high[-1] == MAX_WAIT and low[-1] == MAX_WAIT / 2


def test_retries_for_at_least_48_hours_then_gives_up() -> None:
    attempts, now = 0, T0
    while True:
        attempts += 1
        nxt = next_attempt(attempts, now, T0, rand=lambda: 0.5)
        if nxt is None:
            break
        now = nxt
    assert now - T0 >= timedelta(hours=48)
    assert now - T0 >= HORIZON - MAX_WAIT
    assert next_attempt(1, T0 + HORIZON, T0) is None


def test_retry_after_is_honoured_up_to_six_hours() -> None:
    assert next_attempt(1, T0, T0, retry_after=timedelta(seconds=120), rand=lambda: 0.0) == T0 + timedelta(seconds=120)
    assert next_attempt(1, T0, T0, retry_after=timedelta(days=3), rand=lambda: 0.0) == T0 + MAX_WAIT


def test_unavailable_hosts_are_retried_daily_and_longer() -> None:
    assert next_attempt(1, T0, T0, host_unavailable=True, rand=lambda: 0.0) == T0 + UNAVAILABLE_WAIT
    assert next_attempt(1, T0 + HORIZON, T0, host_unavailable=True) is not None


def test_parse_retry_after() -> None:
    assert parse_retry_after("120", T0) == timedelta(seconds=120)
    assert parse_retry_after("Sun, 01 Nov 2026 00:10:00 GMT", T0) == timedelta(minutes=10)
    assert parse_retry_after("soon", T0) is None and parse_retry_after(None, T0) is None

"""The delivery retry policy: one pure function (docs/delivery.md, after Mastodon's DeliveryWorker
and DeliveryFailureTracker).

Exponential backoff with full jitter from 30 s, each wait capped at 6 h, for at least 48 h
(72 h here) after the first attempt. ``Retry-After`` is honoured up to 6 h. Permanent failures
stop at once. A host that failed on 7 distinct UTC days is "unavailable": its rows are kept and
retried at most once a day until it answers again.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

BASE = timedelta(seconds=30)
MAX_WAIT = timedelta(hours=6)
HORIZON = timedelta(hours=72)
UNAVAILABLE_WAIT = timedelta(hours=24)
UNAVAILABLE_AFTER_DAYS = 7
RETRYABLE_4XX = frozenset({401, 408, 429})


def is_permanent_status(status: int) -> bool:
    """404, 410, other 4xx except 401/408/429, and 501: the receiver will never take it."""
    return (400 <= status < 500 and status not in RETRYABLE_4XX) or status == 501


def next_attempt(
    attempts: int,
    now: datetime,
    first_created: datetime,
    *,
    retry_after: timedelta | None = None,
    host_unavailable: bool = False,
    rand: Callable[[], float] = random.random,
) -> datetime | None:
    """When to try again after ``attempts`` failed tries, or None to give up."""
    if now - first_created >= HORIZON and not host_unavailable:
        return None
    if host_unavailable and now - first_created >= HORIZON * 3:
        return None
    ceiling: timedelta = min(MAX_WAIT, BASE * (2 ** min(attempts, 20)))
    wait = ceiling / 2 + (ceiling / 2) * rand()  # "equal jitter": never less than half the step
    if retry_after is not None:
        wait = max(wait, min(retry_after, MAX_WAIT))
    if host_unavailable:
        wait = max(wait, UNAVAILABLE_WAIT)
    return now + wait


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` as seconds or an HTTP date; None if absent or unparsable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(timedelta(0), when - now)

"""The dashboard's figures, read in one database session with a fixed number of queries.

Plain synchronous functions: the web layer runs them through ``services.run_db``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from fedblog.admin import chart
from fedblog.services import Services
from fedblog.store import dashboard as q
from fedblog.store import federation as fed_store
from fedblog.store.db import session_scope

CHART_RANGES = (30, 90)
FOLLOWERS_PER_PAGE = 50


@dataclass(frozen=True)
class Dashboard:
    now: datetime
    follower_count: int
    latest_followers: list[q.FollowerRow]
    hosts: list[tuple[str, int]]
    delivery_counts: dict[str, int]
    failing: list[q.FailingInbox]
    unavailable: list[Any]
    recent: list[q.RecentInteraction]
    days: int
    follower_chart: chart.Chart
    interaction_chart: chart.Chart


def load_dashboard(services: Services, days: int) -> Dashboard:
    now = services.clock.now()
    series = chart.days_back(now.date(), days)
    since = datetime.combine(series[0], datetime.min.time(), tzinfo=now.tzinfo)
    with Session(services.engine) as session:
        follower_count = fed_store.count_followers(session)
        latest = q.list_followers(session, offset=0, limit=8)
        hosts = q.followers_by_host(session, limit=12)
        counts = fed_store.delivery_counts(session)
        failing = q.failing_inboxes(session, limit=20)
        unavailable = list(q.unavailable_hosts(session, limit=50))
        recent = q.recent_interactions(session, limit=15)
        new_followers = q.followers_per_day(session, since)
        interactions = q.interactions_per_day(session, since)
    followers_line = chart.cumulative(new_followers, series, follower_count)
    return Dashboard(
        now=now,
        follower_count=follower_count,
        latest_followers=latest,
        hosts=hosts,
        delivery_counts=counts,
        failing=failing,
        unavailable=unavailable,
        recent=recent,
        days=days,
        follower_chart=chart.build("Followers", series, followers_line, kind="line", unit="followers"),
        interaction_chart=chart.build(
            "Interactions per day", series, [interactions.get(d, 0) for d in series], kind="bars", unit="interactions"
        ),
    )


@dataclass(frozen=True)
class FollowerPage:
    total: int
    rows: list[q.FollowerRow]
    page: int
    last_page: int


def load_followers(services: Services, page: int) -> FollowerPage:
    with Session(services.engine) as session:
        total = fed_store.count_followers(session)
        last_page = max(1, -(-total // FOLLOWERS_PER_PAGE))
        rows = q.list_followers(session, offset=(page - 1) * FOLLOWERS_PER_PAGE, limit=FOLLOWERS_PER_PAGE)
    return FollowerPage(total, rows, page, last_page)


def retry_now(services: Services, *, inbox: str | None, host: str | None) -> int:
    """Make the pending deliveries to one inbox or one host due now; the number of rows changed."""
    with session_scope(services.engine) as session:
        return q.retry_now(session, services.clock.now(), inbox=inbox, host=host)



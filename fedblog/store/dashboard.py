"""Read-only queries behind the admin dashboard, plus "retry now". No business rules.

Each function is one statement: a count, a GROUP BY or a LIMITed list, so a dashboard costs a
fixed number of queries whatever the size of the tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from fedblog.clock import utc
from fedblog.store.tables import Actor, Delivery, Follower, HostHealth, Interaction, Post


def _all(session: Session, stmt: Any) -> list[Any]:
    """Plain rows (no ORM objects) from a Core select."""
    return list(session.connection().execute(stmt).all())


@dataclass(frozen=True)
class FollowerRow:
    actor_ap_id: str
    host: str | None
    handle: str | None
    name: str | None
    created_at: datetime


@dataclass(frozen=True)
class FailingInbox:
    inbox: str
    host: str
    pending: int
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None


@dataclass(frozen=True)
class RecentInteraction:
    id: int
    kind: str
    via: str
    status: str
    author_name: str
    author_url: str | None
    published_at: datetime
    post_slug: str
    post_title: str


def list_followers(session: Session, *, offset: int, limit: int) -> list[FollowerRow]:
    """Newest followers first, with what we know of each actor (one query, a join on a unique key)."""
    stmt = (
        sa_select(col(Follower.actor_ap_id), col(Actor.host), col(Actor.handle), col(Actor.name),
                  col(Follower.created_at))
        .join(Actor, col(Actor.ap_id) == col(Follower.actor_ap_id), isouter=True)
        .order_by(col(Follower.created_at).desc(), col(Follower.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return [FollowerRow(a, h, hd, n, utc(c)) for a, h, hd, n, c in _all(session, stmt)]


def followers_by_host(session: Session, *, limit: int) -> list[tuple[str, int]]:
    """(host, followers) for the hosts with the most followers."""
    host = col(Actor.host)  # NULL when the actor row is missing (grouped as "unknown")
    stmt = (
        sa_select(host, func.count())
        .select_from(Follower)
        .join(Actor, col(Actor.ap_id) == col(Follower.actor_ap_id), isouter=True)
        .group_by(host)
        .order_by(func.count().desc(), host)
        .limit(limit)
    )
    return [(h or "unknown", int(n)) for h, n in _all(session, stmt)]


def failing_inboxes(session: Session, *, limit: int) -> list[FailingInbox]:
    """Inboxes with pending deliveries that have failed at least once, worst first, with the last error.

    Two statements: a GROUP BY over the pending rows, then the newest failed row of each group
    by primary key.
    """
    grouped = _all(
        session,
        sa_select(col(Delivery.inbox), col(Delivery.host), func.count(), func.max(Delivery.attempts),
                  func.min(Delivery.next_attempt_at), func.max(Delivery.id))
        .where(col(Delivery.state) == "pending", col(Delivery.attempts) > 0)
        .group_by(col(Delivery.inbox), col(Delivery.host))
        .order_by(func.count().desc(), col(Delivery.inbox))
        .limit(limit),
    )
    last_ids = [g[5] for g in grouped]
    last = {
        d_id: (status, error)
        for d_id, status, error in _all(
            session,
            sa_select(col(Delivery.id), col(Delivery.last_status), col(Delivery.last_error))
            .where(col(Delivery.id).in_(last_ids)),
        )
    } if last_ids else {}
    return [
        FailingInbox(inbox, host, int(n), int(attempts), utc(next_at), *last.get(last_id, (None, None)))
        for inbox, host, n, attempts, next_at, last_id in grouped
    ]


def unavailable_hosts(session: Session, *, limit: int) -> Sequence[HostHealth]:
    return session.exec(
        select(HostHealth).where(col(HostHealth.unavailable).is_(True)).order_by(col(HostHealth.host)).limit(limit)
    ).all()


def recent_interactions(session: Session, *, limit: int) -> list[RecentInteraction]:
    stmt = (
        sa_select(col(Interaction.id), col(Interaction.kind), col(Interaction.via), col(Interaction.status),
                  col(Interaction.author_name), col(Interaction.author_url), col(Interaction.published_at),
                  col(Post.slug), col(Post.title))
        .join(Post, col(Post.id) == col(Interaction.post_id))
        .order_by(col(Interaction.published_at).desc(), col(Interaction.id).desc())
        .limit(limit)
    )
    return [
        RecentInteraction(i, k, v, st, a, u, utc(p), slug, title)
        for i, k, v, st, a, u, p, slug, title in _all(session, stmt)
    ]


def _per_day(session: Session, column: Any, since: datetime, *where: Any) -> dict[date, int]:
    day = func.date(column)  # SQLite: 'YYYY-MM-DD' text; PostgreSQL: a date (the session runs in UTC)
    rows = _all(session, sa_select(day, func.count()).where(column >= since, *where).group_by(day))
    return {d if isinstance(d, date) else date.fromisoformat(str(d)): int(n) for d, n in rows}


def followers_per_day(session: Session, since: datetime) -> dict[date, int]:
    """New followers per UTC day since ``since`` (of those who still follow)."""
    return _per_day(session, col(Follower.created_at), since)


def interactions_per_day(session: Session, since: datetime) -> dict[date, int]:
    """Interactions (any kind, not deleted) per UTC day since ``since``."""
    return _per_day(session, col(Interaction.published_at), since, col(Interaction.status) != "deleted")


def retry_now(session: Session, now: datetime, *, inbox: str | None = None, host: str | None = None) -> int:
    """Make the pending deliveries to ``inbox`` (or to every inbox on ``host``) due now.

    Rows a worker holds right now keep their lease; the worker settles them as usual.
    """
    stmt = update(Delivery).where(col(Delivery.state) == "pending", col(Delivery.next_attempt_at) > now)
    if inbox is not None:
        stmt = stmt.where(col(Delivery.inbox) == inbox)
    elif host is not None:
        stmt = stmt.where(col(Delivery.host) == host)
    else:
        raise ValueError("retry_now needs an inbox or a host")
    result = session.execute(stmt.values(next_attempt_at=now), execution_options={"synchronize_session": False})
    return int(result.rowcount)  # type: ignore[attr-defined]

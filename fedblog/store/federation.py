"""Queries for federation state: followers, activities, deliveries. No business rules."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import func, or_, update
from sqlmodel import Session, col, select

from fedblog.store.tables import Activity, Delivery, Follower, HostHealth, InboxItem


def count_followers(session: Session) -> int:
    return session.exec(select(func.count()).select_from(Follower)).one()


def list_followers(session: Session, *, offset: int, limit: int) -> Sequence[Follower]:
    return session.exec(select(Follower).order_by(col(Follower.id)).offset(offset).limit(limit)).all()


def get_activity(session: Session, ap_id: str) -> Activity | None:
    return session.exec(select(Activity).where(Activity.ap_id == ap_id)).first()


def delivery_counts(session: Session) -> dict[str, int]:
    rows = session.exec(select(Delivery.state, func.count()).group_by(col(Delivery.state))).all()
    return {state: n for state, n in rows}


def list_deliveries(session: Session, *, states: Sequence[str], limit: int) -> Sequence[tuple[Delivery, Activity]]:
    stmt = (
        select(Delivery, Activity)
        .join(Activity, col(Activity.id) == col(Delivery.activity_id))
        .where(col(Delivery.state).in_(states))
        .order_by(col(Delivery.next_attempt_at).desc(), col(Delivery.id).desc())
        .limit(limit)
    )
    return session.exec(stmt).all()


def list_unavailable_hosts(session: Session) -> Sequence[HostHealth]:
    return session.exec(select(HostHealth).where(col(HostHealth.unavailable).is_(True))).all()


def pending_count(session: Session, *, due_only: bool = False, now: object = None) -> int:
    stmt = select(func.count()).select_from(Delivery).where(Delivery.state == "pending")
    if due_only and now is not None:
        stmt = stmt.where(col(Delivery.next_attempt_at) <= now)
    return session.exec(stmt).one()


def clear_host_failures(session: Session, hosts: Collection[str], now: datetime) -> None:
    """We heard from ``hosts``: forget their failures. One UPDATE that touches nothing when healthy."""
    if not hosts:
        return
    stmt = (
        update(HostHealth)
        .where(
            col(HostHealth.host).in_(list(hosts)),
            or_(col(HostHealth.failure_days) != "", col(HostHealth.unavailable).is_(True)),
        )
        .values(failure_days="", unavailable=False, last_success_at=now)
    )
    session.connection().execute(stmt)


def list_failed_inbox_items(session: Session, *, limit: int | None = None) -> Sequence[InboxItem]:
    """Inbox activities whose processing failed (dead letters), oldest first."""
    stmt = select(InboxItem).where(col(InboxItem.state) == "failed").order_by(col(InboxItem.id))
    return session.exec(stmt.limit(limit) if limit else stmt).all()

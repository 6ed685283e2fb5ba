"""Claiming and settling delivery rows. Every function takes the session first.

A claim sets a lease (``lease_until``, ``leased_by``) in one UPDATE, so two workers never hold
the same row: PostgreSQL picks rows with ``FOR UPDATE SKIP LOCKED``, SQLite serialises writers.
A killed worker's lease simply expires and the row is claimed again (at-least-once delivery).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from fedblog.store.tables import Activity, Delivery, Follower, HostHealth


@dataclass(frozen=True)
class Claimed:
    id: int
    inbox: str
    host: str
    attempts: int
    created_at: datetime
    activity_id: int


def claim_due(session: Session, *, worker: str, now: datetime, limit: int, lease: timedelta,
              exclude_hosts: Collection[str] = ()) -> list[Claimed]:
    """Lease up to ``limit`` due pending deliveries for ``worker`` and commit the lease.

    Rows for ``exclude_hosts`` are left alone (the caller already holds a backlog for them).
    """
    due = (
        select(Delivery.id)
        .where(
            Delivery.state == "pending",
            col(Delivery.next_attempt_at) <= now,
            or_(col(Delivery.lease_until).is_(None), col(Delivery.lease_until) < now),
        )
        .order_by(col(Delivery.next_attempt_at), col(Delivery.id))
        .limit(limit)
    )
    if exclude_hosts:
        due = due.where(col(Delivery.host).not_in(list(exclude_hosts)))
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    stmt = (
        update(Delivery)
        .where(col(Delivery.id).in_(due.scalar_subquery()))
        .values(lease_until=now + lease, leased_by=worker)
        .returning(
            col(Delivery.id),
            col(Delivery.inbox),
            col(Delivery.host),
            col(Delivery.attempts),
            col(Delivery.created_at),
            col(Delivery.activity_id),
        )
    )
    rows = session.execute(stmt, execution_options={"synchronize_session": False}).all()
    session.commit()
    return [Claimed(*row) for row in rows]


def release(session: Session, ids: Sequence[int], *, worker: str) -> None:
    """Give back leases this worker holds but will not use (it is stopping): others may claim them now."""
    if not ids:
        return
    stmt = (
        update(Delivery)
        .where(col(Delivery.state) == "pending", col(Delivery.leased_by) == worker, col(Delivery.id).in_(list(ids)))
        .values(lease_until=None, leased_by=None)
    )
    session.execute(stmt, execution_options={"synchronize_session": False})


def activity_bodies(session: Session, ids: Sequence[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.exec(select(col(Activity.id), col(Activity.body)).where(col(Activity.id).in_(ids))).all()
    return dict(rows)  # type: ignore[arg-type]  # Activity.id is Optional only before the INSERT


def _owned(session: Session, delivery_id: int, worker: str) -> Delivery | None:
    row = session.get(Delivery, delivery_id)
    if row is None or row.state != "pending" or row.leased_by != worker:
        return None  # lease lost (expired and re-claimed) or settled elsewhere
    return row


def mark_sent(session: Session, ids: Sequence[int], *, worker: str, now: datetime) -> None:
    """Settle many successful deliveries in one statement (only rows this worker still holds)."""
    if not ids:
        return
    stmt = (
        update(Delivery)
        .where(col(Delivery.state) == "pending", col(Delivery.leased_by) == worker, col(Delivery.id).in_(list(ids)))
        .values(state="sent", finished_at=now, attempts=Delivery.attempts + 1, last_error=None,
                lease_until=None, leased_by=None)
    )
    session.execute(stmt, execution_options={"synchronize_session": False})


def mark_retry(session: Session, delivery_id: int, *, worker: str, now: datetime, at: datetime,
               status: int | None, error: str) -> None:
    row = _owned(session, delivery_id, worker)
    if row is None:
        return
    row.attempts += 1
    row.next_attempt_at, row.last_status, row.last_error = at, status, error[:1000]
    row.lease_until = row.leased_by = None
    session.add(row)


def mark_gave_up(
    session: Session, delivery_id: int, *, worker: str, now: datetime, status: int | None, error: str
) -> None:
    row = _owned(session, delivery_id, worker)
    if row is None:
        return
    row.attempts += 1
    row.state, row.finished_at, row.last_status, row.last_error = "gave_up", now, status, error[:1000]
    row.lease_until = row.leased_by = None
    session.add(row)


def remove_followers_at(session: Session, inbox: str) -> int:
    """A 410 from an inbox: the followers behind it are gone."""
    gone = session.exec(
        select(Follower).where((col(Follower.inbox) == inbox) | (col(Follower.shared_inbox) == inbox))
    ).all()
    for f in gone:
        session.delete(f)
    return len(gone)


def record_host_failure(session: Session, host: str, now: datetime, *, days_for_unavailable: int) -> bool:
    """Remember a failing UTC day for ``host``; True when it is (now) unavailable."""
    row = session.get(HostHealth, host) or HostHealth(host=host)
    days = set(filter(None, row.failure_days.split(",")))
    days.add(now.strftime("%Y-%m-%d"))
    row.failure_days = ",".join(sorted(days))
    row.last_failure_at = now
    row.unavailable = len(days) >= days_for_unavailable
    session.add(row)
    return row.unavailable



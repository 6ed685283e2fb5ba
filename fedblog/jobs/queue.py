"""Claiming and settling delivery rows (and other jobs on the same queue). Every function takes
the session first.

A claim sets a lease (``lease_until``, ``leased_by``) in one UPDATE, so two workers never hold
the same row: PostgreSQL picks rows with ``FOR UPDATE SKIP LOCKED``, SQLite serialises writers.
A live worker renews its leases every third of the lease (``renew``, the heartbeat), so a lease
can be short (30 s): a killed worker's rows are claimed again soon after (at-least-once
delivery), while a worker that is merely slow keeps them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from fedblog.federation.outbox import DELIVER as DELIVER  # the kind of a delivery row
from fedblog.store.tables import Activity, Delivery, Follower, HostHealth


@dataclass(frozen=True)
class Claimed:
    id: int
    inbox: str  # a delivery's inbox; the URL another kind of job contacts
    host: str
    attempts: int
    created_at: datetime
    activity_id: int | None  # None for a job that is not a delivery
    kind: str = DELIVER
    payload: str | None = None  # a job's JSON arguments


@dataclass(frozen=True)
class Outgoing:
    """What a delivery sends: the activity's body, signed by its local actor."""

    body: bytes
    actor: str


def _due(now: datetime, kinds: Collection[str] | None = None) -> list[ColumnElement[bool]]:
    due = [
        col(Delivery.state) == "pending",
        col(Delivery.next_attempt_at) <= now,
        or_(col(Delivery.lease_until).is_(None), col(Delivery.lease_until) < now),
    ]
    if kinds is not None:  # a worker claims only the kinds it has handlers for
        due.append(col(Delivery.kind).in_(list(kinds)))
    return due


def claim_due(session: Session, *, worker: str, now: datetime, limit: int, lease: timedelta,
              exclude_hosts: Collection[str] = (), per_host: int | None = None,
              kinds: Collection[str] | None = None) -> list[Claimed]:
    """Lease up to ``limit`` due pending rows of ``kinds`` (all if None) for ``worker`` and
    commit the lease.

    Fair across hosts: at most ``per_host`` rows of one host, and rows are taken by their rank
    within their host first (every host's oldest due row, then every host's second, ...), so a
    host with one due row is never behind a thousand rows of another. Rows for ``exclude_hosts``
    are left alone (the caller already holds enough of them).
    """
    per_host = per_host or limit
    rank = func.row_number().over(partition_by=col(Delivery.host),
                                  order_by=(col(Delivery.next_attempt_at), col(Delivery.id)))
    ranked = sa_select(col(Delivery.id).label("id"), col(Delivery.next_attempt_at).label("at"),
                    rank.label("rank")).where(*_due(now, kinds))
    if exclude_hosts:
        ranked = ranked.where(col(Delivery.host).not_in(list(exclude_hosts)))
    r = ranked.subquery()
    # The due conditions again on the rows locked: PostgreSQL re-checks them after a concurrent commit.
    # With a LIMIT, PostgreSQL locks rows one by one as they come out of the sort and skips those
    # another claimer holds, so two workers claiming at once take different rows.
    due = (
        select(Delivery.id)
        .join(r, r.c.id == col(Delivery.id))
        .where(r.c.rank <= per_host, *_due(now, kinds))
        .order_by(r.c.rank, r.c.at, r.c.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True, of=Delivery)
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
            col(Delivery.kind),
            col(Delivery.payload),
        )
    )
    rows = session.execute(stmt, execution_options={"synchronize_session": False}).all()
    session.commit()
    return [Claimed(*row) for row in rows]


def has_due(session: Session, *, now: datetime, exclude_hosts: Collection[str] = (),
            kinds: Collection[str] | None = None) -> bool:
    """Is any row due and free? (An empty SKIP LOCKED claim may only mean another claim is under way.)"""
    stmt = select(Delivery.id).where(*_due(now, kinds)).limit(1)
    if exclude_hosts:
        stmt = stmt.where(col(Delivery.host).not_in(list(exclude_hosts)))
    return session.exec(stmt).first() is not None


def renew(session: Session, ids: Sequence[int], *, worker: str, until: datetime) -> set[int]:
    """Extend this worker's leases on ``ids`` to ``until`` (the heartbeat) and commit.

    Returns the ids still held; a row missing from the answer was settled or taken over.
    """
    held: set[int] = set()
    id_list = list(ids)
    for start in range(0, len(id_list), 500):
        chunk = id_list[start : start + 500]
        stmt = (
            update(Delivery)
            .where(col(Delivery.state) == "pending", col(Delivery.leased_by) == worker, col(Delivery.id).in_(chunk))
            .values(lease_until=until)
            .returning(col(Delivery.id))
        )
        held.update(session.execute(stmt, execution_options={"synchronize_session": False}).scalars())
    session.commit()
    return held


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


def activity_bodies(session: Session, ids: Sequence[int]) -> dict[int, Outgoing]:
    """The body and sending actor of each activity in ``ids``."""
    if not ids:
        return {}
    stmt = select(col(Activity.id), col(Activity.body), col(Activity.actor)).where(col(Activity.id).in_(ids))
    return {aid: Outgoing(body.encode(), actor) for aid, body, actor in session.exec(stmt).all() if aid is not None}


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



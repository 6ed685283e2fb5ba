"""Storage of the admin area: the owner's password hash, sessions, failed logins. No rules here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from fedblog.clock import utc
from fedblog.store.tables import AdminLoginFailure, AdminSession, BlogState

PASSWORD_KEY = "admin_password"


def get_password_hash(session: Session) -> str | None:
    row = session.get(BlogState, PASSWORD_KEY)
    return row.value if row is not None else None


def set_password_hash(session: Session, encoded: str, now: datetime) -> None:
    row = session.get(BlogState, PASSWORD_KEY) or BlogState(key=PASSWORD_KEY, value="", updated_at=now)
    row.value, row.updated_at = encoded, now
    session.add(row)


def add_session(session: Session, token_hash: str, csrf_token: str, now: datetime, expires_at: datetime) -> None:
    session.add(AdminSession(token_hash=token_hash, csrf_token=csrf_token, created_at=now, expires_at=expires_at))


def get_live_session(session: Session, token_hash: str, now: datetime) -> AdminSession | None:
    """The session with this token hash if it has not expired (one primary-key lookup)."""
    row = session.get(AdminSession, token_hash)
    return row if row is not None and utc(row.expires_at) > now else None


def delete_session(session: Session, token_hash: str) -> None:
    session.execute(delete(AdminSession).where(col(AdminSession.token_hash) == token_hash))


def delete_all_sessions(session: Session) -> int:
    return session.execute(delete(AdminSession)).rowcount  # type: ignore[attr-defined, no-any-return]


def purge_expired_sessions(session: Session, now: datetime) -> None:
    session.execute(delete(AdminSession).where(col(AdminSession.expires_at) <= now))


def failures_since(session: Session, since: datetime, ip: str) -> tuple[int, datetime | None, int, datetime | None]:
    """(failures from ``ip``, the oldest of them, all failures, the oldest of all) since ``since``."""
    by_ip = session.exec(
        select(func.count(), func.min(AdminLoginFailure.at)).where(
            col(AdminLoginFailure.at) > since, AdminLoginFailure.ip == ip
        )
    ).one()
    total = session.exec(
        select(func.count(), func.min(AdminLoginFailure.at)).where(col(AdminLoginFailure.at) > since)
    ).one()
    return by_ip[0], _aware(by_ip[1]), total[0], _aware(total[1])


def add_failure(session: Session, ip: str, now: datetime, *, purge_before: datetime) -> None:
    """Record a failed login and forget those older than the window (the table stays small)."""
    session.execute(delete(AdminLoginFailure).where(col(AdminLoginFailure.at) <= purge_before))
    session.add(AdminLoginFailure(ip=ip[:64], at=now))


def clear_failures(session: Session, ip: str | None = None) -> None:
    stmt = delete(AdminLoginFailure)
    if ip is not None:
        stmt = stmt.where(col(AdminLoginFailure.ip) == ip[:64])
    session.execute(stmt)


def _aware(dt: datetime | None) -> datetime | None:
    return utc(dt) if dt is not None else None

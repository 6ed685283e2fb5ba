"""The blog's profile and settings as saved from the admin: ``blog_state`` rows named ``profile.*``.

A ``profile_version`` row counts the saves; a process keeps what it read with the version, and
asks only for the version (one primary-key read) to know whether another process saved since.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlmodel import Session, col

from fedblog.store.tables import BlogState

PREFIX = "profile."
VERSION_KEY = "profile_version"
PINNED_KEY = "pinned_posts"


def read_version(session: Session) -> str:
    """The save counter ("0" before the first save)."""
    value = session.execute(select(col(BlogState.value)).where(col(BlogState.key) == VERSION_KEY)).scalar()
    return value or "0"


def read_all(session: Session) -> tuple[str, dict[str, str]]:
    """(version, {name: value}) of every stored profile value, in one query."""
    rows = session.execute(
        select(col(BlogState.key), col(BlogState.value)).where(
            (col(BlogState.key) == VERSION_KEY) | col(BlogState.key).startswith(PREFIX)
        )
    ).all()
    values = {k.removeprefix(PREFIX): v for k, v in rows if k != VERSION_KEY}
    version = next((v for k, v in rows if k == VERSION_KEY), "0")
    return version, values


def _put(session: Session, key: str, value: str, now: datetime) -> None:
    row = session.get(BlogState, key)
    if row is None:
        session.add(BlogState(key=key, value=value, updated_at=now))
    else:
        row.value, row.updated_at = value, now
    session.flush()


def write(session: Session, values: Mapping[str, str | None], now: datetime) -> str:
    """Store ``values`` (None deletes: back to the default) and bump the version; not committed.

    The version row is updated in the same transaction, so a reader that sees the new version
    sees the new values. Returns the new version.
    """
    for name, value in values.items():
        if value is None:
            session.execute(delete(BlogState).where(col(BlogState.key) == PREFIX + name))
        else:
            _put(session, PREFIX + name, value, now)
    current = session.get(BlogState, VERSION_KEY, with_for_update=True)
    if current is None:
        _put(session, VERSION_KEY, "1", now)
        return "1"
    new = str(int(current.value) + 1)
    session.execute(update(BlogState).where(col(BlogState.key) == VERSION_KEY).values(value=new, updated_at=now))
    return new


def read_pinned(session: Session, *, for_update: bool = False) -> list[int]:
    """Ids of the pinned posts, the latest pin first (``for_update``: locked until commit)."""
    row = session.get(BlogState, PINNED_KEY, with_for_update=for_update)
    if row is None or not row.value:
        return []
    return [int(x) for x in row.value.split(",") if x.isdigit()]


def write_pinned(session: Session, post_ids: list[int], now: datetime) -> None:
    _put(session, PINNED_KEY, ",".join(str(i) for i in post_ids), now)

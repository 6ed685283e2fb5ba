"""Old URLs of imported posts (``legacy_path``): one indexed lookup per request."""

from __future__ import annotations

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from fedblog.store.tables import LegacyPath, Post

_SLUG_FOR_PATH = (
    sa_select(col(Post.slug))
    .join(LegacyPath, col(LegacyPath.post_id) == col(Post.id))
    .where(col(LegacyPath.path).in_(bindparam("paths", expanding=True)), col(Post.draft).is_(False))
    .limit(1)
)


def slug_for_old_path(session: Session, paths: list[str]) -> str | None:
    """The slug of the post one of ``paths`` (tried as equals) used to name, if any."""
    row = session.connection().execute(_SLUG_FOR_PATH, {"paths": paths}).first()
    return str(row[0]) if row is not None else None

"""Queries on uploaded media and the posts that use them. No business rules."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, delete, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from fedblog.store.tables import Media, Post, PostMedia

_MEDIA_FOR_POSTS = (
    sa_select(col(PostMedia.post_id), col(PostMedia.role), col(PostMedia.position), Media)
    .join(Media, col(Media.id) == col(PostMedia.media_id))
    .where(col(PostMedia.post_id).in_(bindparam("ids", expanding=True)))
    .order_by(col(PostMedia.post_id), col(PostMedia.role).desc(), col(PostMedia.position))
)


def add_media(session: Session, *, key: str, path: str, media_type: str, width: int, height: int, alt: str,
              now: datetime) -> Media:
    """The row for this stored file (the same picture uploaded twice is one row); alt text updated."""
    row = session.exec(select(Media).where(Media.key == key)).first()
    if row is None:
        row = Media(key=key, path=path, media_type=media_type, width=width, height=height, alt=alt, created_at=now)
    elif alt:
        row.alt = alt
    session.add(row)
    session.flush()
    return row


def media_by_keys(session: Session, keys: Sequence[str]) -> dict[str, Media]:
    if not keys:
        return {}
    return {m.key: m for m in session.exec(select(Media).where(col(Media.key).in_(list(keys)))).all()}


def set_alt(session: Session, media: Media, alt: str) -> None:
    if media.alt != alt:
        media.alt = alt
        session.add(media)


def media_for_posts(session: Session, post_ids: Sequence[int]) -> dict[int, list[tuple[str, Media]]]:
    """(role, media) of many posts in one query: the cover first, then attachments in order."""
    out: dict[int, list[tuple[str, Media]]] = defaultdict(list)
    if not post_ids:
        return out
    for post_id, role, _position, media in session.execute(_MEDIA_FOR_POSTS, {"ids": list(post_ids)}).all():
        out[post_id].append((role, media))
    return out


def set_post_media(session: Session, post_id: int, cover: Media | None, attachments: Sequence[Media]) -> None:
    session.execute(delete(PostMedia).where(col(PostMedia.post_id) == post_id))
    seen: set[int] = set()
    if cover is not None and cover.id is not None:
        session.add(PostMedia(post_id=post_id, media_id=cover.id, role="cover", position=0))
        seen.add(cover.id)
    for position, media in enumerate(attachments, start=1):
        if media.id is not None and media.id not in seen:
            session.add(PostMedia(post_id=post_id, media_id=media.id, role="attachment", position=position))
            seen.add(media.id)
    session.flush()


def due_scheduled(session: Session, now: datetime, limit: int = 20) -> list[tuple[int, datetime]]:
    """(id, scheduled_at) of drafts due now: served by the index on post.scheduled_at."""
    stmt = (
        sa_select(col(Post.id), col(Post.scheduled_at))
        .where(col(Post.scheduled_at).is_not(None), col(Post.scheduled_at) <= now)
        .order_by(col(Post.scheduled_at))
        .limit(limit)
    )
    return [(row[0], row[1]) for row in session.execute(stmt).all()]


def claim_scheduled(session: Session, post_id: int, scheduled_at: datetime) -> bool:
    """Take the post for publishing: only one process's conditional UPDATE changes the row."""
    result = session.execute(
        update(Post)
        .where(col(Post.id) == post_id, col(Post.scheduled_at) == scheduled_at)
        .values(scheduled_at=None)
    )
    return bool(getattr(result, "rowcount", 0) == 1)

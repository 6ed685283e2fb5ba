"""Queries on posts and tags. No business rules; every function takes the session first."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, bindparam, func
from sqlalchemy import select as sa_select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from fedblog.store.tables import Post, PostTag, Tag


def _live() -> list[ColumnElement[bool]]:
    return [col(Post.draft).is_(False), col(Post.deleted_at).is_(None)]


# Hot statements are built once: building a SELECT costs more than running it on SQLite.
_POST_BY_SLUG = select(Post).where(col(Post.slug) == bindparam("slug"))
_TAGS_FOR_POSTS = (
    sa_select(col(PostTag.post_id), col(Tag.id), col(Tag.name), col(Tag.label))
    .join(Tag, col(Tag.id) == col(PostTag.tag_id))
    .where(col(PostTag.post_id).in_(bindparam("ids", expanding=True)))
    .order_by(col(Tag.label))
)


_POST_ROW_BY_SLUG = sa_select(
    *Post.__table__.columns  # type: ignore[attr-defined]  # sqlmodel does not declare __table__
).where(col(Post.slug) == bindparam("slug"))


_POST_BY_AP_PATH = select(Post).where(col(Post.ap_path) == bindparam("ap_path"))


def get_post_by_slug(session: Session, slug: str) -> Post | None:
    return session.exec(_POST_BY_SLUG, params={"slug": slug}).first()


def get_post_by_ap_path(session: Session, ap_path: str) -> Post | None:
    """The post whose ActivityPub id has this path, deleted ones included (they answer 410)."""
    return session.exec(_POST_BY_AP_PATH, params={"ap_path": ap_path}).first()


def get_post_row(session: Session, slug: str) -> Row[*tuple[Any, ...]] | None:
    """The post as a read-only row (pages): no ORM object to build."""
    return session.connection().execute(_POST_ROW_BY_SLUG, {"slug": slug}).first()


def list_posts(session: Session, *, offset: int, limit: int) -> Sequence[Post]:
    stmt = (
        select(Post)
        .where(*_live())
        .order_by(col(Post.published_at).desc(), col(Post.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return session.exec(stmt).all()


def live_ap_paths(session: Session, post_ids: Sequence[int]) -> dict[int, str]:
    """{id: ap_path} of the published, not deleted posts among ``post_ids``."""
    if not post_ids:
        return {}
    rows = session.execute(sa_select(col(Post.id), col(Post.ap_path)).where(col(Post.id).in_(post_ids), *_live())).all()
    return {i: p for i, p in rows}


def count_posts(session: Session) -> int:
    return session.exec(select(func.count()).select_from(Post).where(*_live())).one()


def list_all_posts(session: Session, *, include_drafts: bool = True) -> Sequence[Post]:
    stmt = select(Post).where(col(Post.deleted_at).is_(None))
    if not include_drafts:
        stmt = stmt.where(col(Post.draft).is_(False))
    return session.exec(stmt.order_by(col(Post.published_at).desc())).all()


def list_archive(session: Session) -> Sequence[Row[Any]]:
    """(slug, title, published_at) of every live post, newest first: what the archive page shows."""
    stmt = sa_select(col(Post.slug), col(Post.title), col(Post.published_at)).where(*_live())
    return session.execute(stmt.order_by(col(Post.published_at).desc())).all()


def list_posts_for_tag(session: Session, tag_name: str, *, offset: int, limit: int) -> Sequence[Post]:
    stmt = (
        select(Post)
        .join(PostTag, col(PostTag.post_id) == col(Post.id))
        .join(Tag, col(Tag.id) == col(PostTag.tag_id))
        .where(Tag.name == tag_name, *_live())
        .order_by(col(Post.published_at).desc())
        .offset(offset)
        .limit(limit)
    )
    return session.exec(stmt).all()


def get_tag(session: Session, name: str) -> Tag | None:
    return session.exec(select(Tag).where(Tag.name == name)).first()


def get_or_create_tag(session: Session, name: str, label: str) -> Tag:
    tag = get_tag(session, name)
    if tag is None:
        tag = Tag(name=name, label=label)
        session.add(tag)
        session.flush()
    return tag


def tags_for_posts(session: Session, post_ids: Sequence[int]) -> dict[int, list[Row[*tuple[Any, ...]]]]:
    """Tags (id, name, label) of many posts in one query, as read-only rows."""
    out: dict[int, list[Row[*tuple[Any, ...]]]] = defaultdict(list)
    if not post_ids:
        return out
    for row in session.connection().execute(_TAGS_FOR_POSTS, {"ids": list(post_ids)}).all():
        out[row.post_id].append(row)
    return out


def set_post_tags(session: Session, post: Post, tags: Sequence[Tag]) -> None:
    assert post.id is not None
    for link in session.exec(select(PostTag).where(PostTag.post_id == post.id)).all():
        session.delete(link)
    session.flush()
    for tag in tags:
        assert tag.id is not None
        session.add(PostTag(post_id=post.id, tag_id=tag.id))


def list_tags_with_counts(session: Session) -> Sequence[tuple[Tag, int]]:
    stmt = (
        select(Tag, func.count(col(PostTag.post_id)))
        .join(PostTag, col(PostTag.tag_id) == col(Tag.id))
        .join(Post, col(Post.id) == col(PostTag.post_id))
        .where(*_live())
        .group_by(col(Tag.id))
        .order_by(col(Tag.label))
    )
    return session.exec(stmt).all()

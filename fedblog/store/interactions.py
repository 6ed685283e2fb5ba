"""Queries on interactions (every comment-like thing). No business rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, and_, bindparam, case, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from fedblog.store.tables import Interaction

VISIBLE = "visible"


# What a post page shows of each interaction. Read as plain rows, not ORM objects: building 300
# ORM objects cost 4x the query itself (bench/bench_pages.py).
DISPLAY_COLUMNS = (
    Interaction.id, Interaction.post_id, Interaction.parent_id, Interaction.kind, Interaction.via,
    Interaction.status, Interaction.ap_id, Interaction.author_name, Interaction.author_url,
    Interaction.author_handle, Interaction.author_avatar, Interaction.title, Interaction.content_html,
    Interaction.source_url, Interaction.published_at, Interaction.updated_at,
)


_FOR_POST = (
    sa_select(*(col(c) for c in DISPLAY_COLUMNS))
    .where(col(Interaction.post_id) == bindparam("post_id"),
           col(Interaction.status).in_(bindparam("statuses", expanding=True)))
    .order_by(col(Interaction.published_at), col(Interaction.id))
)


def list_for_post(
    session: Session, post_id: int, *, statuses: Sequence[str] = (VISIBLE,)
) -> Sequence[Row[*tuple[Any, ...]]]:
    """All interactions of a post in display order, in one query, as read-only rows."""
    return session.connection().execute(_FOR_POST, {"post_id": post_id, "statuses": list(statuses)}).all()


def comment_counts(session: Session, post_ids: Sequence[int]) -> dict[int, int]:
    """Visible comment-like interactions per post, in one query (for lists)."""
    if not post_ids:
        return {}
    stmt = (
        select(Interaction.post_id, func.count())
        .where(
            col(Interaction.post_id).in_(post_ids),
            Interaction.status == VISIBLE,
            col(Interaction.kind).in_(("reply", "comment")),
        )
        .group_by(col(Interaction.post_id))
    )
    return dict(session.exec(stmt).all())


def get_interaction(session: Session, interaction_id: int) -> Interaction | None:
    return session.get(Interaction, interaction_id)



def get_by_activity_id(session: Session, activity_ap_id: str) -> Interaction | None:
    return session.exec(select(Interaction).where(Interaction.activity_ap_id == activity_ap_id)).first()


def _public_replies(post_id: int, parent_id: int | None, whole_thread: bool) -> SelectOfScalar[str | None]:
    stmt = select(col(Interaction.ap_id)).where(
        Interaction.status == VISIBLE, Interaction.via == "activitypub",
        Interaction.kind == "reply", col(Interaction.ap_id).is_not(None),
    )
    # ix_interaction_post_kind serves a whole thread, ix_interaction_parent_kind one comment's
    # replies (a comment's replies are all on its post: the post filter would only mislead the planner)
    if whole_thread:
        return stmt.where(Interaction.post_id == post_id)
    return stmt.where(Interaction.parent_id == parent_id)


def list_reply_ids(session: Session, post_id: int, *, parent_id: int | None = None, whole_thread: bool,
                   offset: int, limit: int) -> list[str]:
    """Ids of visible fediverse replies, oldest first: a whole thread, or one comment's replies."""
    stmt = _public_replies(post_id, parent_id, whole_thread).order_by(
        col(Interaction.published_at), col(Interaction.id)
    )
    return [r for r in session.exec(stmt.offset(offset).limit(limit)).all() if r]


def count_reply_ids(session: Session, post_id: int, *, parent_id: int | None = None, whole_thread: bool) -> int:
    sub = _public_replies(post_id, parent_id, whole_thread).subquery()
    return session.exec(select(func.count()).select_from(sub)).one()


def reaction_counts(session: Session, post_id: int) -> dict[str, int]:
    stmt = (
        select(Interaction.kind, func.count())
        .where(
            Interaction.post_id == post_id, Interaction.status == VISIBLE, col(Interaction.kind).in_(("like", "repost"))
        )
        .group_by(col(Interaction.kind))
    )
    return dict(session.exec(stmt).all())


@dataclass(frozen=True)
class ThreadStats:
    """What an Article says of its thread: reaction counts, and its public replies' ids."""

    likes: int = 0
    shares: int = 0
    replies: int = 0
    first_replies: tuple[str, ...] = ()


def _is_public_reply() -> Any:
    return and_(col(Interaction.kind) == "reply", col(Interaction.via) == "activitypub",
                col(Interaction.ap_id).is_not(None))


def _how_many(cond: Any) -> Any:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def thread_stats(session: Session, post_ids: Sequence[int], *, first_page: int) -> dict[int, ThreadStats]:
    """Counts and the first ``first_page`` reply ids of many posts: two queries whatever their number."""
    if not post_ids:
        return {}
    counts = session.connection().execute(
        sa_select(col(Interaction.post_id), _how_many(Interaction.kind == "like"),
                  _how_many(Interaction.kind == "repost"), _how_many(_is_public_reply()))
        .where(col(Interaction.post_id).in_(post_ids), col(Interaction.status) == VISIBLE,
               col(Interaction.kind).in_(("like", "repost", "reply")))
        .group_by(col(Interaction.post_id))
    ).all()
    stats = {row[0]: (int(row[1]), int(row[2]), int(row[3])) for row in counts}
    with_replies = [pid for pid, (_, _, n) in stats.items() if n]
    first: dict[int, list[str]] = {pid: [] for pid in with_replies}
    if len(with_replies) == 1:  # one thread (a post's own JSON): a LIMIT, served by the index
        first[with_replies[0]] = list_reply_ids(session, with_replies[0], whole_thread=True, offset=0,
                                                limit=first_page)
    elif with_replies:  # a page of posts: one windowed query
        rank = func.row_number().over(partition_by=col(Interaction.post_id),
                                      order_by=(col(Interaction.published_at), col(Interaction.id))).label("rank")
        sub = (sa_select(col(Interaction.post_id), col(Interaction.ap_id), rank)
               .where(col(Interaction.post_id).in_(with_replies), col(Interaction.status) == VISIBLE,
                      _is_public_reply())
               .subquery())
        rows = session.connection().execute(  # at most first_page rows a post: sorted here, not by a temp B-tree
            sa_select(sub.c.post_id, sub.c.ap_id, sub.c.rank).where(sub.c.rank <= first_page)
        ).all()
        for post_id, ap_id, _rank in sorted(rows, key=lambda r: (r.post_id, r.rank)):
            first[post_id].append(ap_id)
    return {
        pid: ThreadStats(likes=likes, shares=shares, replies=replies, first_replies=tuple(first.get(pid, ())))
        for pid, (likes, shares, replies) in stats.items()
    }

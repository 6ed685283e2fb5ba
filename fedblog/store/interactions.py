"""Queries on interactions (every comment-like thing). No business rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import and_, bindparam, case, func, or_, union_all
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from fedblog.store.tables import ImportItem, Interaction

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
) -> list[SimpleNamespace]:
    """All interactions of a post in display order, in one query, as plain read-only objects (a
    template reads each of 300 rows' attributes many times: a ``SimpleNamespace`` attribute is a
    dict look-up, a ``Row`` attribute a keyed tuple look-up through SQLAlchemy, measurably slower)."""
    result = session.connection().execute(_FOR_POST, {"post_id": post_id, "statuses": list(statuses)})
    return [SimpleNamespace(**row) for row in result.mappings()]


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


# What the ``replies`` and ``context`` collections list: every visible object of the thread that
# has an ActivityPub id of its own and is not a reaction. That is a fediverse reply (its own id),
# an owner's reply, and a published local comment (a web comment, pingback, Webmention or import
# published by fedblog.federation.local_comments, whose id is /comments/{id}); a comment without
# consent to federate has no ``ap_id`` and is never listed.
REACTIONS = ("like", "repost")
# A comment's replies are of these (kind, via): fediverse and owner replies, web and imported comments
CHILD_STREAMS = (("reply", "activitypub"), ("comment", "form"), ("comment", "import"))


def _is_listed() -> Any:
    return and_(col(Interaction.ap_id).is_not(None), col(Interaction.kind).not_in(REACTIONS))


def _thread_rows() -> Any:
    # ix_interaction_thread (post_id, status, published_at, id) serves it in order, no sort: the
    # reactions and unpublished comments it skips are the post's own rows only
    return (sa_select(col(Interaction.ap_id), col(Interaction.published_at), col(Interaction.id))
            .where(col(Interaction.post_id) == bindparam("post_id"), col(Interaction.status) == VISIBLE, _is_listed())
            .order_by(col(Interaction.published_at), col(Interaction.id)))


_THREAD_PAGE = _thread_rows().limit(bindparam("limit")).offset(bindparam("offset"))


def _child_rows(kind: str, via: str) -> Any:
    # ix_interaction_parent_kind (parent_id, status, kind, via, published_at, id): one ordered range
    return (sa_select(col(Interaction.ap_id), col(Interaction.published_at), col(Interaction.id))
            .where(col(Interaction.parent_id) == bindparam("parent_id"), col(Interaction.status) == VISIBLE,
                   col(Interaction.kind) == kind, col(Interaction.via) == via, col(Interaction.ap_id).is_not(None))
            .order_by(col(Interaction.published_at), col(Interaction.id))
            .limit(bindparam("upto")))


# each stream in index order, at most offset + limit rows each; merged here (no sort in the database)
_CHILD_PAGE = union_all(*(sa_select(s) for s in (_child_rows(k, v).subquery() for k, v in CHILD_STREAMS)))


def list_reply_ids(session: Session, post_id: int, *, parent_id: int | None = None, whole_thread: bool,
                   offset: int, limit: int) -> list[str]:
    """Ids of the visible published objects of a thread (fediverse replies and local comments),
    oldest first: a whole thread, or one comment's replies."""
    conn = session.connection()
    if whole_thread:
        rows = conn.execute(_THREAD_PAGE, {"post_id": post_id, "limit": limit, "offset": offset}).all()
        return [r[0] for r in rows]
    rows = conn.execute(_CHILD_PAGE, {"parent_id": parent_id, "upto": offset + limit}).all()
    rows = sorted(rows, key=lambda r: (r[1], r[2]))  # one database: all naive or all aware
    return [r[0] for r in rows[offset:offset + limit]]


def count_reply_ids(session: Session, post_id: int, *, parent_id: int | None = None, whole_thread: bool) -> int:
    stmt = select(func.count()).select_from(Interaction).where(Interaction.status == VISIBLE)
    if whole_thread:
        stmt = stmt.where(Interaction.post_id == post_id, _is_listed())
    else:
        streams = [and_(col(Interaction.kind) == k, col(Interaction.via) == v) for k, v in CHILD_STREAMS]
        stmt = stmt.where(Interaction.parent_id == parent_id, col(Interaction.ap_id).is_not(None), or_(*streams))
    return session.exec(stmt).one()


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
    return _is_listed()


def _how_many(cond: Any) -> Any:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def thread_stats(session: Session, post_ids: Sequence[int], *, first_page: int) -> dict[int, ThreadStats]:
    """Counts and the first ``first_page`` reply ids of many posts: two queries whatever their number."""
    if not post_ids:
        return {}
    counts = session.connection().execute(
        sa_select(col(Interaction.post_id), _how_many(Interaction.kind == "like"),
                  _how_many(Interaction.kind == "repost"), _how_many(_is_public_reply()))
        .where(col(Interaction.post_id).in_(post_ids), col(Interaction.status) == VISIBLE)
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


def local_ids_for_post(session: Session, post_id: int) -> list[int]:
    """Ids of a post's interactions that did not come from the fediverse (web, linkbacks, imports)."""
    stmt = select(Interaction.id).where(Interaction.post_id == post_id, Interaction.via != "activitypub")
    return [i for i in session.exec(stmt.order_by(col(Interaction.id))).all() if i is not None]


def imported_ids(session: Session, imported_at: datetime) -> list[int]:
    """Ids of the comments one import run brought (its ``import_item`` rows carry its start time)."""
    stmt = select(ImportItem.interaction_id).where(
        ImportItem.kind == "comment", ImportItem.imported_at == imported_at,
        col(ImportItem.interaction_id).is_not(None))
    return sorted(i for i in session.exec(stmt).all() if i is not None)

"""Every hot query is served by an index that fits it, however many rows other posts have.

The pages are requested through HTTP; the SQL they run is captured as it goes to the database and
asked for its plan (SQLite ``EXPLAIN QUERY PLAN``, PostgreSQL ``EXPLAIN``), with a few thousand
interactions on another post. A full scan of ``interaction`` or a sort for ORDER BY is the cost
that grows with the whole table (docs/performance.md).
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, insert
from sqlmodel import Session, select

from fedblog.blog.posts import parse_post_source, save_post
from fedblog.federation import local_comments
from fedblog.services import Services
from fedblog.store.db import optimize, session_scope
from fedblog.store.tables import Interaction, Post
from tests.conftest import is_postgres

pytestmark = pytest.mark.anyio
DEMO = "/posts/china-sent-back-north-korean-defectors"
AP = {"Accept": "application/activity+json"}
OTHER_ROWS = 3000


def _fill(services: Services) -> int:
    """The demo post (its comments and pingback published as activities of guests and sites, so the
    collections interleave them), a few fediverse replies and reactions on it, and many rows on
    another post."""
    now = services.clock.now()
    with session_scope(services.engine) as session:
        assert local_comments.load_demo(session, services) is not None
        save_post(session, parse_post_source("---\ntitle: Busy\nslug: busy\n---\nLots of replies."),
                  now=now, default_author="Ann", default_language="en")
    with session_scope(services.engine) as session:
        demo = session.exec(select(Post).where(Post.slug == DEMO.rsplit("/", 1)[1])).one()
        busy = session.exec(select(Post).where(Post.slug == "busy")).one()
        first = session.exec(select(Interaction).where(Interaction.post_id == demo.id)).first()
        assert first is not None and first.id is not None
        rows: list[dict[str, Any]] = []
        for i in range(OTHER_ROWS):
            kind = ("reply", "like", "repost")[i % 3]
            status = "pending" if i % 7 == 0 else "visible"
            rows.append(dict(post_id=busy.id, parent_id=None, kind=kind, via="activitypub", status=status,
                             ap_id=f"https://far.example/notes/{i}", author_name=f"Far {i}", content_html="<p>hi</p>",
                             published_at=now - timedelta(minutes=i)))
        for i in range(5):
            rows.append(dict(post_id=demo.id, parent_id=first.id if i % 2 else None, kind="reply", via="activitypub",
                             status="visible", ap_id=f"https://near.example/notes/{i}", author_name=f"Near {i}",
                             content_html="<p>yes</p>", published_at=now - timedelta(seconds=i)))
            rows.append(dict(post_id=demo.id, parent_id=None, kind="like", via="activitypub", status="visible",
                             ap_id=f"https://near.example/likes/{i}", author_name=f"Near {i}", content_html="",
                             published_at=now - timedelta(seconds=i)))
        session.connection().execute(insert(Interaction), rows)
        return first.id


def _plans(services: Services, statements: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    out = []
    with services.engine.connect() as conn:
        if is_postgres():
            conn.exec_driver_sql("SET enable_seqscan = off")  # can an index serve it at all?
        for sql, params in statements:
            prefix = "EXPLAIN " if is_postgres() else "EXPLAIN QUERY PLAN "
            rows = conn.exec_driver_sql(prefix + sql, params).all()
            plan = "\n".join(str(r[0]) if is_postgres() else str(r[-1]) for r in rows)
            out.append((sql, plan))
    return out


def _touches_interaction(sql: str) -> bool:
    low = " ".join(sql.lower().split())
    return low.startswith("select") and ("from interaction" in low or "join interaction" in low)


@pytest.mark.parametrize("analyzed", [False, True], ids=["fresh", "optimized"])
async def test_hot_queries_use_indexes_not_scans(services: Services, client: httpx.AsyncClient, analyzed: bool) -> None:
    comment_id = _fill(services)
    if analyzed:  # what start-up and the periodic task do
        optimize(services.engine, analyze=True)
        if is_postgres():
            with services.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE")
    captured: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if not executemany:
            with lock:
                captured.append((statement, parameters))

    event.listen(services.engine, "before_cursor_execute", capture)
    try:
        pages = [
            ("/", {}), (DEMO, {}), (DEMO, AP), (f"{DEMO}/replies", AP), (f"{DEMO}/replies?page=1", AP),
            (f"{DEMO}/context?page=1", AP), (f"{DEMO}/likes", AP), (f"{DEMO}/shares", AP),
            (f"/comments/{comment_id}/replies?page=1", AP), ("/users/blog", AP), ("/users/blog/outbox?page=1", AP),
        ]
        for path, headers in pages:
            r = await client.get(path, headers=headers)
            assert r.status_code == 200, (path, r.text[:300])
    finally:
        event.remove(services.engine, "before_cursor_execute", capture)
    hot = [(sql, params) for sql, params in captured if _touches_interaction(sql)]
    # a comment's replies: fediverse replies, web and imported comments, one ordered stream each
    assert any(" ".join(sql.lower().split()).count("union all") == 2 for sql, _ in hot)
    assert len(hot) >= 8, [s for s, _ in captured]  # thread, counts, reply pages, context, reactions
    problems = []
    for sql, plan in _plans(services, hot):
        lines = plan.splitlines()
        if is_postgres():
            bad = [ln for ln in lines if "Seq Scan on interaction" in ln]
        else:
            bad = [ln for ln in lines if ln.startswith("SCAN interaction") or "TEMP B-TREE FOR ORDER BY" in ln]
            if not any("interaction USING" in ln for ln in lines):
                bad.append("no index on interaction")
        if bad:
            problems.append(f"{' '.join(sql.split())}\n  -> {plan}")
    assert not problems, "\n".join(problems)


async def test_migrate_leaves_the_planner_statistics(services: Services) -> None:
    """``optimize`` (start-up, after migrate, periodically) gathers statistics SQLite's planner reads."""
    _fill(services)
    optimize(services.engine, analyze=True)
    with Session(services.engine) as session:
        if is_postgres():
            count = session.connection().exec_driver_sql(
                "SELECT count(*) FROM pg_stats WHERE tablename = 'interaction'").scalar()
        else:
            count = session.connection().exec_driver_sql(
                "SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'interaction'").scalar()
    assert count and count > 0

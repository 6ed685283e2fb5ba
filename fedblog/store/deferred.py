"""Rows a transaction will insert, held back so a batch inserts them with one executemany.

A handler that only adds rows (a fediverse reply) calls ``defer``; whoever may read those rows
before the transaction ends calls ``flush`` first (the inbox does before any other handler and
before it commits; a reply-to-a-reply in the same batch does before it looks up its parent).
The rows live in ``session.info``, so they go with the transaction and never leak into another.

Rows that name a post (``post_id``) are inserted in post id order (stable: one post's rows keep
theirs). Each insert bumps its post's version by a trigger, which on PostgreSQL locks the post's
row until commit; two processes inserting replies to the same posts in different orders could each
wait for the other (a deadlock, which PostgreSQL breaks by failing one batch: a 503 and a retry).
One order for everyone avoids it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.sql.dml import Insert
from sqlmodel import Session

_KEY = "fedblog.deferred_inserts"


def defer(session: Session, statement: Insert, row: dict[str, Any]) -> None:
    session.info.setdefault(_KEY, {}).setdefault(statement, []).append(row)


def flush(session: Session) -> None:
    """INSERT every deferred row, one executemany per statement, in the order they were deferred."""
    pending: dict[Insert, list[dict[str, Any]]] | None = session.info.pop(_KEY, None)
    if pending:
        connection = session.connection()
        for statement, rows in pending.items():
            if len(rows) > 1 and all("post_id" in row for row in rows):
                rows = sorted(rows, key=lambda row: row["post_id"])
            connection.execute(statement, rows)

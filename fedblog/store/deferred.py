"""Rows a transaction will insert, held back so a batch inserts them with one executemany.

A handler that only adds rows (a fediverse reply) calls ``defer``; whoever may read those rows
before the transaction ends calls ``flush`` first (the inbox does before any other handler and
before it commits; a reply-to-a-reply in the same batch does before it looks up its parent).
The rows live in ``session.info``, so they go with the transaction and never leak into another.
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
            connection.execute(statement, rows)

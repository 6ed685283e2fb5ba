"""Deferred inserts (store/deferred.py): one executemany per statement at the flush, rows that name
a post inserted in post id order (one lock order for the posts' version triggers on PostgreSQL),
each post's rows in the order they were deferred."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, select
from sqlmodel import Session

from fedblog.store import deferred

_META = MetaData()
_ROWS = Table("row", _META, Column("id", Integer, primary_key=True), Column("post_id", Integer),
              Column("label", String))
_OTHER = Table("other", _META, Column("id", Integer, primary_key=True), Column("label", String))
_INSERT_ROW, _INSERT_OTHER = insert(_ROWS), insert(_OTHER)  # one statement each, as the recorder's


def test_rows_are_inserted_in_post_order_each_post_keeping_its_own_order() -> None:
    engine = create_engine("sqlite://")
    _META.create_all(engine)
    with Session(engine) as session:
        for post_id, label in [(3, "a"), (1, "b"), (3, "c"), (2, "d"), (1, "e")]:
            deferred.defer(session, _INSERT_ROW, {"post_id": post_id, "label": label})
        for label in ["z", "y"]:  # rows without a post keep the order they were deferred in
            deferred.defer(session, _INSERT_OTHER, {"label": label})
        assert session.execute(select(_ROWS)).all() == []  # nothing written before the flush
        deferred.flush(session)
        deferred.flush(session)  # a second flush has nothing left to write
        session.commit()
        rows = session.execute(select(_ROWS.c.post_id, _ROWS.c.label).order_by(_ROWS.c.id)).all()
        others = session.execute(select(_OTHER.c.label).order_by(_OTHER.c.id)).scalars().all()
    assert [tuple(r) for r in rows] == [(1, "b"), (1, "e"), (2, "d"), (3, "a"), (3, "c")]
    assert others == ["z", "y"]

"""Markers: a Delete or Undo that arrives before the activity it names.

Deliveries are not ordered: a Delete (or Undo) can overtake the Create (or Like, Follow) it
undoes. The Delete leaves a persistent marker; the late original is then dropped. ActivityPub
(§7.1 Delivery, §7.4 Delete, §7.12 Undo) promises no order, so a receiver has to remember what was undone.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from fedblog.federation.contract import Delivery, Tx, id_of
from fedblog.store.tables import ObjectMarker

_MARKED = sa_select(col(ObjectMarker.ap_id)).where(col(ObjectMarker.ap_id).in_(bindparam("ids", expanding=True)))


def mark(tx: Tx, ap_id: str, actor: str, reason: str) -> None:
    """``ap_id`` was deleted or undone before it arrived: leave a persistent marker, so the late
    original is dropped, by this transaction's later activities too."""
    session = tx.session
    if session.exec(select(ObjectMarker.id).where(col(ObjectMarker.ap_id) == ap_id)).first() is None:
        session.add(ObjectMarker(ap_id=ap_id, actor_ap_id=actor, reason=reason, created_at=tx.services.clock.now()))
    tx.marked.add(ap_id)


def marker_ids(d: Delivery) -> list[str]:
    """A late original is dropped when its own id, or the id of what it creates or reacts to, is marked."""
    ids = [d.activity["id"]]
    obj_id = id_of(d.activity.get("object"))
    if obj_id and d.activity["type"] in ("Create", "Follow", "Like", "Announce"):
        ids.append(obj_id)
    return ids


def marked(session: Session, ds: Sequence[Delivery]) -> set[str]:
    """The ids among ``ds`` that a Delete or Undo, arrived first, marked: one query for a batch."""
    ids = sorted({i for d in ds for i in marker_ids(d)})
    return set(session.connection().execute(_MARKED, {"ids": ids}).scalars())

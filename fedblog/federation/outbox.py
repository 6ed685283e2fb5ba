"""The transactional outbox: an activity and its delivery rows, in the caller's transaction.

``enqueue`` never commits: the post change, the activity and one delivery row per unique inbox
are committed together by the caller, so a crash can lose none of them (DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, select

from fedblog.activitypub import vocab
from fedblog.net.origin import host_of
from fedblog.store.tables import Activity, Delivery, Follower

# Set in ``session.info`` when rows are queued; a delivery worker in the same process listens for
# commits that carry it and claims at once instead of at its next poll (fedblog.jobs.runner).
DELIVERIES_QUEUED = "fedblog.deliveries_queued"


def follower_inboxes(session: Session) -> list[str]:
    """Every follower's inbox, one per server: the shared inbox when it has one."""
    rows = session.exec(select(Follower.inbox, Follower.shared_inbox)).all()
    return sorted({shared or inbox for inbox, shared in rows})


def enqueue(
    session: Session,
    doc: dict[str, Any],
    inboxes: Iterable[str],
    *,
    now: datetime,
    object_ap_id: str | None = None,
) -> Activity:
    """Store ``doc`` and a pending delivery to each distinct inbox (not committed)."""
    return _store(session, doc, vocab.dumps(doc).decode(), inboxes, now=now, object_ap_id=object_ap_id)


def _store(
    session: Session, doc: dict[str, Any], body: str, inboxes: Iterable[str], *, now: datetime,
    object_ap_id: str | None = None,
) -> Activity:
    activity = Activity(ap_id=doc["id"], type=doc["type"], object_ap_id=object_ap_id, body=body, created_at=now)
    session.add(activity)
    session.flush()
    rows = [
        {
            "activity_id": activity.id, "inbox": inbox, "host": host_of(inbox),
            "state": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now,
        }
        for inbox in dict.fromkeys(inboxes)
    ]
    for start in range(0, len(rows), 1000):
        session.execute(insert(Delivery), rows[start : start + 1000])
    if rows:
        session.info[DELIVERIES_QUEUED] = True
    return activity


def enqueue_to_followers(
    session: Session, doc: dict[str, Any], *, now: datetime, object_ap_id: str | None = None
) -> Activity:
    return enqueue(session, doc, follower_inboxes(session), now=now, object_ap_id=object_ap_id)


def enqueue_raw(
    session: Session, raw: bytes, doc: dict[str, Any], inboxes: Iterable[str], *, now: datetime
) -> Activity | None:
    """Forward a received activity byte for byte (its LD signature must stay intact)."""
    if session.exec(select(Activity.id).where(Activity.ap_id == doc["id"])).first() is not None:
        return None  # already forwarded
    return _store(session, doc, raw.decode("utf-8"), inboxes, now=now)

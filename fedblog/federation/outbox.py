"""The transactional outbox: an activity and its delivery rows, in the caller's transaction.

``enqueue`` never commits: the post change, the activity and one delivery row per unique inbox
are committed together by the caller, so a crash can lose none of them. An activity is sent by
a local actor (the blog unless the caller names another, e.g. a guest actor): its deliveries are
signed with that actor's key. ``enqueue_job`` queues another kind of background job on the same
queue, also in the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, select

from fedblog.activitypub import vocab
from fedblog.activitypub.origin import host_of
from fedblog.store.tables import Activity, Delivery, Follower
from fedblog.urls import BLOG_ACTOR

DELIVER = "deliver"  # Delivery.kind of an activity's delivery row (fedblog.jobs.queue.DELIVER)

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
    actor: str = BLOG_ACTOR,
) -> Activity:
    """Store ``doc`` and a pending delivery to each distinct inbox (not committed). ``actor`` is
    the local actor that sends it (``fedblog.urls.BLOG_ACTOR`` or a ``guest_ref``); it must have
    keys (``fedblog.federation.keys``)."""
    return _store(session, doc, vocab.dumps(doc).decode(), inboxes, now=now, object_ap_id=object_ap_id, actor=actor)


def _store(
    session: Session, doc: dict[str, Any], body: str, inboxes: Iterable[str], *, now: datetime,
    object_ap_id: str | None = None, actor: str = BLOG_ACTOR,
) -> Activity:
    activity = Activity(ap_id=doc["id"], type=doc["type"], object_ap_id=object_ap_id, body=body, created_at=now,
                        actor=actor)
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
    session: Session, doc: dict[str, Any], *, now: datetime, object_ap_id: str | None = None,
    actor: str = BLOG_ACTOR,
) -> Activity:
    return enqueue(session, doc, follower_inboxes(session), now=now, object_ap_id=object_ap_id, actor=actor)


def enqueue_job(session: Session, kind: str, url: str, payload: dict[str, Any], *, now: datetime,
                not_before: datetime | None = None) -> Delivery:
    """Queue a background job of ``kind`` (not committed). ``url`` is what the job contacts: the
    queue schedules jobs fairly by its host, like deliveries. ``payload`` must be JSON."""
    if kind == DELIVER:
        raise ValueError("deliveries are queued with enqueue()")
    row = Delivery(kind=kind, inbox=url, host=host_of(url), payload=json.dumps(payload, separators=(",", ":")),
                   state="pending", attempts=0, next_attempt_at=not_before or now, created_at=now)
    session.add(row)
    session.flush()
    session.info[DELIVERIES_QUEUED] = True
    return row


def enqueue_raw(
    session: Session, raw: bytes, doc: dict[str, Any], inboxes: Iterable[str], *, now: datetime
) -> Activity | None:
    """Forward a received activity byte for byte (its LD signature must stay intact)."""
    if session.exec(select(Activity.id).where(Activity.ap_id == doc["id"])).first() is not None:
        return None  # already forwarded
    return _store(session, doc, raw.decode("utf-8"), inboxes, now=now)

"""Remote actors in the ``actor`` table: what we keep of a document, and the batched reads and writes.

AS -> internal: ``actor_fields`` reads what we keep from an actor document, each value capped to
its column (a hostile document must not make a write fail). The inbox resolves the keys of one
loop turn in one ``SELECT`` (``stored_keys``) and stores the actors it fetched in one transaction
(``store_actors``), through ``Services.coalescer`` (store/groupcommit.py). These run in the
database pool (``Services.run_db``), never on the event loop, and take the inbox's write limits
(store/db.py ``request_write_limits``): a locked database makes them fail fast, and the inbox
answers 503 + Retry-After.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, col, select

from fedblog.activitypub.keys import load_public_key
from fedblog.activitypub.origin import host_of, same_origin
from fedblog.blog.markup import html_to_text, sanitize_remote_html
from fedblog.clock import utc
from fedblog.federation.cache import ActorSnapshot, ResolvedKey
from fedblog.store.db import database_unavailable, request_write_limits
from fedblog.store.tables import Actor

log = logging.getLogger("fedblog.actors")

STALE_AFTER = timedelta(days=1)
MAX_URL = 2000  # the actor table's URL columns (an id, url, icon or inbox longer than that is dropped)
MAX_HANDLE = 512


def _first_url(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        return _first_url(value[0])
    if isinstance(value, dict):
        return _first_url(value.get("href") or value.get("url"))
    return None


def _fits(url: Any) -> str | None:
    return url if isinstance(url, str) and len(url) <= MAX_URL else None


def public_keys(doc: dict[str, Any]) -> list[dict[str, Any]]:
    keys = doc.get("publicKey")
    items = keys if isinstance(keys, list) else [keys] if isinstance(keys, dict) else []
    return [k for k in items if isinstance(k, dict) and isinstance(k.get("publicKeyPem"), str)]


def actor_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """What we keep of a remote actor document (values are untrusted strings, capped to their columns)."""
    endpoints = doc.get("endpoints")
    if not isinstance(endpoints, dict):
        endpoints = {}
    url = _fits(_first_url(doc.get("url")))
    if url and not same_origin(url, doc["id"]):
        url = doc["id"]  # like Mastodon: a profile URL on another host is ignored
    return {
        "type": str(doc.get("type"))[:40],
        "host": host_of(doc["id"])[:255],
        "preferred_username": str(doc.get("preferredUsername") or "")[:255] or None,
        "name": html_to_text(str(doc.get("name") or ""))[:500] or None,
        "summary": sanitize_remote_html(str(doc.get("summary") or ""))[:20000] or None,
        "url": url or doc["id"],
        "icon_url": _fits(_first_url(doc.get("icon"))),
        "inbox": _fits(doc.get("inbox")),
        "shared_inbox": _fits(endpoints.get("sharedInbox")) or _fits(doc.get("sharedInbox")),
    }


def get_actor(session: Session, ap_id: str) -> Actor | None:
    return session.exec(select(Actor).where(Actor.ap_id == ap_id)).first()


def upsert_actor(session: Session, doc: dict[str, Any], key: dict[str, Any] | None, now: datetime,
                 *, row: Actor | None = None, fields: dict[str, Any] | None = None, flush: bool = True) -> Actor:
    """Insert or update the actor ``doc`` describes (``row``: its row if already loaded or made;
    ``fields``: ``actor_fields(doc)`` if already computed). The handle is left as it is."""
    row = row or get_actor(session, doc["id"]) or Actor(ap_id=doc["id"], host=host_of(doc["id"]))
    for k, v in (fields if fields is not None else actor_fields(doc)).items():
        setattr(row, k, v)
    if key is not None:
        row.key_id, row.public_key_pem = key["id"], key["publicKeyPem"]
    row.fetched_at = now
    row.raw = json.dumps(doc)[:200_000]
    session.add(row)
    if flush:
        session.flush()
    return row


def snapshot(row: Actor) -> ActorSnapshot:
    assert row.id is not None
    return ActorSnapshot(id=row.id, ap_id=row.ap_id, host=row.host, name=row.name,
                         preferred_username=row.preferred_username, handle=row.handle, url=row.url,
                         icon_url=row.icon_url, inbox=row.inbox, shared_inbox=row.shared_inbox)


def parsed_key(key_id: str, owner: str, pem: str) -> ResolvedKey:
    try:
        parsed = load_public_key(pem)
    except ValueError:
        parsed = None  # verification then fails with a reason
    return ResolvedKey(key_id, owner, pem, parsed)


StoredKey = tuple[ResolvedKey, ActorSnapshot | None] | None


def stored_keys(engine: Engine, asks: list[tuple[str, datetime]]) -> list[StoredKey]:
    """Each key id's key and (if fresh) owner from the table: one SELECT for the batch (a burst of
    POSTs from actors not in memory asks for many keys in one loop turn). Only an owner on the
    key's own origin counts (a key must come from its own origin, as when it is fetched)."""
    with Session(engine) as session:
        rows = session.exec(select(Actor).where(col(Actor.key_id).in_(sorted({k for k, _ in asks})))).all()
        by_key = {row.key_id: row for row in rows if row.public_key_pem and same_origin(str(row.key_id), row.ap_id)}
        found: list[StoredKey] = []
        for key_id, now in asks:
            row = by_key.get(key_id)
            if row is None or row.public_key_pem is None:
                found.append(None)
                continue
            fresh = row.inbox and row.handle and row.fetched_at and now - utc(row.fetched_at) < STALE_AFTER
            found.append((parsed_key(key_id, row.ap_id, row.public_key_pem), snapshot(row) if fresh else None))
        return found


# (actor document, the key to keep or None for its first, the handle WebFinger confirmed or None, when fetched)
ActorWrite = tuple[dict[str, Any], dict[str, Any] | None, str | None, datetime]


def store_actors(engine: Engine, write_timeout: int, writes: list[ActorWrite]) -> list[ActorSnapshot | Exception]:
    """Insert or update fetched actors with their handles: one transaction for the batch, rows
    written in ``ap_id`` order (two processes writing the same actors take their locks in the same
    order: no deadlock on PostgreSQL). A handle WebFinger could not confirm this time does not
    erase the one confirmed before for the same username.

    Returns a snapshot per write, or the exception that write alone ended with: if the batch
    fails, each write is tried on its own, so one bad actor cannot take the others down. A
    database that cannot take the write in time fails the whole batch (trying each alone would
    only wait again).
    """
    try:
        return list(_store_together(engine, write_timeout, writes))
    except SQLAlchemyError as exc:
        if database_unavailable(exc) or len(writes) == 1:
            if not database_unavailable(exc):
                log.warning("could not store actor %s: %s", writes[0][0].get("id"), str(exc)[:200])
            return [exc] * len(writes)
        log.warning("a batch of %d actors failed (%s); storing each on its own", len(writes), str(exc)[:200])
    return [store_actors(engine, write_timeout, [w])[0] for w in writes]


def _store_together(engine: Engine, write_timeout: int, writes: list[ActorWrite]) -> list[ActorSnapshot]:
    fields = [actor_fields(doc) for doc, _, _, _ in writes]  # sanitising outside the transaction
    order = sorted(range(len(writes)), key=lambda i: writes[i][0]["id"])
    for attempt in (1, 2):  # once more if another process inserted one of them meanwhile (ap_id is unique)
        try:
            with Session(engine, expire_on_commit=False) as session, \
                    request_write_limits(session.connection(), write_timeout):
                ids = sorted({doc["id"] for doc, _, _, _ in writes})
                rows = {row.ap_id: row for row in session.exec(select(Actor).where(col(Actor.ap_id).in_(ids))).all()}
                stored: dict[int, Actor] = {}
                for i in order:
                    doc, key, handle, now = writes[i]
                    row = rows.get(doc["id"]) or Actor(ap_id=doc["id"], host=host_of(doc["id"]))
                    kept = row.handle if row.preferred_username == fields[i]["preferred_username"] else None
                    keys = public_keys(doc)
                    row = upsert_actor(session, doc, key if key is not None else (keys[0] if keys else None), now,
                                       row=row, fields=fields[i], flush=False)
                    row.handle = handle if handle is not None else kept
                    rows[doc["id"]] = row  # the same actor twice in one batch: one row
                    stored[i] = row
                session.commit()
                return [snapshot(stored[i]) for i in range(len(writes))]
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def load_actor(engine: Engine, ap_id: str) -> Actor | None:
    with Session(engine, expire_on_commit=False) as session:
        return get_actor(session, ap_id)


def store_handle(engine: Engine, write_timeout: int, actor_id: int, handle: str | None) -> ActorSnapshot | None:
    """Set a fresh row's handle, confirmed again (one UPDATE: the rest of the row, which another
    request may have changed since it was read, is left alone); None if the row is gone."""
    with Session(engine, expire_on_commit=False) as session, \
            request_write_limits(session.connection(), write_timeout):
        session.execute(update(Actor).where(col(Actor.id) == actor_id).values(handle=handle))
        row = session.get(Actor, actor_id)
        session.commit()
        return snapshot(row) if row is not None else None

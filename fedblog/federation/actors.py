"""Remote actors: fetched through the guarded client (signed GET), checked, cached in ``actor``.

AS -> internal: ``actor_fields`` reads what we keep from an actor document. Keys are looked up by
key id from the cache first, then the table, then fetched: one fetch per key id at a time however
many requests wait for it. A key must come from its own origin: the document at the key id (no
redirect off its origin), either the actor itself, a key document whose owner lists the key, or
GoToSocial's stub of the actor (docs/interop.md). A verification failure may refetch a key once
per key id per 5 minutes; failed fetches are remembered (cache.py). A failure worth retrying
(timeout, 5xx, 429) is an ``ActorError`` with ``temporary=True``: the inbox answers 503 for it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from fedblog.activitypub.keys import load_public_key
from fedblog.activitypub.origin import host_of, same_id, same_origin
from fedblog.blog.markup import html_to_text, sanitize_remote_html
from fedblog.clock import utc
from fedblog.federation.cache import ActorSnapshot, RemoteCache, ResolvedKey
from fedblog.net.fetch import FetchError, fetch_json
from fedblog.services import Services
from fedblog.store.tables import Actor

ACTOR_TYPES = frozenset({"Person", "Service", "Application", "Group", "Organization"})
STALE_AFTER = timedelta(days=1)


__all__ = ["ActorError", "host_of", "same_id", "same_origin"]  # re-exported: one normaliser (activitypub/origin.py)


class ActorError(Exception):
    """An actor or key could not be obtained or is inconsistent; ``reason`` says why.

    ``temporary``: the failure is worth retrying soon (timeout, unreachable, 5xx, 429).
    """

    def __init__(self, reason: str, *, status: int | None = None, temporary: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.temporary = temporary


def _first_url(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        return _first_url(value[0])
    if isinstance(value, dict):
        return _first_url(value.get("href") or value.get("url"))
    return None


def public_keys(doc: dict[str, Any]) -> list[dict[str, Any]]:
    keys = doc.get("publicKey")
    items = keys if isinstance(keys, list) else [keys] if isinstance(keys, dict) else []
    return [k for k in items if isinstance(k, dict) and isinstance(k.get("publicKeyPem"), str)]


def actor_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """What we keep of a remote actor document (values are untrusted strings)."""
    endpoints = doc.get("endpoints")
    if not isinstance(endpoints, dict):
        endpoints = {}
    url = _first_url(doc.get("url"))
    if url and not same_origin(url, doc["id"]):
        url = doc["id"]  # like Mastodon: a profile URL on another host is ignored
    return {
        "type": str(doc.get("type")),
        "host": host_of(doc["id"]),
        "preferred_username": str(doc.get("preferredUsername") or "")[:255] or None,
        "name": html_to_text(str(doc.get("name") or ""))[:500] or None,
        "summary": sanitize_remote_html(str(doc.get("summary") or ""))[:20000] or None,
        "url": url or doc["id"],
        "icon_url": _first_url(doc.get("icon")),
        "inbox": doc.get("inbox") if isinstance(doc.get("inbox"), str) else None,
        "shared_inbox": endpoints.get("sharedInbox") if isinstance(endpoints.get("sharedInbox"), str)
        else (doc.get("sharedInbox") if isinstance(doc.get("sharedInbox"), str) else None),
    }


def get_actor(session: Session, ap_id: str) -> Actor | None:
    return session.exec(select(Actor).where(Actor.ap_id == ap_id)).first()


def upsert_actor(session: Session, doc: dict[str, Any], key: dict[str, Any] | None, now: datetime,
                 *, row: Actor | None = None, fields: dict[str, Any] | None = None, flush: bool = True) -> Actor:
    """Insert or update the actor ``doc`` describes (``row``: its row if already loaded;
    ``fields``: ``actor_fields(doc)`` if already computed)."""
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


async def _fetch(services: Services, url: str, what: str = "") -> dict[str, Any]:
    """GET a document (signed), never following a redirect off ``url``'s origin."""
    try:
        fetched = await fetch_json(services.http, url, policy=services.policy, auth=services.signer(),
                                   deadline=float(services.settings.fetch_deadline), same_origin=True,
                                   gate=services.remote.hosts)
    except FetchError as exc:
        raise ActorError(f"could not fetch {what or url}: {exc.reason}", status=getattr(exc, "status", None),
                         temporary=exc.temporary) from None
    return fetched.data


async def fetch_exact(services: Services, url: str, what: str = "") -> dict[str, Any]:
    """GET a document (signed) from its origin; it must carry ``url`` as its id (hosts normalised)."""
    doc = await _fetch(services, url, what)
    if not isinstance(doc.get("id"), str) or not same_id(doc["id"], url):
        raise ActorError(f"{url} answered with a document whose id is {str(doc.get('id'))[:200]!r}")
    return doc


async def fetch_actor_document(services: Services, url: str) -> dict[str, Any]:
    """GET an actor (signed), check it is an actor at exactly ``url``."""
    doc = await fetch_exact(services, url)
    if doc.get("type") not in ACTOR_TYPES:
        raise ActorError(f"{url} is a {str(doc.get('type'))[:40]}, not an actor")
    return doc


def snapshot(row: Actor) -> ActorSnapshot:
    assert row.id is not None
    return ActorSnapshot(id=row.id, ap_id=row.ap_id, host=row.host, name=row.name,
                         preferred_username=row.preferred_username, handle=row.handle, url=row.url,
                         icon_url=row.icon_url, inbox=row.inbox, shared_inbox=row.shared_inbox)


def _parsed(key_id: str, owner: str, pem: str) -> ResolvedKey:
    try:
        parsed = load_public_key(pem)
    except ValueError:
        parsed = None  # verification then fails with a reason
    return ResolvedKey(key_id, owner, pem, parsed)


StoredKey = tuple[ResolvedKey, ActorSnapshot | None] | None


def _stored_keys(engine: Engine, asks: list[tuple[str, datetime]]) -> list[StoredKey]:
    """Each key id's key and (if fresh) owner from the table: one SELECT for the batch (a burst of
    POSTs from actors not in memory asks for many keys in one loop turn; store/groupcommit.py)."""
    with Session(engine) as session:
        rows = session.exec(select(Actor).where(col(Actor.key_id).in_(sorted({k for k, _ in asks})))).all()
        by_key = {row.key_id: row for row in rows if row.public_key_pem}
        found: list[StoredKey] = []
        for key_id, now in asks:
            row = by_key.get(key_id)
            if row is None or row.public_key_pem is None:
                found.append(None)
                continue
            fresh = row.inbox and row.handle and row.fetched_at and now - utc(row.fetched_at) < STALE_AFTER
            found.append((_parsed(key_id, row.ap_id, row.public_key_pem), snapshot(row) if fresh else None))
        return found


# (actor document, the key to keep or None for its first, confirmed handle, when fetched)
ActorWrite = tuple[dict[str, Any], dict[str, Any] | None, str | None, datetime]


def _store_actors(engine: Engine, writes: list[ActorWrite]) -> list[ActorSnapshot]:
    """Insert or update fetched actors with their handles: one transaction for the batch.

    If another process inserted one of them meanwhile (the ``ap_id`` is unique), the batch is
    read and written again once: the second pass finds that row and updates it.
    """
    for attempt in (1, 2):
        fields = [actor_fields(doc) for doc, _, _, _ in writes]  # sanitising outside the transaction
        try:
            with Session(engine, expire_on_commit=False) as session:
                ids = sorted({doc["id"] for doc, _, _, _ in writes})
                rows = {row.ap_id: row for row in session.exec(select(Actor).where(col(Actor.ap_id).in_(ids))).all()}
                stored: list[Actor] = []
                for (doc, key, handle, now), f in zip(writes, fields, strict=True):
                    keys = public_keys(doc)
                    row = rows.get(doc["id"]) or Actor(ap_id=doc["id"], host=host_of(doc["id"]))
                    row = upsert_actor(session, doc, key if key is not None else (keys[0] if keys else None), now,
                                       row=row, fields=f, flush=False)
                    row.handle = handle
                    rows[doc["id"]] = row  # the same actor twice in one batch: one row
                    stored.append(row)
                session.commit()
                return [snapshot(row) for row in stored]
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def resolve_key(services: Services, cache: RemoteCache, key_id: str, *, refresh: bool = False) -> ResolvedKey:
    """The public key ``key_id`` names and the actor that owns it (memory, table, then a fetch).

    Concurrent calls for one key id share one fetch. Raises ``ActorError``. The caller checks that
    the owner is the activity's actor: that check depends on the request, so it is never cached.
    """
    if not refresh:
        hit = cache.key(key_id)
        if hit is not None:
            return hit
        # a burst of activities signed with a key not yet in memory: one table read for all of them
        return await cache.single_flight("stored " + key_id, lambda: _stored_or_fetched(services, cache, key_id))
    return await _fetched(services, cache, key_id)


async def _stored_or_fetched(services: Services, cache: RemoteCache, key_id: str) -> ResolvedKey:
    reads = services.coalescer("actors.stored_keys", _stored_keys)
    stored = await reads.submit((key_id, services.clock.now()))
    if stored is not None:
        key, snap = stored
        cache.put_key(key)
        if snap is not None:
            cache.put_actor(snap)
        return key
    return await _fetched(services, cache, key_id)


async def _fetched(services: Services, cache: RemoteCache, key_id: str) -> ResolvedKey:
    doc_url = key_id.split("#", 1)[0]
    failed = cache.failure(doc_url)
    if failed:
        raise ActorError(failed[0], temporary=failed[1])
    return await cache.single_flight(key_id, lambda: _fetch_key(services, cache, key_id, doc_url))


async def refetch_key(services: Services, cache: RemoteCache, key_id: str) -> ResolvedKey | None:
    """After a verification failure (the sender may have rotated its key): the key fetched again,
    at most once per key id per 5 minutes, or joining a fetch under way; None if not allowed now."""
    if not cache.fetching(key_id):
        if not cache.may_refetch(key_id):
            return None
        cache.note_refetch(key_id)
    return await resolve_key(services, cache, key_id, refresh=True)


async def _fetch_key(services: Services, cache: RemoteCache, key_id: str, doc_url: str) -> ResolvedKey:
    try:
        doc = await _fetch_key_owner(services, key_id, doc_url)
    except ActorError as exc:
        cache.note_failure(doc_url, exc.reason, temporary=exc.temporary)
        raise
    pk = next(k for k in public_keys(doc) if k.get("id") == key_id)
    # the owner is stored once, with its handle confirmed, so that the handler's ensure_actor finds
    # it in memory: one WebFinger GET and one write per new actor, written together with the other
    # actors of the same loop turn
    snap = await _confirm_and_store(services, doc, pk, services.clock.now())
    if snap.handle:
        cache.put_actor(snap)
    else:
        cache.forget_actor(doc["id"])
    key = _parsed(key_id, doc["id"], pk["publicKeyPem"])
    cache.put_key(key)
    return key


async def _confirm_and_store(services: Services, doc: dict[str, Any], key: dict[str, Any] | None,
                             now: datetime) -> ActorSnapshot:
    """Confirm the fetched actor's handle by WebFinger, then store it (group-committed)."""
    handle = await confirm_handle(services, doc["id"], _username(doc), host_of(doc["id"]))
    writes = services.coalescer("actors.store", _store_actors)
    return await writes.submit((doc, key, handle, now))


def _username(doc: dict[str, Any]) -> str | None:
    return str(doc.get("preferredUsername") or "")[:255] or None


async def _fetch_key_owner(services: Services, key_id: str, doc_url: str) -> dict[str, Any]:
    doc = await _fetch(services, doc_url, what=f"key {key_id}")
    doc_id = doc.get("id")
    if not isinstance(doc_id, str):
        raise ActorError(f"{doc_url} answered with a document without an id")
    if not same_id(doc_id, doc_url):  # GoToSocial: the key's URL answers a stub of its actor
        doc = await _actor_of_stub(services, key_id, doc_url, doc)
    elif doc.get("type") not in ACTOR_TYPES:  # a standalone key document: follow its owner
        owner = doc.get("owner") or doc.get("controller")
        if not isinstance(owner, str) or not same_origin(owner, doc_url):
            raise ActorError(f"key {key_id} has no owner on its own host")
        doc = await fetch_actor_document(services, owner)
    if not any(k.get("id") == key_id and same_id(str(k.get("owner", doc["id"])), doc["id"]) for k in public_keys(doc)):
        raise ActorError(f"actor {doc['id']} does not list key {key_id} as its own")
    return doc


async def _actor_of_stub(services: Services, key_id: str, doc_url: str, stub: dict[str, Any]) -> dict[str, Any]:
    """GoToSocial serves, at a key id like ``https://host/users/alice/main-key``, a stub of the actor
    whose ``id`` is the actor's URL (GoToSocial docs, federation/http_signatures.md, "Quirks").
    Taken only as a pointer: its ``publicKey`` must be the key asked for, owned by the stub's id,
    all on the key's origin. The key is then read from the full actor, fetched (signed) at its own
    id; the inbox then requires that actor to be the activity's actor."""
    owner = stub["id"]
    pk = stub.get("publicKey")
    if not (
        isinstance(pk, dict) and pk.get("id") == key_id and isinstance(pk.get("owner"), str)
        and same_id(pk["owner"], owner) and same_origin(owner, doc_url)
    ):
        raise ActorError(f"{doc_url} answered with a document whose id is {owner[:200]!r}, "
                         f"not a stub of the key's owner on {host_of(doc_url)}")
    return await fetch_actor_document(services, owner)


async def ensure_actor(services: Services, ap_id: str, cache: RemoteCache | None = None) -> ActorSnapshot:
    """The actor, from memory or the table when fresh; else fetched (signed) and its handle
    confirmed by WebFinger. Concurrent calls for one actor share one lookup (a burst of activities
    from a new actor costs one actor GET and one WebFinger GET, not one per activity)."""
    if cache is None:
        return await _ensure_actor(services, ap_id, None)
    if (hit := cache.actor(ap_id)) is not None:
        return hit
    return await cache.single_flight("actor " + ap_id, lambda: _ensure_actor(services, ap_id, cache))


async def _ensure_actor(services: Services, ap_id: str, cache: RemoteCache | None) -> ActorSnapshot:
    if cache is not None and (hit := cache.actor(ap_id)) is not None:
        return hit  # a lookup that finished while this one waited to start
    now = services.clock.now()
    row = await services.run_db(_load_actor, services.engine, ap_id)
    fresh = row is not None and row.inbox and row.fetched_at and now - utc(row.fetched_at) < STALE_AFTER
    if fresh and row is not None and row.handle:
        snap = snapshot(row)
        if cache is not None:
            cache.put_actor(snap)
        return snap
    if fresh:
        assert row is not None
        handle = await confirm_handle(services, ap_id, row.preferred_username, row.host)
        snap = await services.run_db(_store_handle, services.engine, row, handle)
    else:
        snap = await _confirm_and_store(services, await fetch_actor_document(services, ap_id), None, now)
    if cache is not None and snap.handle:
        cache.put_actor(snap)
    return snap


def _load_actor(engine: Engine, ap_id: str) -> Actor | None:
    with Session(engine, expire_on_commit=False) as session:
        return get_actor(session, ap_id)


def _store_handle(engine: Engine, row: Actor, handle: str | None) -> ActorSnapshot:
    """A fresh row's handle, confirmed again."""
    with Session(engine, expire_on_commit=False) as session:
        row = session.merge(row)
        row.handle = handle
        session.add(row)
        session.commit()
        return snapshot(row)


async def confirm_handle(services: Services, actor_id: str, username: str | None, host: str) -> str | None:
    """``user@host`` if WebFinger on the actor's host names this exact actor, else None."""
    if not username:
        return None
    resource = f"acct:{username}@{host}"
    url = f"https://{host}/.well-known/webfinger?resource={resource}"
    if actor_id.startswith("http://"):
        url = "http" + url[5:]
    try:
        fetched = await fetch_json(services.http, url, policy=services.policy,
                                   accept="application/jrd+json, application/json", deadline=5.0, max_redirects=5,
                                   gate=services.remote.hosts)
    except FetchError:
        return None
    links = fetched.data.get("links")
    if isinstance(links, list) and any(
        isinstance(link, dict) and link.get("rel") == "self" and same_id(str(link.get("href")), actor_id)
        for link in links
    ):
        subject = str(fetched.data.get("subject", "")).removeprefix("acct:")
        return subject if subject.count("@") == 1 else f"{username}@{host}"
    return None

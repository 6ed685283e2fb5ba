"""Remote actors: fetched through the guarded client (signed GET), checked, cached in ``actor``.

What we keep of an actor document, and the batched reads and writes of the table, are in
actor_store.py. Keys are looked up by key id from the cache first, then the table, then fetched:
one fetch per key id at a time however many requests wait for it, at most 8 fetches per remote
host at a time (net/hostgate.py). A key's owner is stored with its handle confirmed by
WebFinger. A key must come from its own origin: the document at the key id (no redirect off its
origin), either the actor itself, a key document whose owner lists the key, or GoToSocial's stub
of the actor (docs/interop.md). A verification failure may refetch a key once
per key id per 5 minutes; failed fetches are remembered (cache.py). A failure worth retrying
(timeout, 5xx, 429, a database that cannot take the read or write now) is an ``ActorError`` with
``temporary=True``: the inbox answers 503 + Retry-After for it, and nothing is stored.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from fedblog.activitypub.origin import host_of, same_id, same_origin
from fedblog.clock import utc
from fedblog.federation.actor_store import (
    MAX_HANDLE,
    STALE_AFTER,
    load_actor,
    parsed_key,
    public_keys,
    snapshot,
    store_actors,
    store_handle,
    stored_keys,
)
from fedblog.federation.cache import ActorSnapshot, RemoteCache, ResolvedKey
from fedblog.net.fetch import FetchError, Queued, fetch_json
from fedblog.services import Services
from fedblog.store.db import database_unavailable

log = logging.getLogger("fedblog.actors")

ACTOR_TYPES = frozenset({"Person", "Service", "Application", "Group", "Organization"})

__all__ = ["ActorError", "host_of", "same_id", "same_origin"]  # re-exported: one normaliser (activitypub/origin.py)


class ActorError(Exception):
    """An actor or key could not be obtained or is inconsistent; ``reason`` says why.

    ``temporary``: the failure is worth retrying soon (timeout, unreachable, 5xx, 429).
    """

    def __init__(self, reason: str, *, status: int | None = None, temporary: bool = False,
                 queued: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.temporary = temporary
        self.queued = queued  # the request never left: it waited its whole deadline for a slot (net/hostgate.py)


def _database_error(exc: SQLAlchemyError, what: str) -> ActorError:
    """A database failure while reading or storing an actor: worth retrying (the inbox answers 503)."""
    if not database_unavailable(exc):
        log.error("%s failed: %s", what, str(exc)[:300])
    return ActorError(f"the database could not {what} now", temporary=True)


async def _fetch(services: Services, url: str, what: str = "") -> dict[str, Any]:
    """GET a document (signed), never following a redirect off ``url``'s origin."""
    try:
        fetched = await fetch_json(services.http, url, policy=services.policy, auth=services.signer(),
                                   deadline=float(services.settings.fetch_deadline), same_origin=True,
                                   gate=services.remote.hosts)
    except FetchError as exc:
        raise ActorError(f"could not fetch {what or url}: {exc.reason}", status=getattr(exc, "status", None),
                         temporary=exc.temporary, queued=isinstance(exc, Queued)) from None
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
    reads = services.coalescer("actors.stored_keys", functools.partial(stored_keys, services.engine))
    try:
        stored = await reads.submit((key_id, services.clock.now()))
    except SQLAlchemyError as exc:
        raise _database_error(exc, "read the key") from None
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
        raise ActorError(failed.reason, temporary=failed.temporary, status=failed.status)
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
        if not exc.queued:  # a wait for one of our own slots says nothing about the host
            cache.note_failure(doc_url, exc.reason, temporary=exc.temporary, status=exc.status)
        raise
    pk = next(k for k in public_keys(doc) if k.get("id") == key_id)
    # the owner is stored once, with its handle confirmed, so that the handler's ensure_actor finds
    # it in memory: one WebFinger GET and one write per new actor, written together with the other
    # actors of the same loop turn
    cache.put_actor(await _confirm_and_store(services, doc, pk, services.clock.now()))
    key = parsed_key(key_id, doc["id"], pk["publicKeyPem"])
    cache.put_key(key)
    return key


async def _confirm_and_store(services: Services, doc: dict[str, Any], key: dict[str, Any] | None,
                             now: datetime) -> ActorSnapshot:
    """Confirm the fetched actor's handle by WebFinger, then store it (group-committed)."""
    handle = await confirm_handle(services, doc["id"], _username(doc), host_of(doc["id"]))
    writes = services.coalescer(
        "actors.store", functools.partial(store_actors, services.engine, services.settings.db_write_timeout))
    try:
        stored = await writes.submit((doc, key, handle, now))
    except SQLAlchemyError as exc:  # the batch's own failure (store_actors returns each write's)
        raise _database_error(exc, "store the actor") from None
    if isinstance(stored, SQLAlchemyError):
        raise _database_error(stored, "store the actor")
    if isinstance(stored, Exception):
        raise stored
    return stored


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
    try:
        row = await services.run_db(load_actor, services.engine, ap_id)
    except SQLAlchemyError as exc:
        raise _database_error(exc, "read the actor") from None
    fresh = row is not None and row.inbox and row.fetched_at and now - utc(row.fetched_at) < STALE_AFTER
    snap: ActorSnapshot | None
    if fresh and row is not None and row.handle:
        snap = snapshot(row)
    elif fresh and row is not None and row.id is not None:  # WebFinger did not confirm it before: try again
        handle = await confirm_handle(services, ap_id, row.preferred_username, row.host)
        try:
            snap = await services.run_db(store_handle, services.engine, services.settings.db_write_timeout,
                                         row.id, handle)
        except SQLAlchemyError as exc:
            raise _database_error(exc, "store the actor") from None
        if snap is None:
            raise ActorError(f"actor {ap_id} was removed meanwhile", temporary=True)
    else:
        snap = await _confirm_and_store(services, await fetch_actor_document(services, ap_id), None, now)
    if cache is not None:  # without a handle too: WebFinger is asked again when it expires, not per activity
        cache.put_actor(snap)
    return snap


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
        handle = subject if subject.count("@") == 1 else f"{username}@{host}"
        return handle if len(handle) <= MAX_HANDLE else None
    return None

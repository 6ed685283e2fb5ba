"""Local guest and site actors: who a web comment, a pingback or a Webmention is attributed to.

* A **guest** (``Person``) stands for one web commenter on this blog, stable per name + email (or
  name + website when no email is given): the same person commenting twice is one actor, and the
  email itself is never stored on the actor (only a digest of it). A comment with neither gets a
  guest of its own (a random key): a bare name identifies nobody. The website is public, so only
  a guest identified by an email may inherit the admin's approval of its author (fedblog/web/comments.py
  moderates any other web comment as a first contact).
* A **site** (``Service``) stands for a website that sent a pingback or a Webmention, one per
  origin (``https://other.example``).

Both are ``actor`` rows with ``is_local`` set, ids under ``/guests/<n>`` (``Urls.guest_actor``)
and preferred usernames ``guest-<n>`` / ``site-<n>``, so they never collide with each other; each
gets an Ed25519 key at once (FEP-8b32 proofs) and an RSA key the first time it signs a delivery or
its document is served (``KeyRing.signing_key``). The row and its key are written in the caller's
transaction. fedblog/web/guests.py serves them; docs/guest-actors.md describes them.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from sqlmodel import Session, col, select

from fedblog.activitypub.origin import origin_of
from fedblog.federation.keys import create_actor_keys
from fedblog.services import Services
from fedblog.settings import GUEST_HANDLE_PREFIX, SITE_HANDLE_PREFIX
from fedblog.store.tables import Actor, Interaction, LocalKey, Post
from fedblog.urls import guest_ref, parse_id

GUEST_PREFIX = GUEST_HANDLE_PREFIX  # the blog's own handle may not start so (fedblog.settings.reserved_handle)
SITE_PREFIX = SITE_HANDLE_PREFIX
Kind = Literal["guest", "site"]


def _norm(text: str | None) -> str:
    return unicodedata.normalize("NFKC", (text or "").strip()).casefold()


def guest_key(kind: Kind, *parts: str | None) -> str:
    """The stable key of a guest or site: a SHA-256 of its kind and normalised identity (the same
    whatever the settings, so rotating the secret key never splits a commenter in two; the email
    itself is stored only with the comment, for the owner)."""
    message = "\x1f".join([kind, *(_norm(p) for p in parts)]).encode()
    return hashlib.sha256(message).hexdigest()


def site_origin(url: str) -> str:
    """``https://other.example`` for any URL on that site (the origin, normalised)."""
    scheme, host, port = origin_of(url)
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}" + ("" if port in (None, default) else f":{port}")


def _find_or_create(session: Session, services: Services, *, kind: Kind, key: str, name: str,
                    url: str | None, now: datetime) -> Actor:
    name = " ".join(name.split())
    found = session.exec(select(Actor).where(Actor.guest_key == key)).first()
    if found is not None:
        # the url stays the first one given: a later comment may not repoint the actor's link (each
        # comment keeps the website its own author typed in ``Interaction.author_url``)
        if name and found.name != name[:500]:
            found.name = name[:500]
            session.add(found)
        return found
    host = origin_of(services.urls.base_url)[1] or ""
    actor = Actor(ap_id=f"urn:fedblog:{kind}:{key}", type="Person" if kind == "guest" else "Service",
                  host=host, name=name[:500], url=url, is_local=True, guest_key=key,
                  inbox=services.urls.shared_inbox(), shared_inbox=services.urls.shared_inbox(), fetched_at=now)
    session.add(actor)
    session.flush()  # the row id names the actor
    assert actor.id is not None
    actor.ap_id = services.urls.guest_actor(actor.id)
    actor.preferred_username = f"{GUEST_PREFIX if kind == 'guest' else SITE_PREFIX}{actor.id}"
    actor.key_id = services.urls.key_id_of(guest_ref(actor.id))
    session.add(actor)
    create_actor_keys(session, guest_ref(actor.id), now)
    session.flush()
    return actor


def username_of(actor: Actor) -> str:
    """``guest-<n>`` for a guest (``Person``), ``site-<n>`` for a site (``Service``)."""
    return actor.preferred_username or f"{SITE_PREFIX if actor.type == 'Service' else GUEST_PREFIX}{actor.id}"


def parse_username(username: str) -> int | None:
    """The row id a ``guest-<n>`` or ``site-<n>`` name (any case) claims, or None; the caller checks
    that the row is a local actor of that kind (``find_local``)."""
    name = username.lower()
    for prefix in (GUEST_PREFIX, SITE_PREFIX):
        number = name.removeprefix(prefix)
        if number != name:
            return parse_id(number)
    return None


def find_local(session: Session, actor_id: int, username: str | None = None, *, public: bool = False) -> Actor | None:
    """The local guest or site actor stored as row ``actor_id`` (and called ``username``, when given,
    compared without case), or None: a remote actor's row is not ours to serve.

    ``public``: only an actor with at least one visible comment that goes to the fediverse (on a
    published post), so a held, spam or non-consenting commenter's name and website are never
    served; or one that already signed what it sent about such a comment (its RSA key exists), so
    the servers that got a Delete of its last comment can still verify it. One query (the
    ``actor_id`` index, the unique key owner)."""
    actor = session.get(Actor, actor_id)
    if actor is None or not actor.is_local or actor.type not in ("Person", "Service"):
        return None
    if username is not None and username_of(actor).lower() != username.lower():
        return None
    if public and not session.exec(select(sa.or_(
            select(Interaction.id).join(Post, col(Post.id) == col(Interaction.post_id))
            .where(col(Interaction.actor_id) == actor_id, col(Interaction.status) == "visible",
                   col(Interaction.federated).is_(True), col(Post.draft).is_(False), col(Post.deleted_at).is_(None))
            .exists(),
            sa.and_(select(Interaction.id).where(col(Interaction.actor_id) == actor_id,
                                                 col(Interaction.federated).is_(True),
                                                 col(Interaction.status).in_(("visible", "deleted"))).exists(),
                    select(LocalKey.id).where(col(LocalKey.owner) == guest_ref(actor_id),
                                              col(LocalKey.rsa_private_pem).is_not(None)).exists())))).one():
        return None
    return actor


def guest_actor(session: Session, services: Services, *, name: str, email: str | None, website: str | None,
                now: datetime) -> Actor:
    """The guest actor of a web commenter (made on first use): by name + email, else name + website,
    else a new guest for this comment alone (a bare name is anyone's to type, so two "Zed"s are two
    actors)."""
    if email:
        key = guest_key("guest", name, "email", email)
    elif website:
        key = guest_key("guest", name, "url", website)
    else:
        key = guest_key("guest", name, "single", secrets.token_hex(16))
    return _find_or_create(session, services, kind="guest", key=key, name=name, url=website, now=now)


def site_actor(session: Session, services: Services, *, source_url: str, name: str | None, now: datetime) -> Actor:
    """The site actor of the website ``source_url`` is on (made on first use), named ``name`` (the
    site's name) or its host."""
    origin = site_origin(source_url)
    key = guest_key("site", origin)
    label = name or (origin_of(origin)[1] or origin)
    return _find_or_create(session, services, kind="site", key=key, name=label, url=origin, now=now)


def author_actor(session: Session, services: Services, *, name: str | None, url: str | None, photo: str | None,
                 source_url: str, now: datetime) -> Actor:
    """The guest (``Person``) of a Webmention's h-card author (made on first use): by the h-card's
    ``url``, else by its name on the source's site; named ``name``, its ``icon`` the h-card's photo
    (the newest one given replaces an older one)."""
    origin = site_origin(source_url)
    key = guest_key("guest", "h-card", url) if url else guest_key("guest", "h-card", name, "site", origin)
    label = name or (origin_of(url or origin)[1] or origin)
    actor = _find_or_create(session, services, kind="guest", key=key, name=label, url=url or origin, now=now)
    if photo and actor.icon_url != photo[:2000]:
        actor.icon_url = photo[:2000]
        session.add(actor)
    return actor

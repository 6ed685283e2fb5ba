"""Receiving a pingback or a Webmention: the part done while the sender waits.

Pingback 1.0 ("the server should [...] retrieve the source URI") and W3C Webmention §3.2 ("SHOULD
queue and process the request asynchronously, to prevent DoS attacks") both let the receiver check
the source later. Here, in one transaction, the request is checked against the database (the target
must be one of our live posts; a pingback must be new; a source host may not have more than
``MAX_PENDING_PER_HOST`` checks waiting), stored as a ``linkback_request`` row with the token of its
status page, and its ``linkback.verify`` job is queued (scheduled by the source's host, so the
queue's per-host lanes bound what we fetch from one site). Nothing is fetched here: the worker does
that (``fedblog.federation.linkback_verify``). The web layer (``fedblog.web.linkbacks``) reads the
body within its limits, parses it and turns a ``Refused`` into a fault code or an HTTP status.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import unquote, urlsplit

from sqlalchemy import func
from sqlmodel import Session, col, select

from fedblog.activitypub.origin import host_of, origin_of
from fedblog.federation.linkback_jobs import VerifyLinkback
from fedblog.services import Services
from fedblog.store import posts as post_store
from fedblog.store.legacy import slug_for_old_path
from fedblog.store.tables import Interaction, LinkbackRequest, Post

Protocol = Literal["webmention", "pingback"]
MAX_PENDING_PER_HOST = 20  # checks of one source host waiting at once, whatever the number of senders
PENDING, ACCEPTED, REFUSED, DELETED = "pending", "accepted", "refused", "deleted"
STATES = (PENDING, ACCEPTED, REFUSED, DELETED)


@dataclass(frozen=True)
class Accepted:
    """Queued for verification; ``token`` names the status page (``Urls.linkback_status``)."""

    token: str
    again: bool = False  # the same source and target were already waiting: that request is answered


RefusalCode = Literal["not_ours", "not_a_post", "no_such_post", "already_registered", "busy"]


@dataclass(frozen=True)
class Refused:
    """Nothing stored. ``code`` is what the web layer maps to a fault code or an HTTP status."""

    code: RefusalCode
    reason: str


def target_post(session: Session, services: Services, target: str) -> Post | Refused:
    """The live post ``target`` names (its fragment and query ignored: W3C Webmention §3.2.1), or why not."""
    if origin_of(target) != origin_of(services.urls.base_url):
        return Refused("not_ours", "target is not on this blog")
    path = services.urls.match_post(target.split("#", 1)[0])
    if path is None:  # an imported post's old WordPress URL (``/?p=12``, ``/2012/03/08/slug/``) still names it
        slug = slug_for_old_path(session, _old_paths(target))
        if slug is None:
            return Refused("not_a_post", "target is not a post of this blog (only posts accept linkbacks)")
        post = post_store.get_post_by_slug(session, slug)
    else:
        parts = path[len("/posts/"):].split("/")
        post = (post_store.get_post_by_slug(session, unquote(parts[0])) if len(parts) == 1
                else post_store.get_post_by_ap_path(session, path))
    if post is None or post.draft:
        return Refused("no_such_post", "there is no post at target")
    if post.deleted_at is not None:
        return Refused("no_such_post", "the post at target was deleted")
    return post


def _old_paths(target: str) -> list[str]:
    """The forms an old path is stored in (``fedblog.web.redirects.legacy_or_404`` tries the same)."""
    parts = urlsplit(target.split("#", 1)[0])
    path = parts.path or "/"
    toggled = path[:-1] if path.endswith("/") and len(path) > 1 else path + "/"
    return list(dict.fromkeys([path + (f"?{parts.query}" if parts.query else ""), path, toggled]))


def _pending_for_host(session: Session, host: str) -> int:
    return session.exec(select(func.count()).select_from(LinkbackRequest).where(
        LinkbackRequest.source_host == host, LinkbackRequest.state == PENDING)).one()


def _requests_for(session: Session, post_id: int, source: str, states: tuple[str, ...]) -> list[LinkbackRequest]:
    return list(session.exec(select(LinkbackRequest).where(
        LinkbackRequest.post_id == post_id, col(LinkbackRequest.state).in_(states), LinkbackRequest.source == source,
    ).order_by(col(LinkbackRequest.id))).all())


def recorded(session: Session, post_id: int, source: str) -> Interaction | None:
    """The interaction already recorded for ``source`` on the post (one per pair: the table's
    unique constraint), whatever channel made it."""
    return session.exec(select(Interaction).where(
        Interaction.post_id == post_id, Interaction.source_url == source)).first()


def receive(session: Session, services: Services, *, protocol: Protocol, source: str, target: str,
            now: datetime) -> Accepted | Refused:
    """Store the request and queue its verification, in the caller's transaction; or refuse it.

    ``source`` and ``target`` are already clean http(s) URLs that differ (``pingback.parse_ping``,
    ``linkcheck.check_webmention_request``)."""
    post = target_post(session, services, target)
    if isinstance(post, Refused):
        return post
    assert post.id is not None
    waiting = _requests_for(session, post.id, source, (PENDING,))
    if protocol == "pingback":
        # Pingback 1.0: 0x30 "The pingback has already been registered" (a ping waiting counts)
        item = recorded(session, post.id, source)
        if waiting or item is not None or _requests_for(session, post.id, source, (ACCEPTED,)):
            return Refused("already_registered", "this source is already registered for this post")
    elif waiting:  # a Webmention sent again before the first was checked: one check answers both
        return Accepted(waiting[0].token, again=True)
    host = host_of(source)
    if _pending_for_host(session, host) >= MAX_PENDING_PER_HOST:
        return Refused("busy", f"too many linkbacks from {host[:100]} are waiting to be checked; try again later")
    request = LinkbackRequest(token=secrets.token_urlsafe(24), protocol=protocol, source=source, source_host=host,
                              target=target, post_id=post.id, state=PENDING, created_at=now, updated_at=now)
    session.add(request)
    session.flush()
    VerifyLinkback(source, target, protocol, request.id).queue(session, now=now)
    return Accepted(request.token)


@dataclass(frozen=True)
class RequestStatus:
    """What the status page shows (W3C Webmention §3.2: the status URL of a 201 Created)."""

    protocol: str
    source: str
    target: str
    state: str  # pending | accepted | refused | deleted
    reason: str | None
    received_at: datetime
    updated_at: datetime
    comment_id: int | None  # the interaction, once shown
    post_title: str


def request_status(session: Session, token: str) -> RequestStatus | None:
    if not token or len(token) > 64:
        return None
    request = session.exec(select(LinkbackRequest).where(LinkbackRequest.token == token)).first()
    if request is None:
        return None
    post = session.get(Post, request.post_id)
    item = session.get(Interaction, request.interaction_id) if request.interaction_id else None
    shown = item is not None and item.status == "visible"
    return RequestStatus(request.protocol, request.source, request.target, request.state, request.last_error,
                         request.created_at, request.updated_at, item.id if shown and item else None,
                         post.title if post else "")

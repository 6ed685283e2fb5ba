"""Guest and site actors over HTTP: ``/guests/{n}`` and its outbox.

A guest (``Person``, a web commenter) or a site (``Service``, a website that sent a pingback or a
Webmention) is a local actor (fedblog.federation.guests). As ActivityPub JSON its document lets
other servers show who wrote a comment and verify what the actor signs; as HTML it is a small
page listing the actor's visible comments that go to the fediverse, kept out of search engines
(``noindex``). An actor with no such comment (held, spam, or its commenter did not consent) is
not served at all: 404, and WebFinger does not know it either.

The RSA key of a guest is made the first time its document is served, if the actor has not
signed anything yet (``KeyRing.signing_key``): the document always carries ``publicKey``, so a
server that meets the actor first through a comment can verify its later signatures at once.
Every database read and the key generation run in the database pool (``services.run_db``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from fedblog.activitypub import vocab
from fedblog.federation import serialize
from fedblog.federation.guests import find_local, username_of
from fedblog.federation.keys import UnknownActorKeys
from fedblog.services import Services
from fedblog.store.tables import Actor, Interaction, Post
from fedblog.urls import guest_ref, parse_id
from fedblog.web.common import renderer_of, services_of
from fedblog.web.negotiation import ActivityJSONResponse, wants_activitypub

MAX_LISTED = 100  # comments listed on a guest's page, the latest first
NOT_HERE = "There is no guest or site actor with this id here (or none of its comments is public)."


@dataclass(frozen=True)
class ListedComment:
    id: int
    slug: str
    post_title: str
    published_at: datetime
    content_html: str


def _number(request: Request) -> int:
    number = parse_id(request.path_params["guest_id"])
    if number is None:
        raise HTTPException(404, NOT_HERE)
    return number


def _actor(session: Session, number: int) -> Actor:
    actor = find_local(session, number, public=True)  # nothing public yet: not served (docs/guest-actors.md)
    if actor is None:
        raise HTTPException(404, NOT_HERE)
    return actor


def _document(services: Services, number: int) -> dict[str, Any]:
    with Session(services.engine) as session:
        actor = _actor(session, number)
    ref = guest_ref(number)
    try:
        services.keys.signing_key(ref)  # made now if the actor never signed: publicKey is always there
        keys = services.keys.keys_for(ref)
    except UnknownActorKeys:
        raise HTTPException(404, NOT_HERE) from None
    return serialize.guest_actor(actor, username_of(actor), services.site.current(), services.urls, keys)


def _page(services: Services, number: int) -> tuple[Actor, list[ListedComment]]:
    with Session(services.engine) as session:
        actor = _actor(session, number)
        rows = session.exec(
            select(Interaction, Post.slug, Post.title)
            .join(Post, col(Post.id) == col(Interaction.post_id))
            .where(col(Interaction.actor_id) == number, col(Interaction.status) == "visible",
                   col(Interaction.federated).is_(True), col(Interaction.kind).not_in(("like", "repost")),
                   col(Post.draft).is_(False), col(Post.deleted_at).is_(None))
            .order_by(col(Interaction.published_at).desc(), col(Interaction.id).desc())
            .limit(MAX_LISTED)
        ).all()
        session.expunge(actor)
    comments = [ListedComment(item.id or 0, slug, title, item.published_at, item.content_html)
                for item, slug, title in rows]
    return actor, comments


async def guest(request: Request) -> Response:
    """The actor document (ActivityPub JSON) or the actor's page (HTML), by the Accept header."""
    services = services_of(request)
    number = _number(request)
    if wants_activitypub(request):
        return ActivityJSONResponse(await services.run_db(_document, services, number))
    actor, comments = await services.run_db(_page, services, number)
    website = serialize.web_url(actor.url) if comments else None  # a held spammer's page links nowhere
    context = {"actor": actor, "username": username_of(actor), "comments": comments, "website": website,
               "actor_id": services.urls.guest_actor(number)}
    return renderer_of(request).page("guest.html", context, headers={"Vary": "Accept", "X-Robots-Tag": "noindex"})


def _exists(services: Services, number: int) -> None:
    with Session(services.engine) as session:
        _actor(session, number)


async def guest_outbox(request: Request) -> Response:
    """An empty OrderedCollection: a guest's comments live in the blog's threads (each post's
    ``replies``), and its other activities (a Reject of a Follow) are addressed to one server only."""
    services = services_of(request)
    number = _number(request)
    await services.run_db(_exists, services, number)
    return ActivityJSONResponse(vocab.ordered_collection(services.urls.guest_outbox(number), total=0, items=[]))

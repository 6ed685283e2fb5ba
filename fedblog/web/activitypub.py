"""ActivityPub documents over HTTP: the actor, its collections, posts as Articles, activities."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlmodel import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from fedblog.activitypub import vocab
from fedblog.activitypub.context import AS_CONTEXT, OBJECT_CONTEXT, PUBLIC
from fedblog.federation import serialize
from fedblog.federation.keys import KeyPair
from fedblog.services import Services
from fedblog.store import federation as fed_store
from fedblog.store import interactions as interaction_store
from fedblog.store import posts as post_store
from fedblog.store.tables import Post
from fedblog.web.common import page_number, renderer_of, services_of
from fedblog.web.negotiation import ActivityJSONResponse, wants_activitypub

PAGE_SIZE = 20


async def blog_keys(services: Services) -> KeyPair:
    """The blog's keys; loaded from the database off the event loop the first time."""
    keys = services.keys.cached()
    return keys if keys is not None else await services.run_db(services.keys.get)


async def actor(request: Request) -> Response:
    services = services_of(request)
    if request.path_params["handle"] != services.settings.handle:
        raise HTTPException(404, "There is no such account here.")
    keys = await blog_keys(services)
    if not wants_activitypub(request):
        total = await services.run_db(_count_posts, services)
        return renderer_of(request).page("about.html", {"post_count": total, "joined": keys.created_at},
                                         headers={"Vary": "Accept"})
    return ActivityJSONResponse(serialize.blog_actor(services.settings, services.urls, keys))


def _count_posts(services: Services) -> int:
    with Session(services.engine) as session:
        return post_store.count_posts(session)


def _paged(
    request: Request, collection_id: str, total: int, items_for_page: Callable[[int, int], Sequence[object]]
) -> Response:
    if "page" not in request.query_params:
        last = max(1, -(-total // PAGE_SIZE))
        return ActivityJSONResponse(vocab.ordered_collection(
            collection_id, total=total, first=f"{collection_id}?page=1", last=f"{collection_id}?page={last}"))
    page = page_number(request)
    items = items_for_page((page - 1) * PAGE_SIZE, PAGE_SIZE)
    has_next = page * PAGE_SIZE < total
    return ActivityJSONResponse(vocab.ordered_collection_page(
        f"{collection_id}?page={page}", part_of=collection_id, items=items, total=total,
        next=f"{collection_id}?page={page + 1}" if has_next else None,
        prev=f"{collection_id}?page={page - 1}" if page > 1 else None,
        context=OBJECT_CONTEXT))


async def outbox(request: Request) -> Response:
    services = services_of(request)
    urls = services.urls

    def items(offset: int, limit: int) -> list[dict[str, Any]]:
        with Session(services.engine) as session:
            posts = post_store.list_posts(session, offset=offset, limit=limit)
            tags = post_store.tags_for_posts(session, [p.id for p in posts if p.id is not None])
        out = []
        for p in posts:
            article = serialize.post_to_article(p, tags.get(p.id or 0, []), urls)
            doc = vocab.wrap("Create", id=urls.post(p.slug) + "#create", actor=urls.actor(), obj=article,
                             published=serialize.iso(p.published_at), to=[PUBLIC], cc=[urls.followers()])
            doc.pop("@context")
            out.append(doc)
        return out

    with Session(services.engine) as session:
        total = post_store.count_posts(session)
    return _paged(request, urls.outbox(), total, items)


async def followers(request: Request) -> Response:
    services = services_of(request)

    def items(offset: int, limit: int) -> list[object]:
        with Session(services.engine) as session:
            return [f.actor_ap_id for f in fed_store.list_followers(session, offset=offset, limit=limit)]

    with Session(services.engine) as session:
        total = fed_store.count_followers(session)
    return _paged(request, services.urls.followers(), total, items)


async def following(request: Request) -> Response:
    services = services_of(request)
    return _paged(request, services.urls.following(), 0, lambda offset, limit: [])


async def featured(request: Request) -> Response:
    services = services_of(request)
    return ActivityJSONResponse(vocab.ordered_collection(services.urls.featured(), total=0, items=[]))


def article_response(services: Services, session: Session, post: Post, reply_ids: list[str], replies_next: str | None,
                     likes: int, shares: int) -> Response:
    assert post.id is not None
    tags = post_store.tags_for_posts(session, [post.id]).get(post.id, [])
    article = serialize.post_to_article(post, tags, services.urls, reply_ids=reply_ids, replies_next=replies_next,
                                        likes=likes, shares=shares)
    return ActivityJSONResponse(vocab.with_context(article))


def tombstone_response(services: Services, post: Post) -> Response:
    deleted = serialize.iso(post.deleted_at) if post.deleted_at else None
    return ActivityJSONResponse(
        vocab.with_context(vocab.tombstone(services.urls.post(post.slug), deleted=deleted)), status_code=410
    )


async def activity(request: Request) -> Response:
    services = services_of(request)
    ap_id = services.urls.activity(request.path_params["token"])
    with Session(services.engine) as session:
        row = fed_store.get_activity(session, ap_id)
    if row is None:
        raise HTTPException(404, "There is no activity with this id.")
    return ActivityJSONResponse(row.body.encode())  # stored as sent: the exact bytes we signed


def post_json(request: Request, services: Services, slug: str) -> Response:
    """The Article for a post URL asked for as ActivityStreams; a deleted post is a Tombstone."""
    with Session(services.engine) as session:
        post = post_store.get_post_by_slug(session, slug)
        if post is None or post.draft:
            raise HTTPException(404, "There is no post here.")
        if post.deleted_at is not None:
            return tombstone_response(services, post)
        assert post.id is not None
        first = interaction_store.list_reply_ids(session, post.id, whole_thread=True, offset=0, limit=PAGE_SIZE + 1)
        replies_id = services.urls.replies(services.urls.post(slug))
        nxt = f"{replies_id}?page=2" if len(first) > PAGE_SIZE else None
        counts = interaction_store.reaction_counts(session, post.id)
        return article_response(
            services, session, post, first[:PAGE_SIZE], nxt, counts.get("like", 0), counts.get("repost", 0)
        )


def _live_post(session: Session, slug: str) -> Post:
    post = post_store.get_post_by_slug(session, slug)
    if post is None or post.draft or post.deleted_at is not None:
        raise HTTPException(404, "There is no such post.")
    return post


async def post_replies(request: Request) -> Response:
    """Every visible fediverse reply in the thread, paged; what Mastodon 4.5 crawls (INTEROP §5.3)."""
    services = services_of(request)
    slug = request.path_params["slug"]
    with Session(services.engine) as session:
        post = _live_post(session, slug)
        assert post.id is not None
        total = interaction_store.count_reply_ids(session, post.id, whole_thread=True)
    post_id = post.id

    def items(offset: int, limit: int) -> list[object]:
        with Session(services.engine) as session:
            return list(
                interaction_store.list_reply_ids(session, post_id, whole_thread=True, offset=offset, limit=limit)
            )

    return _paged(request, services.urls.replies(services.urls.post(slug)), total, items)


async def comment_replies(request: Request) -> Response:
    services = services_of(request)
    raw = request.path_params["comment_id"]
    with Session(services.engine) as session:
        item = interaction_store.get_interaction(session, int(raw)) if raw.isdigit() else None
        if item is None or item.status != "visible":
            raise HTTPException(404, "There is no comment with this id.")
        total = interaction_store.count_reply_ids(session, item.post_id, parent_id=item.id, whole_thread=False)
    post_id, parent_id = item.post_id, item.id

    def items(offset: int, limit: int) -> list[object]:
        with Session(services.engine) as session:
            return list(interaction_store.list_reply_ids(session, post_id, parent_id=parent_id, whole_thread=False,
                                                         offset=offset, limit=limit))

    return _paged(request, services.urls.replies(services.urls.comment(int(raw))), total, items)


async def post_context(request: Request) -> Response:
    """FEP-7888: the whole conversation, the post first."""
    services = services_of(request)
    slug = request.path_params["slug"]
    with Session(services.engine) as session:
        post = _live_post(session, slug)
        assert post.id is not None
        total = interaction_store.count_reply_ids(session, post.id, whole_thread=True) + 1
    post_id, post_url = post.id, services.urls.post(slug)

    def items(offset: int, limit: int) -> list[str]:
        with Session(services.engine) as session:
            head = [post_url] if offset == 0 else []
            rest = interaction_store.list_reply_ids(session, post_id, whole_thread=True,
                                                    offset=max(0, offset - 1), limit=limit - len(head))
            return head + list(rest)

    return _paged(request, services.urls.context(slug), total, items)


async def post_reactions(request: Request) -> Response:
    services = services_of(request)
    slug, which = request.path_params["slug"], request.path_params["which"]
    if which not in ("likes", "shares"):
        raise HTTPException(404, "Not a collection.")
    with Session(services.engine) as session:
        post = _live_post(session, slug)
        assert post.id is not None
        counts = interaction_store.reaction_counts(session, post.id)
    total = counts.get("like" if which == "likes" else "repost", 0)
    url = services.urls.likes(slug) if which == "likes" else services.urls.shares(slug)
    return ActivityJSONResponse({"@context": AS_CONTEXT, "id": url, "type": "Collection", "totalItems": total})

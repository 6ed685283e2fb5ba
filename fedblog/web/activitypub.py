"""ActivityPub documents over HTTP: the actor, its collections, posts as Articles, activities.

Every database read runs in the database pool (``services.run_db``); the sync functions passed
to it open their own session. The Article of a post is cached per post version (web/pagecache.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlmodel import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from fedblog.activitypub import vocab
from fedblog.activitypub.context import ACTIVITY_JSON, AS_CONTEXT, OBJECT_CONTEXT, PUBLIC
from fedblog.federation import publishing, serialize
from fedblog.federation.keys import KeyPair
from fedblog.services import Services
from fedblog.store import federation as fed_store
from fedblog.store import interactions as interaction_store
from fedblog.store import posts as post_store
from fedblog.store import profile as profile_store
from fedblog.store.tables import Post
from fedblog.urls import BLOG_ACTOR, parse_id, post_path
from fedblog.web.common import page_number, renderer_of, services_of
from fedblog.web.negotiation import ActivityJSONResponse, wants_activitypub
from fedblog.web.pagecache import Cached, not_modified, not_modified_response, validators

if TYPE_CHECKING:
    from fedblog.web.pagecache import PageCache, PostState

PAGE_SIZE = publishing.COLLECTION_PAGE_SIZE
Items = Callable[[int, int], Sequence[object]]  # (offset, limit) -> items; runs in the database pool


async def blog_keys(services: Services) -> KeyPair:
    """The blog's keys; loaded from the database off the event loop the first time."""
    keys = services.keys.cached()
    return keys if keys is not None else await services.run_db(services.keys.get)


def _count_posts(services: Services) -> int:
    with Session(services.engine) as session:
        return post_store.count_posts(session)


async def actor(request: Request) -> Response:
    services = services_of(request)
    if request.path_params["handle"] != services.urls.current_handle():
        raise HTTPException(404, "There is no such account here.")
    keys = await blog_keys(services)
    if not wants_activitypub(request):
        total = await services.run_db(_count_posts, services)
        return renderer_of(request).page("about.html", {"post_count": total, "joined": keys.created_at},
                                         headers={"Vary": "Accept"})
    return ActivityJSONResponse(serialize.blog_actor(services.site.current(), services.urls, keys))


async def _paged(request: Request, collection_id: str, total: int, items_for_page: Items) -> Response:
    """The collection, or one page of it; ``items_for_page`` reads the database in the database pool."""
    if "page" not in request.query_params:
        last = max(1, -(-total // PAGE_SIZE))
        return ActivityJSONResponse(vocab.ordered_collection(
            collection_id, total=total, first=f"{collection_id}?page=1", last=f"{collection_id}?page={last}"))
    page = page_number(request)
    items = await services_of(request).run_db(items_for_page, (page - 1) * PAGE_SIZE, PAGE_SIZE)
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
            articles = publishing.article_documents(session, services, posts)  # real counts, O(1) queries
        out = []
        for p in posts:
            article = articles[p.id or 0]
            doc = vocab.wrap("Create", id=article["id"] + "#create", actor=urls.actor(), obj=article,
                             published=serialize.iso(p.published_at), to=[PUBLIC], cc=[urls.followers()])
            doc.pop("@context")
            out.append(doc)
        return out

    total = await services.run_db(_count_posts, services)
    return await _paged(request, urls.outbox(), total, items)


async def followers(request: Request) -> Response:
    services = services_of(request)

    def items(offset: int, limit: int) -> list[object]:
        with Session(services.engine) as session:
            return [f.actor_ap_id for f in fed_store.list_followers(session, offset=offset, limit=limit)]

    def count() -> int:
        with Session(services.engine) as session:
            return fed_store.count_followers(session)

    return await _paged(request, services.urls.followers(), await services.run_db(count), items)


async def following(request: Request) -> Response:
    services = services_of(request)
    return await _paged(request, services.urls.following(), 0, lambda offset, limit: [])


def _pinned_ids(services: Services) -> list[str]:
    with Session(services.engine) as session:
        ids = profile_store.read_pinned(session)
        paths = post_store.live_ap_paths(session, ids)
    return [services.urls.post_id(paths[i]) for i in ids if i in paths]


async def featured(request: Request) -> Response:
    """The pinned posts, the latest pin first, as ids: Mastodon's FetchFeaturedCollectionService
    takes items that are URIs (or embedded Notes only) and fetches each, so an embedded Article
    would be skipped."""
    services = services_of(request)
    items = await services.run_db(_pinned_ids, services)
    return ActivityJSONResponse(vocab.ordered_collection(services.urls.featured(), total=len(items), items=items))


def tombstone_response(services: Services, ap_path: str, deleted_at: Any) -> Response:
    deleted = serialize.iso(deleted_at) if deleted_at else None
    return ActivityJSONResponse(
        vocab.with_context(vocab.tombstone(services.urls.post_id(ap_path), deleted=deleted)), status_code=410
    )


def _get_activity_body(services: Services, ap_id: str) -> str | None:
    """The stored body; a guest's or site's Create only while its comment is visible (a hidden,
    spam or deleted comment is no longer served, its Delete is)."""
    with Session(services.engine) as session:
        row = fed_store.get_activity(session, ap_id)
        if row is None:
            return None
        if row.actor != BLOG_ACTOR and row.type != "Delete":
            comment_id = services.urls.match_comment(row.object_ap_id or "")
            item = interaction_store.get_interaction(session, comment_id) if comment_id is not None else None
            post = session.get(Post, item.post_id) if item is not None else None
            if item is None or item.status != "visible" or post is None or post.draft or post.deleted_at is not None:
                return None
        return row.body


async def activity(request: Request) -> Response:
    services = services_of(request)
    body = await services.run_db(_get_activity_body, services, services.urls.activity(request.path_params["token"]))
    if body is None:
        raise HTTPException(404, "There is no activity with this id.")
    return ActivityJSONResponse(body.encode())  # stored as sent: the exact bytes we signed


def post_ap_path(request: Request) -> str:
    """The id path a /posts/{slug}[/{version}]/... request names; version 1 has no number."""
    version = request.path_params.get("version", 1)
    if version < 2 and "version" in request.path_params:
        raise HTTPException(404, "There is no such post.")
    return post_path(request.path_params["slug"], version)


def _article_bytes(services: Services, ap_path: str) -> bytes:
    """The Article of a live post: its first page of replies and real reaction counts (O(1) queries)."""
    with Session(services.engine) as session:
        post = _live_post(session, ap_path)
        assert post.id is not None
        article = publishing.article_documents(session, services, [post])[post.id]
    return vocab.dumps(vocab.with_context(article))


async def post_json(request: Request, services: Services, ap_path: str) -> Response:
    """The Article whose id has this path, cached per post version; a deleted one is a Tombstone
    (410): ids are never reused."""
    state: PostState | None = await request.app.state.post_ids.get(ap_path)
    if state is None or state.draft:
        raise HTTPException(404, "There is no post here.")
    if state.deleted_at is not None:
        return tombstone_response(services, ap_path, state.deleted_at)
    cache: PageCache = request.app.state.page_cache
    headers = validators(cache, state, "json")
    if not_modified(request, headers["ETag"], state.modified):
        return not_modified_response(headers)
    entry = cache.get(state, "json")
    if entry is None:  # the data is read after the version: it is at least as new as the key
        entry = Cached(await services.run_db(_article_bytes, services, ap_path), ACTIVITY_JSON, {})
        cache.put(state, "json", entry)
    return ActivityJSONResponse(entry.body, headers=headers)


def _live_post(session: Session, ap_path: str) -> Post:
    post = post_store.get_post_by_ap_path(session, ap_path)
    if post is None or post.draft or post.deleted_at is not None:
        raise HTTPException(404, "There is no such post.")
    return post


def _live_post_replies(services: Services, ap_path: str) -> tuple[int, int]:
    """(post id, number of visible fediverse replies in its thread) of a live post."""
    with Session(services.engine) as session:
        post = _live_post(session, ap_path)
        assert post.id is not None
        return post.id, interaction_store.count_reply_ids(session, post.id, whole_thread=True)


async def post_replies(request: Request) -> Response:
    """Every visible published object of the thread (fediverse replies, published local comments),
    paged, oldest first; what Mastodon 4.5 crawls for the conversation."""
    services = services_of(request)
    ap_path = post_ap_path(request)
    post_id, total = await services.run_db(_live_post_replies, services, ap_path)

    def items(offset: int, limit: int) -> list[object]:
        with Session(services.engine) as session:
            return list(
                interaction_store.list_reply_ids(session, post_id, whole_thread=True, offset=offset, limit=limit)
            )

    return await _paged(request, services.urls.replies(services.urls.post_id(ap_path)), total, items)


def _comment_reply_total(services: Services, raw: str) -> tuple[int, int, int]:
    with Session(services.engine) as session:
        comment_id = parse_id(raw)
        item = interaction_store.get_interaction(session, comment_id) if comment_id is not None else None
        if item is None or item.status != "visible" or item.id is None or (
                item.via != "activitypub" and item.ap_id != services.urls.comment(item.id)):  # never published
            raise HTTPException(404, "There is no comment with this id.")
        total = interaction_store.count_reply_ids(session, item.post_id, parent_id=item.id, whole_thread=False)
        return item.post_id, item.id, total


async def comment_replies(request: Request) -> Response:
    services = services_of(request)
    raw = request.path_params["comment_id"]
    post_id, parent_id, total = await services.run_db(_comment_reply_total, services, raw)

    def items(offset: int, limit: int) -> list[object]:
        with Session(services.engine) as session:
            return list(interaction_store.list_reply_ids(session, post_id, parent_id=parent_id, whole_thread=False,
                                                         offset=offset, limit=limit))

    return await _paged(request, services.urls.replies(services.urls.comment(parent_id)), total, items)


async def post_context(request: Request) -> Response:
    """FEP-7888: the whole conversation, the post first."""
    services = services_of(request)
    ap_path = post_ap_path(request)
    post_id, replies = await services.run_db(_live_post_replies, services, ap_path)
    total, post_url = replies + 1, services.urls.post_id(ap_path)

    def items(offset: int, limit: int) -> list[str]:
        with Session(services.engine) as session:
            head = [post_url] if offset == 0 else []
            rest = interaction_store.list_reply_ids(session, post_id, whole_thread=True,
                                                    offset=max(0, offset - 1), limit=limit - len(head))
            return head + list(rest)

    return await _paged(request, services.urls.context(post_url), total, items)


async def post_reactions(request: Request) -> Response:
    services = services_of(request)
    which = request.path_params["which"]
    if which not in ("likes", "shares"):
        raise HTTPException(404, "Not a collection.")
    ap_path = post_ap_path(request)

    def count() -> dict[str, int]:
        with Session(services.engine) as session:
            post = _live_post(session, ap_path)
            assert post.id is not None
            return interaction_store.reaction_counts(session, post.id)

    total = (await services.run_db(count)).get("like" if which == "likes" else "repost", 0)
    post_id = services.urls.post_id(ap_path)
    url = services.urls.likes(post_id) if which == "likes" else services.urls.shares(post_id)
    return ActivityJSONResponse({"@context": AS_CONTEXT, "id": url, "type": "Collection", "totalItems": total})

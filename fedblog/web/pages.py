"""HTML pages: home, post, tag, archive, about, comment permalinks. Thin endpoints.

Every database read runs in the database pool (``services.run_db``): the event loop never waits
on the database. The post page is cached per post version (web/pagecache.py).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from fedblog.activitypub import vocab
from fedblog.blog.posts import summary_text
from fedblog.blog.threads import build_thread
from fedblog.federation import local_comments
from fedblog.services import Services
from fedblog.store import interactions as interaction_store
from fedblog.store import media as media_store
from fedblog.store import posts as post_store
from fedblog.store.tables import Post
from fedblog.urls import parse_id, post_path
from fedblog.web.activitypub import blog_keys, post_ap_path, post_json
from fedblog.web.common import page_number, renderer_of, services_of
from fedblog.web.fastpage import stashed_state
from fedblog.web.negotiation import ActivityJSONResponse, wants_activitypub
from fedblog.web.pagecache import (
    Cached,
    PageCache,
    PostState,
    VersionReader,
    not_modified,
    not_modified_response,
    validators,
)

HTML = "text/html; charset=utf-8"


def live_post_or_error(session: Session, slug: str) -> Any:
    """The post as a read-only row, or the 404/410 a reader should see."""
    post = post_store.get_post_row(session, slug)
    if post is None or post.draft:
        raise HTTPException(404, f"There is no post at /posts/{slug[:100]}.")
    if post.deleted_at is not None:
        raise HTTPException(410, "This post was deleted by its author.")
    return post


def page_cache_of(request: Request) -> PageCache:
    return request.app.state.page_cache  # type: ignore[no-any-return]


def _home_data(services: Services, page: int) -> dict[str, Any]:
    per_page = services.settings.posts_per_page
    with Session(services.engine) as session:
        total = post_store.count_posts(session)
        last_page = max(1, -(-total // per_page))
        if page > last_page:
            raise HTTPException(404, f"There is no page {page}; the last page is {last_page}.")
        posts = post_store.list_posts(session, offset=(page - 1) * per_page, limit=per_page)
        ids = [p.id for p in posts if p.id is not None]
        tags = post_store.tags_for_posts(session, ids)
        counts = interaction_store.comment_counts(session, ids)
    return {"posts": posts, "tags": tags, "counts": counts, "page": page, "last_page": last_page}


async def home(request: Request) -> Response:
    services = services_of(request)
    context = await services.run_db(_home_data, services, page_number(request))
    return renderer_of(request).page("index.html", {**context, "summary": summary_text})


def _post_page_data(services: Services, slug: str) -> dict[str, Any]:
    with Session(services.engine) as session:
        post = live_post_or_error(session, slug)
        tags = post_store.tags_for_posts(session, [post.id]).get(post.id, [])
        thread = build_thread(interaction_store.list_for_post(session, post.id))
        cover = next((m for role, m in media_store.media_for_posts(session, [post.id]).get(post.id, [])
                      if role == "cover"), None)  # the editor's cover image, if any
    return {"post": post, "tags": tags, "thread": thread, "description": summary_text(post, 200), "cover": cover}


async def post_state_or_error(request: Request, slug: str) -> PostState:
    found, state = stashed_state(request.scope, slug)  # web/fastpage.py may have read it for this request
    if not found:
        versions: VersionReader = request.app.state.post_versions
        state = await versions.get(slug)
    if state is None or state.draft:
        raise HTTPException(404, f"There is no post at /posts/{slug[:100]}.")
    return state


async def post_page(request: Request) -> Response:
    """The post as HTML, or as an Article for ActivityPub clients; both cached per post version."""
    services = services_of(request)
    slug = request.path_params["slug"]
    if wants_activitypub(request):  # the id of the slug's first post: live, or 410 if it was deleted
        return await post_json(request, services, post_path(slug))
    state = await post_state_or_error(request, slug)
    if state.deleted_at is not None:
        raise HTTPException(410, "This post was deleted by its author.")
    cache = page_cache_of(request)
    headers = validators(cache, state, "html")
    if not_modified(request, headers["ETag"], state.modified):
        return not_modified_response(headers)
    entry = cache.get(state, "html")
    if entry is None:  # the data is read after the version: it is at least as new as the key
        context = await services.run_db(_post_page_data, services, slug)
        body = renderer_of(request).text("post.html", context).encode()
        link = (f'<{services.urls.post_id(state.ap_path)}>; rel="alternate"; type="application/activity+json", '
                f'<{services.urls.webmention()}>; rel="webmention"')  # W3C Webmention §3.1.2
        entry = Cached(body, HTML, {"Link": link, "X-Pingback": services.urls.pingback()})  # Pingback 1.0
        cache.put(state, "html", entry)
    return Response(entry.body, media_type=entry.media_type, headers={**entry.headers, **headers})


async def post_version(request: Request) -> Response:
    """/posts/{slug}/{n}: the id of a post published again after a deletion. Fediverse servers get
    the Article (or 410 if this one was deleted too); browsers go to the post's page."""
    services = services_of(request)
    ap_path = post_ap_path(request)
    if wants_activitypub(request):
        return await post_json(request, services, ap_path)

    def page_of_post() -> str:
        with Session(services.engine) as session:
            post = post_store.get_post_by_ap_path(session, ap_path)
            if post is None or post.draft:
                raise HTTPException(404, "There is no such post.")
            if post.deleted_at is not None:
                raise HTTPException(410, "This post was deleted by its author.")
            return services.urls.post(post.slug)

    page = await services.run_db(page_of_post)
    return RedirectResponse(page, status_code=302, headers={"Vary": "Accept"})


def _tag_data(services: Services, name: str, page: int) -> dict[str, Any]:
    per_page = services.settings.posts_per_page
    with Session(services.engine) as session:
        tag = post_store.get_tag(session, name)
        if tag is None:
            raise HTTPException(404, f"No post is tagged {name[:60]!r}.")
        posts = post_store.list_posts_for_tag(session, name, offset=(page - 1) * per_page, limit=per_page + 1)
        ids = [p.id for p in posts if p.id is not None]
        tags = post_store.tags_for_posts(session, ids)
        counts = interaction_store.comment_counts(session, ids)
    if not posts and page > 1:
        raise HTTPException(404, f"There is no page {page} for this tag.")
    return {"tag": tag, "posts": posts[:per_page], "has_next": len(posts) > per_page, "page": page,
            "tags": tags, "counts": counts}


async def tag_page(request: Request) -> Response:
    services = services_of(request)
    context = await services.run_db(_tag_data, services, request.path_params["tag"], page_number(request))
    return renderer_of(request).page("tag.html", {**context, "summary": summary_text})


def _archive_data(services: Services) -> dict[str, Any]:
    with Session(services.engine) as session:
        posts = post_store.list_archive(session)  # three columns, not every body
        all_tags = post_store.list_tags_with_counts(session)
    years: dict[int, list[Any]] = {}
    for p in posts:
        years.setdefault(p.published_at.year, []).append(p)
    return {"years": years, "all_tags": all_tags}


async def archive(request: Request) -> Response:
    services = services_of(request)
    return renderer_of(request).page("archive.html", await services.run_db(_archive_data, services))


def count_posts(services: Services) -> int:
    with Session(services.engine) as session:
        return post_store.count_posts(session)


async def about(request: Request) -> Response:
    services = services_of(request)
    keys = await blog_keys(services)
    total = await services.run_db(count_posts, services)
    return renderer_of(request).page("about.html", {"post_count": total, "joined": keys.created_at})


def _comment_slug(services: Services, comment_id: int | None) -> str:
    with Session(services.engine) as session:
        item = interaction_store.get_interaction(session, comment_id) if comment_id is not None else None
        post = session.get(Post, item.post_id) if item is not None else None
        if item is None or post is None or item.status != "visible" or post.draft:
            raise HTTPException(404, "There is no comment with this id.")
        if post.deleted_at is not None or item.status == "deleted":
            raise HTTPException(410, "This comment was deleted.")
        return post.slug


async def comment_permalink(request: Request) -> Response:
    """A comment's id. ActivityPub clients get its Note (or Like/Announce) with its integrity proof
    when it is ours and published (an owner's reply, a consenting web comment, a linkback, an
    import); anything else is a JSON 404 (410 once deleted). Browsers go to its anchor."""
    services = services_of(request)
    comment_id = parse_id(request.path_params["comment_id"])
    if wants_activitypub(request):
        status, doc = await services.run_db(local_comments.object_json, services, comment_id) \
            if comment_id is not None else (404, None)
        if doc is not None:
            return ActivityJSONResponse(doc, headers={"Vary": "Accept"})
        if status == 410 and comment_id is not None:
            return ActivityJSONResponse(vocab.with_context(vocab.tombstone(services.urls.comment(comment_id))),
                                        status_code=410)
        return ActivityJSONResponse({"error": "There is no published comment with this id."}, status_code=404)
    slug = await services.run_db(_comment_slug, services, comment_id)
    assert comment_id is not None  # _comment_slug answered 404 otherwise
    return RedirectResponse(services.urls.comment_anchor(slug, comment_id), status_code=302,
                            headers={"Vary": "Accept"})

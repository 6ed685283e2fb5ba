"""HTML pages: home, post, tag, archive, about, comment permalinks. Thin endpoints."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from fedblog.blog.posts import summary_text
from fedblog.blog.threads import build_thread
from fedblog.services import Services
from fedblog.store import interactions as interaction_store
from fedblog.store import media as media_store
from fedblog.store import posts as post_store
from fedblog.store.tables import Post
from fedblog.urls import post_path
from fedblog.web.activitypub import blog_keys, post_ap_path, post_json
from fedblog.web.common import page_number, renderer_of, services_of
from fedblog.web.negotiation import wants_activitypub


def live_post_or_error(session: Session, slug: str) -> Any:
    """The post as a read-only row, or the 404/410 a reader should see."""
    post = post_store.get_post_row(session, slug)
    if post is None or post.draft:
        raise HTTPException(404, f"There is no post at /posts/{slug[:100]}.")
    if post.deleted_at is not None:
        raise HTTPException(410, "This post was deleted by its author.")
    return post


async def home(request: Request) -> Response:
    services = services_of(request)
    page = page_number(request)
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
    return renderer_of(request).page(
        "index.html",
        {
            "posts": posts, "tags": tags, "counts": counts, "page": page, "last_page": last_page,
            "summary": summary_text,
        },
    )


async def post_page(request: Request) -> Response:
    services = services_of(request)
    slug = request.path_params["slug"]
    if wants_activitypub(request):  # the id of the slug's first post: live, or 410 if it was deleted
        return await post_json(request, services, post_path(slug))
    with Session(services.engine) as session:
        post = live_post_or_error(session, slug)
        assert post.id is not None
        tags = post_store.tags_for_posts(session, [post.id]).get(post.id, [])
        thread = build_thread(interaction_store.list_for_post(session, post.id))
        cover = next((m for role, m in media_store.media_for_posts(session, [post.id]).get(post.id, [])
                      if role == "cover"), None)  # the editor's cover image, if any
    return renderer_of(request).page(
        "post.html",
        {"post": post, "tags": tags, "thread": thread, "description": summary_text(post, 200), "cover": cover},
        headers={"Link": f'<{services.urls.post_id(post.ap_path)}>; rel="alternate"; type="application/activity+json"',
                 "Vary": "Accept"},
    )


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


async def tag_page(request: Request) -> Response:
    services = services_of(request)
    name = request.path_params["tag"]
    page = page_number(request)
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
    return renderer_of(request).page(
        "tag.html",
        {"tag": tag, "posts": posts[:per_page], "has_next": len(posts) > per_page, "page": page,
         "tags": tags, "counts": counts, "summary": summary_text},
    )


async def archive(request: Request) -> Response:
    services = services_of(request)
    with Session(services.engine) as session:
        posts = post_store.list_archive(session)  # three columns, not every body
        all_tags = post_store.list_tags_with_counts(session)
    years: dict[int, list[Any]] = {}
    for p in posts:
        years.setdefault(p.published_at.year, []).append(p)
    return renderer_of(request).page("archive.html", {"years": years, "all_tags": all_tags})


async def about(request: Request) -> Response:
    services = services_of(request)
    keys = await blog_keys(services)
    total = await services.run_db(_count_posts, services)
    return renderer_of(request).page("about.html", {"post_count": total, "joined": keys.created_at})


def _count_posts(services: Services) -> int:
    with Session(services.engine) as session:
        return post_store.count_posts(session)


async def comment_permalink(request: Request) -> Response:
    """A comment's id, as HTML: redirect to its anchor on the post page."""
    services = services_of(request)
    raw = request.path_params["comment_id"]
    with Session(services.engine) as session:
        item = interaction_store.get_interaction(session, int(raw)) if raw.isdigit() else None
        post = session.get(Post, item.post_id) if item is not None else None
        if item is None or post is None or item.status != "visible" or post.draft:
            raise HTTPException(404, "There is no comment with this id.")
        if post.deleted_at is not None or item.status == "deleted":
            raise HTTPException(410, "This comment was deleted.")
    return RedirectResponse(services.urls.comment_anchor(post.slug, int(raw)), status_code=302)

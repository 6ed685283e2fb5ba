"""Atom and RSS feeds of the latest posts, full content."""

from __future__ import annotations

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response

from fedblog.blog.posts import summary_text
from fedblog.store import posts as post_store
from fedblog.web.common import renderer_of, services_of

FEED_SIZE = 20


def _feed(request: Request, template: str, media_type: str) -> Response:
    services = services_of(request)
    with Session(services.engine) as session:
        posts = post_store.list_posts(session, offset=0, limit=FEED_SIZE)
        tags = post_store.tags_for_posts(session, [p.id for p in posts if p.id is not None])
    updated = max((p.updated_at for p in posts), default=services.clock.now())
    body = renderer_of(request).text(
        template, {"posts": posts, "tags": tags, "updated": updated, "summary": summary_text}
    )
    return Response(body, media_type=media_type)


async def atom(request: Request) -> Response:
    return _feed(request, "feed.atom.xml", "application/atom+xml; charset=utf-8")


async def rss(request: Request) -> Response:
    return _feed(request, "feed.rss.xml", "application/rss+xml; charset=utf-8")

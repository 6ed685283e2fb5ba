"""Atom and RSS feeds of the latest posts, full content."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response

from fedblog.blog.posts import summary_text
from fedblog.services import Services
from fedblog.store import posts as post_store
from fedblog.store.tables import Post
from fedblog.web.common import renderer_of, services_of

FEED_SIZE = 20


def _latest(services: Services) -> tuple[Sequence[Post], dict[int, list[Any]]]:
    with Session(services.engine) as session:
        posts = post_store.list_posts(session, offset=0, limit=FEED_SIZE)
        tags = post_store.tags_for_posts(session, [p.id for p in posts if p.id is not None])
    return posts, tags


async def _feed(request: Request, template: str, media_type: str) -> Response:
    services = services_of(request)
    posts, tags = await services.run_db(_latest, services)  # the event loop never waits on the database
    updated = max((p.updated_at for p in posts), default=services.clock.now())
    body = renderer_of(request).text(
        template, {"posts": posts, "tags": tags, "updated": updated, "summary": summary_text}
    )
    return Response(body, media_type=media_type)


async def atom(request: Request) -> Response:
    return await _feed(request, "feed.atom.xml", "application/atom+xml; charset=utf-8")


async def rss(request: Request) -> Response:
    return await _feed(request, "feed.rss.xml", "application/rss+xml; charset=utf-8")

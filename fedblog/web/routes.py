"""The single route table; it mirrors ``fedblog.urls``."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from fedblog.web import feeds, pages


def build_routes() -> list[BaseRoute]:
    return [
        Route("/", pages.home, name="home"),
        Route("/posts/{slug}", pages.post_page, name="post"),
        Route("/comments/{comment_id}", pages.comment_permalink, name="comment"),
        Route("/tags/{tag}", pages.tag_page, name="tag"),
        Route("/archive", pages.archive, name="archive"),
        Route("/about", pages.about, name="about"),
        Route("/feed.atom", feeds.atom, name="atom"),
        Route("/feed.rss", feeds.rss, name="rss"),
        Mount("/static", StaticFiles(packages=[("fedblog", "static")]), name="static"),
    ]

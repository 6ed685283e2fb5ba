"""Every response carries nosniff and a Referrer-Policy; every HTML page, error pages included,
a Content-Security-Policy that forbids inline script, and the pages need nothing it forbids."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import text

from fedblog.blog.demo import load_demo
from fedblog.blog.posts import delete_post, parse_post_source, save_post
from fedblog.services import Services
from fedblog.store.db import session_scope
from tests.fediverse.network import FakeFediverse

pytestmark = pytest.mark.anyio
DEMO = "/posts/china-sent-back-north-korean-defectors"
AP = "application/activity+json"


@pytest.fixture
def blog(services: Services) -> Services:
    with session_scope(services.engine) as session:
        assert load_demo(session) is not None
        draft = parse_post_source("---\ntitle: Gone soon\ntags: [tea]\n---\nBye ![x](https://img.example/x.png)\n")
        save_post(session, draft, now=services.clock.now(), default_author="Ann", default_language="en")
        save_post(session, parse_post_source("---\ntitle: Kept\ntags: [tea]\n---\nHi.\n"),
                  now=services.clock.now(), default_author="Ann", default_language="en")
    with session_scope(services.engine) as session:
        delete_post(session, "gone-soon", now=services.clock.now())
    return services


def csp_directives(value: str) -> dict[str, list[str]]:
    out = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


HTML_PAGES = [
    ("/", 200), (DEMO, 200), ("/posts/kept", 200), ("/tags/tea", 200), ("/archive", 200), ("/about", 200),
    ("/users/blog", 200), ("/?page=zzz", 400), ("/posts/nope", 404), ("/posts/gone-soon", 410),
    ("/interact", 400), ("/inbox", 405), ("/static/nope.css", 404),
]


async def test_every_html_page_has_a_csp_without_inline_script(blog: Services, client: httpx.AsyncClient) -> None:
    for path, status in HTML_PAGES:
        r = await client.get(path, headers={"Accept": "text/html"})
        assert r.status_code == status, (path, r.status_code)
        assert r.headers["content-type"].startswith("text/html"), path
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin", path
        csp = csp_directives(r.headers["content-security-policy"])
        assert csp["default-src"] == ["'self'"] and csp["frame-ancestors"] == ["'none'"], path
        assert not any("unsafe" in v for values in csp.values() for v in values), path
        assert "script-src" not in csp  # falls back to default-src 'self': no inline script
        # what the CSP forbids, the page must not need: no inline script, style or event handler
        html = r.text
        assert not re.search(r"<script\b|<style\b|\sstyle=|\son[a-z]+=|javascript:", html, re.I), path
        for src in re.findall(r'<img[^>]+src="([^"]+)"', html):
            assert src.startswith(("https://", "/", "data:")), (path, src)


async def test_non_html_responses_have_nosniff(blog: Services, client: httpx.AsyncClient) -> None:
    for path, accept in [
        ("/users/blog", AP), (DEMO, AP), ("/users/blog/outbox", AP),
        ("/.well-known/webfinger?resource=acct:blog@blog.test", "*/*"),
        ("/.well-known/nodeinfo", "*/*"), ("/nodeinfo/2.1", "*/*"), ("/feed.atom", "*/*"), ("/feed.rss", "*/*"),
        ("/static/style.css", "*/*"), ("/.well-known/host-meta", "*/*"), ("/posts/nope", AP),
    ]:
        r = await client.get(path, headers={"Accept": accept})
        assert r.status_code in (200, 404), (path, r.status_code)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin", path
    r = await client.post("/inbox", content=b"{}", headers={"Content-Type": AP})
    assert r.status_code == 400 and r.headers["x-content-type-options"] == "nosniff"


async def test_the_500_page_has_the_headers_too(services: Services, fediverse: FakeFediverse) -> None:
    """An unexpected error (here: the post table is gone) is answered by the 500 page, which is
    rendered outside the middleware stack and must set the headers itself."""
    with services.engine.begin() as conn:
        conn.execute(text("ALTER TABLE post RENAME TO post_gone"))
    try:
        transport = httpx.ASGITransport(app=fediverse.apps["blog.test"], raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="https://blog.test") as c:
            r = await c.get("/", headers={"Accept": "text/html"})
        assert r.status_code == 500 and "Something went wrong" in r.text
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    finally:
        with services.engine.begin() as conn:
            conn.execute(text("ALTER TABLE post_gone RENAME TO post"))

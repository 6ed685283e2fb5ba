"""The blog's pages through HTTP: the demo thread, feeds, tags, archive, errors."""

from __future__ import annotations

import feedparser
import httpx
import mf2py
import pytest
from sqlalchemy import event
from sqlmodel import Session, SQLModel, select

from fedblog.blog.demo import load_demo
from fedblog.blog.posts import parse_post_source, save_post
from fedblog.services import Services
from fedblog.store.db import session_scope
from fedblog.store.tables import Interaction
from tests.helpers import NS, classes, demo_fixture, find_all, parse_html, text_of

pytestmark = pytest.mark.anyio
DEMO = "/posts/china-sent-back-north-korean-defectors"


def _load_demo(services: Services) -> None:
    with session_scope(services.engine) as session:
        assert load_demo(session) is not None


def _publish(services: Services, source: str) -> None:
    with session_scope(services.engine) as session:
        save_post(
            session, parse_post_source(source), now=services.clock.now(), default_author="Ann", default_language="en"
        )


async def test_demo_post_shows_title_body_and_every_comment(services: Services, client: httpx.AsyncClient) -> None:
    _load_demo(services)
    fixture = demo_fixture()
    r = await client.get(DEMO)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    doc = parse_html(r.text)
    h1 = find_all(doc, "h1")[0]
    assert text_of(h1) == fixture["post"]["title"]
    body = find_all(doc, "div", "post-body")[0]
    assert "Dong-A Ilbo reports that China" in text_of(body)
    assert "a mother with a baby who is less than a month old" in text_of(body)
    comments = find_all(doc, "article", "p-comment")
    assert len(comments) == len(fixture["comments"]) == 43
    # every comment with its author's name, and website link when given
    by_name_url = {(c["author_name"], c["author_url"]) for c in fixture["comments"]}
    for art in comments:
        author = [e for e in art.iter() if "p-author" in classes(e)][0]
        name_el = [e for e in author.iter() if "p-name" in classes(e)][0]
        url = name_el.get("href") if name_el.tag == NS + "a" else None
        assert (text_of(name_el), url) in by_name_url
        assert any(e.tag == NS + "time" and e.get("datetime") for e in art.iter())
        permalink = [e for e in art.iter(NS + "a") if "permalink" in classes(e)][0]
        assert permalink.get("href") == "#" + art.get("id", "")


async def test_demo_comments_are_threaded_in_order(services: Services, client: httpx.AsyncClient) -> None:
    _load_demo(services)
    fixture = demo_fixture()
    comments = fixture["comments"]
    html = (await client.get(DEMO)).text
    doc = parse_html(html)
    # map each rendered comment article to its parent article through the DOM
    parent_of: dict[str, str | None] = {}
    def walk(el, current_article=None):  # type: ignore[no-untyped-def]
        for child in el:
            if child.tag == NS + "article" and "p-comment" in classes(child):
                parent_of[child.get("id")] = current_article
                walk(child, current_article)
                current = child.get("id")
            else:
                current = None
            if child.tag == NS + "li" and "comment" in classes(child):
                art = [c for c in child if c.tag == NS + "article"][0]
                walk(child, current_article)
                for sub in child:
                    if sub.tag == NS + "ol":
                        walk(sub, art.get("id"))
                continue
            if current is None:
                walk(child, current_article)
    thread = [e for e in doc.iter(NS + "ol") if "thread" in classes(e)][0]
    for li in thread:
        if "linkback" in classes(li):  # the pingback's one line, at its date
            continue
        art = [c for c in li if c.tag == NS + "article"][0]
        parent_of[art.get("id")] = None
        for sub in li:
            if sub.tag == NS + "ol":
                walk(sub, art.get("id"))
    rendered = find_all(doc, "article", "p-comment")
    ids = [a.get("id") for a in rendered]
    # rendered ids are in the order the fixture lists comments, by DFS; build the expected DFS
    children: dict[int | None, list[int]] = {}
    for c in comments:
        children.setdefault(c.get("parent"), []).append(c["number"])
    expected: list[int] = []
    def dfs(n: int | None) -> None:
        for k in children.get(n, []):
            expected.append(k)
            dfs(k)
    dfs(None)
    names = [text_of([e for e in a.iter() if "p-name" in classes(e)][0]) for a in rendered]
    assert names == [comments[n - 1]["author_name"] for n in expected]
    number_of = dict(zip(ids, expected, strict=True))
    id_of = {v: k for k, v in number_of.items()}
    for c in comments:
        parent = parent_of[id_of[c["number"]]]
        if c.get("parent"):
            assert parent == id_of[c["parent"]], f"comment {c['number']} should nest under {c['parent']}"
        else:
            assert parent is None
    # "#12- Stop talking" answers #12; the blog author's answers are nested
    assert comments[12]["parent"] == 12 and parent_of[id_of[13]] == id_of[12]
    assert parent_of[id_of[3]] is not None and parent_of[id_of[7]] is not None
    # top-level comments are in chronological order
    tops = [number_of[i] for i in ids if parent_of[i] is None]
    assert tops == sorted(tops)


async def test_pingback_is_listed_at_its_date_among_the_comments(services: Services, client: httpx.AsyncClient) -> None:
    _load_demo(services)
    pb = demo_fixture()["pingback"]
    doc = parse_html((await client.get(DEMO)).text)
    assert [e for e in doc.iter(NS + "section") if e.get("id") == "pingbacks"] == []  # no list apart
    comments_section = [e for e in doc.iter(NS + "section") if e.get("id") == "comments"][0]
    thread = [e for e in comments_section.iter(NS + "ol") if "thread" in classes(e)][0]
    tops = [li for li in thread if li.tag == NS + "li"]
    lines = [li for li in tops if "pingback" in classes(li)]
    assert len(lines) == 1 and tops[-1] is lines[0]  # the latest item (March 17): last, as in the seed
    assert text_of(lines[0]).startswith(f"Pingback: {pb['title']} · {pb['site_name']}")
    link = find_all(lines[0], "a")[0]
    assert link.get("href") == pb["source_url"]
    dates = [t.get("datetime") for li in tops for t in li.iter(NS + "time") if "dt-published" in classes(t)][:len(tops)]
    firsts = [next(t.get("datetime") for t in li.iter(NS + "time")) for li in tops]
    assert firsts == sorted(firsts) and dates  # top-level items by date, the pingback among them
    assert text_of(comments_section).count(pb["title"]) == 1


async def test_post_page_microformats(services: Services, client: httpx.AsyncClient) -> None:
    _load_demo(services)
    html = (await client.get(DEMO)).text
    parsed = mf2py.parse(doc=html, url="https://blog.test" + DEMO)
    entries = [i for i in parsed["items"] if "h-entry" in i["type"]]
    assert len(entries) == 1
    entry = entries[0]["properties"]
    assert entry["name"] == ["China sent back North Korean defectors"]
    assert entry["author"][0]["type"] == ["h-card"]
    assert entry["author"][0]["properties"]["name"] == ["thekorean"]
    assert set(entry["category"]) >= {"China", "North Korea"}
    assert len(entry["comment"]) == 43  # top-level and nested h-cite p-comment
    first = entry["comment"][0]
    assert first["type"] == ["h-cite"] and first["properties"]["author"][0]["properties"]["name"] == ["cm"]


async def test_opengraph_meta(services: Services, client: httpx.AsyncClient) -> None:
    _load_demo(services)
    doc = parse_html((await client.get(DEMO)).text)
    og = {m.get("property"): m.get("content") for m in doc.iter(NS + "meta") if m.get("property")}
    assert og["og:type"] == "article"
    assert og["og:title"] == "China sent back North Korean defectors"
    assert og["og:url"] == "https://blog.test" + DEMO
    assert og["article:published_time"] == "2012-03-08T09:12:00Z"
    assert og["og:description"].startswith("China sent all 31")


async def test_feeds_parse_with_a_real_feed_parser(services: Services, client: httpx.AsyncClient) -> None:
    _load_demo(services)
    _publish(services, "---\ntitle: A newer post & more\ndate: 2026-10-01\ntags: [notes]\n---\nHello *world*.\n")
    for path, version in (("/feed.atom", "atom10"), ("/feed.rss", "rss20")):
        r = await client.get(path)
        assert r.status_code == 200
        feed = feedparser.parse(r.content)
        assert not feed.bozo, feed.get("bozo_exception")
        assert feed.version == version
        titles = [e.title for e in feed.entries]
        assert titles == ["A newer post & more", "China sent back North Korean defectors"]
        assert feed.entries[1].link == "https://blog.test" + DEMO
        assert (
            "Dong-A Ilbo" in feed.entries[1].content[0].value
            if version == "atom10"
            else "Dong-A Ilbo" in feed.entries[1].description
        )
        assert "<em>world</em>" in (
            feed.entries[0].content[0].value if version == "atom10" else feed.entries[0].description
        )


async def test_home_page_lists_posts_with_pagination(services: Services, client: httpx.AsyncClient) -> None:
    for i in range(1, 24):
        _publish(services, f"---\ntitle: Post number {i}\ndate: 2020-01-{i:02d}\n---\nBody {i}.\n")
    r1 = await client.get("/")
    doc = parse_html(r1.text)
    titles = [text_of(h) for h in find_all(doc, "h2", "p-name")]
    assert titles == [f"Post number {i}" for i in range(23, 13, -1)]
    r3 = await client.get("/?page=3")
    titles3 = [text_of(h) for h in find_all(parse_html(r3.text), "h2", "p-name")]
    assert titles3 == ["Post number 3", "Post number 2", "Post number 1"]
    assert 'rel="prev"' in r3.text and 'rel="next"' not in r3.text
    assert (await client.get("/?page=4")).status_code == 404


@pytest.mark.parametrize("query", ["page=0", "page=abc", "page=-1", "page=1e3", "page=99999999999"])
async def test_malformed_page_parameter_is_a_400_with_a_reason(client: httpx.AsyncClient, query: str) -> None:
    r = await client.get("/?" + query)
    assert r.status_code == 400
    assert "is not a page number" in r.text


async def test_unknown_slug_is_a_friendly_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/posts/no-such-post")
    assert r.status_code == 404
    assert "There is no post at /posts/no-such-post" in r.text
    parse_html(r.text)


async def test_tag_archive_and_about_pages(services: Services, client: httpx.AsyncClient) -> None:
    _load_demo(services)
    _publish(services, "---\ntitle: Other\ndate: 2019-05-05\ntags: [China, travel]\n---\nText.\n")
    r = await client.get("/tags/china")
    titles = [text_of(h) for h in find_all(parse_html(r.text), "h2", "p-name")]
    assert titles == ["Other", "China sent back North Korean defectors"]  # newest first
    assert [text_of(h) for h in find_all(parse_html((await client.get("/tags/travel")).text), "h2", "p-name")] == [
        "Other"
    ]
    assert (await client.get("/tags/nope")).status_code == 404
    archive = parse_html((await client.get("/archive")).text)
    assert [text_of(h) for h in find_all(archive, "h2")][:2] == ["2019", "2012"]
    about = (await client.get("/about")).text
    assert "Test Blog" in about and "@blog@blog.test" in about


async def test_drafts_and_deleted_posts_are_not_public(services: Services, client: httpx.AsyncClient) -> None:
    _publish(services, "---\ntitle: Secret\ndraft: true\n---\nNot yet.\n")
    assert (await client.get("/posts/secret")).status_code == 404
    assert "Secret" not in (await client.get("/")).text
    _publish(services, "---\ntitle: Gone soon\n---\nBye.\n")
    assert (await client.get("/posts/gone-soon")).status_code == 200
    from fedblog.blog.posts import delete_post

    with session_scope(services.engine) as session:
        delete_post(session, "gone-soon", now=services.clock.now())
    r = await client.get("/posts/gone-soon")
    assert r.status_code == 410 and "deleted" in r.text


async def test_comment_permalink_redirects_to_anchor(services: Services, client: httpx.AsyncClient) -> None:
    _load_demo(services)
    with Session(services.engine) as session:
        first = session.exec(select(Interaction).order_by(Interaction.id)).first()
    assert first is not None
    r = await client.get(f"/comments/{first.id}")
    assert r.status_code == 302
    assert r.headers["location"] == f"https://blog.test{DEMO}#comment-{first.id}"
    assert (await client.get("/comments/999999")).status_code == 404
    assert (await client.get("/comments/abc")).status_code == 404


async def _statements_for(services: Services, client: httpx.AsyncClient, path: str) -> int:
    seen: list[str] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(services.engine, "before_cursor_execute", record)
    try:
        r = await client.get(path)
    finally:
        event.remove(services.engine, "before_cursor_execute", record)
    assert r.status_code == 200
    return len(seen)


async def test_post_page_queries_do_not_grow_with_comments(services: Services, client: httpx.AsyncClient) -> None:
    # the effective profile (fedblog.blog.site) is read once per process and rechecked at most every
    # few seconds, not per page: load it now and keep it for the measurement
    assert (await client.get("/about")).status_code == 200
    services.site.ttl = float("inf")
    for slug, n in (("five", 5), ("many", 500)):
        _publish(services, f"---\ntitle: {slug}\nslug: {slug}\ntags: [a, b]\n---\nBody.\n")
        with session_scope(services.engine) as session:
            from fedblog.store.posts import get_post_by_slug

            post = get_post_by_slug(session, slug)
            assert post is not None and post.id is not None
            parent = None
            for i in range(n):
                row = Interaction(post_id=post.id, parent_id=parent, kind="comment", via="import",
                                  author_name=f"c{i}", content_html=f"<p>{i}</p>", published_at=services.clock.now())
                session.add(row)
                session.flush()
                parent = row.id if i % 3 else None
    counts = {slug: await _statements_for(services, client, f"/posts/{slug}") for slug in ("five", "many")}
    assert counts["five"] == counts["many"]
    assert counts["five"] <= 5


async def test_server_error_page_is_friendly(services: Services) -> None:
    """A broken database (the tag table dropped) gives the 500 page, not a traceback."""
    from fedblog.app import create_app

    _load_demo(services)
    with services.engine.begin() as conn:
        conn.exec_driver_sql(
            "DROP TABLE post_tag CASCADE" if services.engine.dialect.name == "postgresql" else "DROP TABLE post_tag"
        )
    # like uvicorn, send the 500 response instead of re-raising into the test
    transport = httpx.ASGITransport(app=create_app(services), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="https://blog.test") as c:
            r = await c.get(DEMO)
    finally:  # the PostgreSQL schema is shared by the session: put the table back
        SQLModel.metadata.tables["post_tag"].create(services.engine)
    assert r.status_code == 500
    assert "Something went wrong" in r.text and "Traceback" not in r.text
    parse_html(r.text)

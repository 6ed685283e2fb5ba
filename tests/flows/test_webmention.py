"""Receiving Webmentions (W3C Recommendation) through POST /webmention.

Senders are plain form POSTs over HTTP, as every Webmention sender makes them; the sources are
IndieWeb pages (microformats2 h-entry) on fake websites; the real worker verifies them; the post
page, its headers and the status pages are read back over HTTP.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from fedblog.activitypub.linkback_discovery import Endpoint, discover
from fedblog.app import create_app
from fedblog.blog.posts import parse_post_source, save_post
from fedblog.clock import FrozenClock
from fedblog.federation import moderation
from fedblog.jobs.runner import DeliveryRunner
from fedblog.services import Services, build_services
from fedblog.settings import Settings
from fedblog.store.db import session_scope
from fedblog.store.tables import Activity, Delivery, Interaction, LegacyPath, LinkbackRequest, Post
from tests.conftest import is_postgres
from tests.fediverse.network import FakeFediverse
from tests.helpers import NS, classes, find_all, parse_html, text_of
from tests.websites import Website, h_entry

pytestmark = pytest.mark.anyio
POST = "https://blog.test/posts/hello"
PHOTO = "https://friend.test/me.jpg"
AP = {"Accept": "application/activity+json"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(moderation="approve-all", db_write_timeout=1)


@pytest.fixture
def post(services: Services) -> str:
    with session_scope(services.engine) as session:
        for title, slug in (("Hello", "hello"), ("A draft", "a-draft")):
            draft = "true" if slug == "a-draft" else "false"
            save_post(session, parse_post_source(f"---\ntitle: {title}\nslug: {slug}\ndate: 2026-10-01\n"
                                                 f"draft: {draft}\n---\nHi.\n"),
                      now=services.clock.now(), default_author="Ann", default_language="en")
    return POST


@pytest.fixture
def site(fediverse: FakeFediverse) -> Website:
    return Website(fediverse, "friend.test")


async def send(client: httpx.AsyncClient, source: Any, target: Any, **headers: str) -> httpx.Response:
    data = {k: v for k, v in (("source", source), ("target", target)) if v is not None}
    return await client.post("/webmention", data=data, headers=headers)


async def sent(client: httpx.AsyncClient, source: str, target: str = POST) -> str:
    """Send; the status URL of the 202 Accepted (W3C Webmention §3.2: processed asynchronously)."""
    r = await send(client, source, target)
    assert r.status_code == 202, r.text
    assert r.text.strip().endswith(r.headers["location"])
    return r.headers["location"]


async def status_of(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    r = await client.get(url, headers={"Accept": "application/json"})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    return r.json()  # type: ignore[no-any-return]


async def work(services: Services) -> None:
    await DeliveryRunner(services, concurrency=2).run_until_idle()


def items(services: Services) -> list[Interaction]:
    with Session(services.engine) as session:
        return list(session.exec(select(Interaction).order_by(Interaction.id)).all())


def counts(services: Services) -> tuple[int, int, int]:
    with Session(services.engine) as session:
        return tuple(session.exec(select(func.count()).select_from(t)).one()  # type: ignore[return-value]
                     for t in (LinkbackRequest, Delivery, Interaction))


async def page(client: httpx.AsyncClient) -> Any:
    r = await client.get("/posts/hello")
    assert r.status_code == 200
    return parse_html(r.text)


async def test_replies_likes_reposts_and_mentions_are_recorded_as_what_they_are(
        services: Services, client: httpx.AsyncClient, post: str, site: Website) -> None:
    reply = site.put("/reply", h_entry(
        target=post, kind="reply", author="Frida Friend", author_url="https://friend.test/frida", photo=PHOTO,
        content='<p>Great post! <script>alert(1)</script><img src=x onerror=alert(2)>'
                '<a href="javascript:alert(3)">me</a></p>'))
    like = site.put("/like", h_entry(target=post, kind="like", author="Liz Liker", author_url="https://liz.test/",
                                     photo="https://liz.test/liz.png"))
    repost = site.put("/repost", h_entry(target=post, kind="repost", author="Rita Repost",
                                         author_url="https://rita.test/"))
    mention = site.put("/mention", h_entry(target=post, kind="mention", name="Notes on blogs", author="Mo"))
    statuses = [await sent(client, url) for url in (reply, like, repost, mention)]
    assert [(await status_of(client, s))["status"] for s in statuses] == ["pending"] * 4
    assert counts(services) == (4, 4, 0) and site.requests == []

    await work(services)

    assert sorted(site.requests) == ["/like", "/mention", "/reply", "/repost"]
    stored = {i.source_url: i for i in items(services)}
    assert {(i.kind, i.via, i.status) for i in stored.values()} == {
        ("webmention", "webmention", "visible"), ("like", "webmention", "visible"),
        ("repost", "webmention", "visible"), ("mention", "webmention", "visible")}
    assert (stored[reply].kind, stored[reply].author_name, stored[reply].author_url, stored[reply].author_avatar) == (
        "webmention", "Frida Friend", "https://friend.test/frida", PHOTO)
    assert stored[like].kind == "like" and stored[like].content_html == ""
    assert stored[mention].kind == "mention"
    assert "As this post says, blogs federate now." in stored[mention].content_html

    doc = await page(client)
    comments = {text_of([e for e in art.iter() if "p-name" in classes(e)][0]): art
                for art in find_all(doc, "article", "p-comment")}
    assert set(comments) == {"Frida Friend"}  # the mention is a line at its date, "Mentioned in: ..."
    [line] = [li for li in doc.iter(NS + "li") if "mention" in classes(li)]
    assert text_of(line).startswith("Mentioned in: Notes on blogs · Mo")
    assert [a.get("href") for a in line.iter(NS + "a")] == [mention]
    body = find_all(comments["Frida Friend"], "div", "comment-body")[0]
    assert text_of(body) == "Great post! me"
    markup = "".join(f"{e.tag}{sorted(e.attrib.items())}" for e in body.iter())
    assert "script" not in markup and "onerror" not in markup and "javascript" not in markup
    photos = [img.get("src") for img in comments["Frida Friend"].iter(NS + "img")]
    assert photos == [PHOTO]
    via = [a.get("href") for a in comments["Frida Friend"].iter(NS + "a") if "original" in classes(a)]
    assert via == [reply]
    assert [text_of(e) for e in find_all(doc, "span", "reaction-count")] == ["1 like", "1 boost"]
    assert [a.get("title") for a in doc.iter(NS + "a") if "p-author" in classes(a) and a.get("title")] == [
        "Liz Liker", "Rita Repost"]

    accepted = [await status_of(client, s) for s in statuses]
    assert [s["status"] for s in accepted] == ["accepted"] * 4
    assert all(s["comment"] == f"https://blog.test/comments/{stored[s['source']].id}" for s in accepted)


async def test_a_webmention_sent_again_updates_what_its_source_says(
        services: Services, client: httpx.AsyncClient, post: str, site: Website, clock: FrozenClock) -> None:
    source = site.put("/reply", h_entry(target=post, content="<p>First thoughts.</p>", author="Frida"))
    first = await sent(client, source)
    assert await sent(client, source) == first  # sent twice before the check: one request answers both
    await work(services)
    assert counts(services) == (1, 1, 1)

    clock.advance(3600)
    site.put("/reply", h_entry(target=post, kind="like", author="Frida F.", content="<p>Second thoughts.</p>"))
    second = await sent(client, source)
    assert second != first
    await work(services)

    [item] = items(services)
    assert (item.kind, item.author_name, item.content_html, item.status) == ("like", "Frida F.", "", "visible")
    assert item.updated_at is not None
    site.put("/reply", h_entry(target=post, content="<p>Third thoughts.</p>", author="Frida F."))
    await sent(client, source)
    await work(services)
    [item] = items(services)
    assert (item.kind, item.content_html) == ("webmention", "<p>Third thoughts.</p>")
    doc = await page(client)
    assert [text_of(b) for b in find_all(doc, "div", "comment-body")] == ["Third thoughts."]
    assert find_all(doc, "span", "reaction-count") == []
    assert [(await status_of(client, s))["status"] for s in (first, second)] == ["accepted", "accepted"]


async def test_a_webmention_that_changes_kind_or_text_serves_only_its_newest_words(
        services: Services, client: httpx.AsyncClient, post: str, site: Website, clock: FrozenClock) -> None:
    source = site.put("/reply", h_entry(target=post, content="<p>First thoughts.</p>", author="Frida"))
    await sent(client, source)
    await work(services)
    [item] = items(services)
    create = (await client.get(item.activity_ap_id or "", headers=AP)).json()
    assert create["type"] == "Create" and "First thoughts." in create["object"]["content"]

    clock.advance(3600)  # now a like: the Create of the reply and its words are no longer served
    site.put("/reply", h_entry(target=post, kind="like", author="Frida", content="<p>Second thoughts.</p>"))
    await sent(client, source)
    await work(services)
    assert (await client.get(create["id"], headers=AP)).status_code == 404
    like = (await client.get(f"/comments/{item.id}", headers=AP)).json()
    assert like["type"] == "Like" and like["object"] == post
    assert [i.activity_ap_id for i in items(services)] == [f"https://blog.test/comments/{item.id}"]

    served: list[str] = []
    for n, words in enumerate(("Third thoughts.", "Fourth thoughts.", "Fifth thoughts.")):
        clock.advance(3600)  # a reply again (a new Create), then edited twice (Updates)
        site.put("/reply", h_entry(target=post, content=f"<p>{words}</p>", author="Frida"))
        await sent(client, source)
        await work(services)
        [now] = items(services)
        if n == 0:
            assert now.activity_ap_id == create["id"]
        with Session(services.engine) as session:
            served = list(session.exec(select(Activity.ap_id).where(
                Activity.object_ap_id == f"https://blog.test/comments/{item.id}").order_by(Activity.id)).all())
    assert len(served) == 2 and served[0] == create["id"]  # the Create and only the newest Update
    again = (await client.get(served[0], headers=AP)).json()
    assert again["type"] == "Create" and "Third thoughts." in again["object"]["content"]
    update = (await client.get(served[1], headers=AP)).json()
    assert update["type"] == "Update" and "Fifth thoughts." in update["object"]["content"]
    note = (await client.get(f"/comments/{item.id}", headers=AP)).json()
    assert note["type"] == "Note" and "Fifth thoughts." in note["content"]
    bodies = [(await client.get(u, headers=AP)).text for u in served]
    assert not [w for w in ("First", "Second", "Fourth") if any(w in body for body in bodies)]


async def test_a_webmentions_h_card_author_is_a_guest_with_its_photo_and_a_bare_page_its_named_site(
        services: Services, client: httpx.AsyncClient, post: str, site: Website) -> None:
    reply = site.put("/reply", h_entry(target=post, content="<p>Well said.</p>", author="Frida Friend",
                                       author_url="https://friend.test/frida", photo=PHOTO))
    like = site.put("/like", h_entry(target=post, kind="like", author="Frida Friend",
                                     author_url="https://friend.test/frida", photo=PHOTO))
    bare = site.put("/bare", '<!doctype html><html><head><title>Notes</title>'
                             '<meta property="og:site_name" content="Friend&#39;s Notes"></head>'
                             f'<body><p>See <a href="{post}">this post</a>.</p></body></html>')
    for url in (reply, like, bare):
        await sent(client, url)
    await work(services)
    stored = {i.source_url: i for i in items(services)}
    assert len(stored) == 3 and stored[reply].actor_id == stored[like].actor_id != stored[bare].actor_id

    note = (await client.get(f"/comments/{stored[reply].id}", headers=AP)).json()
    liked = (await client.get(f"/comments/{stored[like].id}", headers=AP)).json()
    author = (await client.get(note["attributedTo"], headers=AP)).json()
    assert liked["actor"] == note["attributedTo"] == f"https://blog.test/guests/{stored[reply].actor_id}"
    assert (author["type"], author["name"], author["url"]) == ("Person", "Frida Friend", "https://friend.test/frida")
    assert author["icon"] == {"type": "Image", "url": PHOTO}
    mention = (await client.get(f"/comments/{stored[bare].id}", headers=AP)).json()
    named = (await client.get(mention["attributedTo"], headers=AP)).json()
    assert (named["type"], named["name"], named["url"]) == ("Service", "Friend's Notes", "https://friend.test")
    assert "icon" not in named


async def test_a_source_gone_or_no_longer_linking_deletes_its_mention(
        services: Services, client: httpx.AsyncClient, post: str, site: Website) -> None:
    gone = site.put("/gone", h_entry(target=post, content="<p>Soon gone.</p>", author="Gus"))
    unlinked = site.put("/edited", h_entry(target=post, content="<p>Soon edited.</p>", author="Eda"))
    for source in (gone, unlinked):
        await sent(client, source)
    await work(services)
    assert len(find_all(await page(client), "article", "p-comment")) == 2

    site.put("/gone", "This page was deleted.", status=410, media_type="text/plain")
    site.put("/edited", "<html><body><p>I took the link out.</p></body></html>")
    statuses = [await sent(client, source) for source in (gone, unlinked)]
    await work(services)

    assert [(i.status, i.content_html) for i in items(services)] == [("deleted", ""), ("deleted", "")]
    assert find_all(await page(client), "article", "p-comment") == []
    assert [((s := await status_of(client, u))["status"], s["reason"]) for u in statuses] == [
        ("deleted", "the source is gone (HTTP 410)"), ("deleted", "the source does not link to the target")]

    # linking again does not bring a deleted mention back: refused with the reason
    site.put("/edited", h_entry(target=post, content="<p>Back again.</p>", author="Eda"))
    again = await sent(client, unlinked)
    await work(services)
    assert (await status_of(client, again))["reason"] == "this source's earlier mention was deleted; it stays deleted"
    assert find_all(await page(client), "article", "p-comment") == []


@pytest.mark.parametrize(("source", "target", "status", "reason"), [
    ("https://friend.test/a", "https://elsewhere.test/posts/hello", 400, "target is not on this blog"),
    ("https://friend.test/a", "https://blog.test/about", 400,
     "target is not a post of this blog (only posts accept linkbacks)"),
    ("https://friend.test/a", "https://blog.test/posts/no-such-post", 400, "there is no post at target"),
    ("https://friend.test/a", "https://blog.test/posts/a-draft", 400, "there is no post at target"),
    ("https://friend.test/a", "http://blog.test/posts/hello", 400, "target is not on this blog"),
    (POST + "#comments", POST, 400, "source and target must not be the same URL"),
    ("ftp://friend.test/a", POST, 400, "source must be an absolute http(s) URL"),
    ("javascript:alert(1)", POST, 400, "source must be an absolute http(s) URL"),
    ("https://friend.test/a", "mailto:ann@blog.test", 400, "target must be an absolute http(s) URL"),
    (None, POST, 400, "source and target are both required"),
    ("https://friend.test/a", None, 400, "source and target are both required"),
])
async def test_bad_requests_get_400_with_the_reason_and_store_nothing(
        services: Services, client: httpx.AsyncClient, post: str, site: Website, source: Any, target: Any,
        status: int, reason: str) -> None:
    site.put("/a", f'<a href="{POST}">hi</a>')
    r = await send(client, source, target)
    assert (r.status_code, r.text) == (status, f"Webmention refused: {reason}.")
    assert "location" not in r.headers
    await work(services)
    assert counts(services) == (0, 0, 0) and site.requests == []


async def test_bodies_that_are_not_a_small_form_are_refused(
        services: Services, client: httpx.AsyncClient, post: str) -> None:
    form = f"source=https%3A%2F%2Ffriend.test%2Fa&target={POST}"
    for content, content_type, status in (
        (json.dumps({"source": "https://friend.test/a", "target": POST}), "application/json", 415),
        ("source=a&source=b&target=" + POST, "application/x-www-form-urlencoded", 400),
        ("source=https://friend.test/" + "a" * 9000 + "&target=" + POST, "application/x-www-form-urlencoded", 413),
        (b"source=\xff&target=x", "application/x-www-form-urlencoded", 400),
    ):
        r = await client.post("/webmention", content=content, headers={"Content-Type": content_type})
        assert r.status_code == status, (content_type, r.text)
    r = await client.post("/webmention", content=form, headers={"Content-Type": "application/x-www-form-urlencoded",
                                                                "Content-Encoding": "gzip"})
    assert r.status_code == 415
    assert (await client.get("/webmention")).status_code == 405
    assert counts(services) == (0, 0, 0)


async def test_post_pages_advertise_both_endpoints_and_status_pages_answer(
        services: Services, client: httpx.AsyncClient, post: str, site: Website) -> None:
    r = await client.get("/posts/hello")
    assert discover(str(r.url), r.headers.multi_items(), None) == Endpoint("webmention", "https://blog.test/webmention")
    assert discover(str(r.url), [], r.text) == Endpoint("webmention", "https://blog.test/webmention")
    assert r.headers["x-pingback"] == "https://blog.test/xmlrpc"
    head = find_all(parse_html(r.text), "link")
    assert {(e.get("rel"), e.get("href")) for e in head} >= {
        ("webmention", "https://blog.test/webmention"), ("pingback", "https://blog.test/xmlrpc")}

    url = await sent(client, site.put("/nolink", "<p>no link here</p>", media_type="text/plain"))
    html = await client.get(url)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "Webmention: Waiting to be checked" in text_of(parse_html(html.text))
    await work(services)
    doc = parse_html((await client.get(url)).text)
    assert "Webmention: Refused" in text_of(doc)
    assert "refused: the source (text/plain) does not link to the target" in text_of(doc)
    assert [a.get("href") for a in doc.iter(NS + "a") if a.get("rel") == "nofollow ugc"] == [site.url("/nolink")]
    assert (await client.get("/linkbacks/not-a-token")).status_code == 404


async def test_a_source_that_fails_for_a_while_is_tried_again_then_given_up(
        services: Services, client: httpx.AsyncClient, post: str, site: Website, clock: FrozenClock) -> None:
    flaky = site.put("/flaky", "busy", status=503, media_type="text/plain")
    url = await sent(client, flaky)
    await work(services)
    status = await status_of(client, url)
    assert (status["status"], status["reason"]) == ("pending", "the source answered HTTP 503")
    site.put("/flaky", h_entry(target=post, content="<p>Finally.</p>", author="Flo"))
    clock.advance(6 * 3600)  # past the backoff
    await work(services)
    assert (await status_of(client, url))["status"] == "accepted"
    assert [i.content_html for i in items(services)] == ["<p>Finally.</p>"]

    down = site.put("/down", "busy", status=503, media_type="text/plain")
    url = await sent(client, down)
    for _ in range(8):
        await work(services)
        clock.advance(7 * 3600)
    status = await status_of(client, url)
    assert (status["status"], status["reason"]) == ("refused", "the source could not be fetched: HTTP 503")
    assert site.requests.count("/down") == 5  # MAX_TRIES fetches, then no more
    with Session(services.engine) as session:
        job = session.exec(select(Delivery).where(Delivery.inbox == down)).one()
    assert (job.state, job.attempts) == ("sent", 5)


async def test_a_stranger_waits_for_the_authors_approval(
        settings: Settings, clock: FrozenClock, fediverse: FakeFediverse, services: Services, post: str,
        site: Website) -> None:
    held = build_services(settings.replace(moderation="first-contact"), clock=clock, transport=fediverse.transport())
    fediverse.add("blog.test", create_app(held))
    try:
        async with fediverse.client("https://blog.test") as client:
            url = await sent(client, site.put("/reply", h_entry(target=post, content="<p>Hi!</p>", author="Stan")))
            await DeliveryRunner(held, concurrency=2).run_until_idle()
            status = await status_of(client, url)
            assert (status["status"], status["comment"]) == ("accepted", None)
            assert "waits for the blog author's approval" in text_of(parse_html((await client.get(url)).text))
            assert find_all(await page(client), "article", "p-comment") == []
            [item] = items(services)
            assert item.status == "pending"
            with session_scope(services.engine) as session:
                moderation.approve(session, item.id, clock.now())  # type: ignore[arg-type]
            assert (await status_of(client, url))["comment"] == f"https://blog.test/comments/{item.id}"
            assert [text_of(b) for b in find_all(await page(client), "div", "comment-body")] == ["Hi!"]
    finally:
        await held.aclose()


async def test_an_imported_posts_old_wordpress_url_is_a_valid_target(
        services: Services, client: httpx.AsyncClient, post: str, site: Website) -> None:
    old = "https://blog.test/2012/03/08/hello/"
    with session_scope(services.engine) as session:
        hello = session.exec(select(Post).where(Post.slug == "hello")).one()
        session.add(LegacyPath(path="/2012/03/08/hello/", post_id=hello.id))
    assert (await client.get(old)).headers["location"] == POST  # the old URL answers 301 to the post
    source = site.put("/old-link", h_entry(target=old, content="<p>From 2012.</p>", author="Old Friend"))
    await sent(client, source, old)
    await work(services)
    assert [text_of(b) for b in find_all(await page(client), "div", "comment-body")] == ["From 2012."]
    r = await send(client, source, "https://blog.test/2012/03/09/nothing-here/")
    assert (r.status_code, r.text) == (400, "Webmention refused: target is not a post of this blog "
                                             "(only posts accept linkbacks).")


async def test_a_database_that_cannot_take_the_write_answers_503_and_stores_nothing(
        services: Services, client: httpx.AsyncClient, post: str, site: Website) -> None:
    source = site.put("/reply", h_entry(target=post, content="<p>Hello.</p>", author="Pat"))
    with contextlib.ExitStack() as stack:
        if is_postgres():
            conn = stack.enter_context(services.engine.connect())
            conn.exec_driver_sql("LOCK TABLE linkback_request IN ACCESS EXCLUSIVE MODE")
            stack.callback(conn.rollback)
        else:
            other = sqlite3.connect(services.engine.url.database or "", isolation_level=None, timeout=0)
            stack.callback(other.close)
            other.execute("BEGIN EXCLUSIVE")
            stack.callback(other.execute, "ROLLBACK")
        r = await send(client, source, post)
        assert (r.status_code, r.headers["retry-after"]) == (503, "60")
    assert counts(services) == (0, 0, 0)
    await sent(client, source)  # the sender's retry is stored
    assert counts(services) == (1, 1, 0)

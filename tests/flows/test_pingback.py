"""Receiving pingbacks (Pingback 1.0) through POST /xmlrpc, as WordPress sends them.

Every ping is made by Python's ``xmlrpc.client.ServerProxy`` (``tests/websites.py``: its transport
sends the bytes xmlrpc.client builds over the app's ASGI interface), so the call, its headers and
the parsing of our answer (a string, or a ``Fault`` with the spec's code) are the real client's.
The source pages are fake websites on the fake network; the worker that verifies them is the real
delivery worker, and the post page is read back over HTTP.
"""

from __future__ import annotations

import xmlrpc.client
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import anyio.to_thread
import httpx
import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from fedblog.app import create_app
from fedblog.blog.demo import load_demo
from fedblog.blog.posts import parse_post_source, save_post
from fedblog.clock import FrozenClock, utc
from fedblog.jobs.runner import DeliveryRunner
from fedblog.services import Services, build_services
from fedblog.settings import Settings
from fedblog.store.db import session_scope
from fedblog.store.tables import Delivery, Interaction, LinkbackRequest
from tests.fediverse.network import FakeFediverse
from tests.helpers import NS, demo_fixture, find_all, parse_html, text_of
from tests.websites import Website, XmlRpcTransport, h_entry

pytestmark = pytest.mark.anyio
POST = "https://blog.test/posts/hello"
DEMO = "https://blog.test/posts/china-sent-back-north-korean-defectors"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(moderation="approve-all")


@pytest.fixture
def post(services: Services) -> str:
    with session_scope(services.engine) as session:
        save_post(session, parse_post_source("---\ntitle: Hello\nslug: hello\ndate: 2026-10-01\n---\nHi.\n"),
                  now=services.clock.now(), default_author="Ann", default_language="en")
    return POST


@pytest.fixture
def site(fediverse: FakeFediverse) -> Website:
    return Website(fediverse, "friend.test")


async def ping(client: httpx.AsyncClient, source: str, target: str, *, method: str = "pingback.ping",
               transport: XmlRpcTransport | None = None) -> Any:
    """``ServerProxy(...).pingback.ping(source, target)`` as a WordPress site would call it."""
    proxy = xmlrpc.client.ServerProxy("https://blog.test/xmlrpc", transport=transport or XmlRpcTransport(client))
    call: Callable[..., Any] = proxy
    for part in method.split("."):
        call = getattr(call, part)
    return await anyio.to_thread.run_sync(call, source, target)


async def fault_of(client: httpx.AsyncClient, source: str, target: str, **kw: Any) -> xmlrpc.client.Fault:
    with pytest.raises(xmlrpc.client.Fault) as caught:
        await ping(client, source, target, **kw)
    return caught.value


def counts(services: Services) -> tuple[int, int, int]:
    """(linkback requests, queued jobs, interactions) stored."""
    with Session(services.engine) as session:
        return tuple(session.exec(select(func.count()).select_from(t)).one()  # type: ignore[return-value]
                     for t in (LinkbackRequest, Delivery, Interaction))


async def work(services: Services) -> None:
    await DeliveryRunner(services, concurrency=2).run_until_idle()


def linkback_lines(html: str) -> list[Any]:
    return find_all(parse_html(html), "li", "pingback")


async def test_a_pingback_is_queued_verified_by_the_worker_then_shown_once(
        services: Services, client: httpx.AsyncClient, post: str, site: Website) -> None:
    source = site.put("/2026/11/on-federation", h_entry(target=post, kind="mention", name="On federation"))
    site.pages["/2026/11/on-federation"].body = site.pages["/2026/11/on-federation"].body.replace(
        "<head>", '<head><meta property="og:site_name" content="Friend\'s notes">')

    answer = await ping(client, source, post)

    assert answer.startswith("Pingback queued for verification; status: https://blog.test/linkbacks/")
    assert site.requests == []  # nothing fetched while the sender waited
    assert counts(services) == (1, 1, 0)
    status_url = answer.rsplit(" ", 1)[1]
    status = (await client.get(status_url, headers={"Accept": "application/json"})).json()
    assert (status["status"], status["protocol"], status["source"], status["target"]) == (
        "pending", "pingback", source, post)
    assert linkback_lines((await client.get("/posts/hello")).text) == []

    await work(services)

    assert site.requests == ["/2026/11/on-federation"]
    lines = linkback_lines((await client.get("/posts/hello")).text)
    assert [text_of(li) for li in lines] == ["Pingback: On federation · Friend's notes · November 1, 2026"]
    assert [a.get("href") for a in lines[0].iter(NS + "a")] == [source]
    status = (await client.get(status_url, headers={"Accept": "application/json"})).json()
    assert status["status"] == "accepted" and status["reason"] is None
    assert status["comment"] and status["comment"].startswith("https://blog.test/comments/")
    with Session(services.engine) as session:
        item = session.exec(select(Interaction)).one()
    assert (item.kind, item.via, item.status, item.source_url, item.federated) == (
        "pingback", "pingback", "visible", source, True)
    assert '"protocol":"pingback"' in (item.evidence or "")

    # the same ping again: Pingback 1.0 fault 0x30, nothing more stored or fetched
    again = await fault_of(client, source, post)
    assert again.faultCode == 0x30 and "already been registered" in again.faultString
    await work(services)
    assert counts(services) == (1, 1, 1) and site.requests == ["/2026/11/on-federation"]


async def test_the_demo_pingback_sent_again_through_the_endpoint_renders_like_the_seed(
        services: Services, client: httpx.AsyncClient, clock: FrozenClock, fediverse: FakeFediverse) -> None:
    with session_scope(services.engine) as session:
        assert load_demo(session) is not None
    seed = demo_fixture()["pingback"]
    seed_line = linkback_lines((await client.get(DEMO)).text)
    assert len(seed_line) == 1
    expected_text = text_of(seed_line[0])
    assert expected_text.startswith("Pingback: Korea: Criticisms Mount")
    expected_time = [t.get("datetime") for t in seed_line[0].iter(NS + "time")]
    with session_scope(services.engine) as session:  # forget the seed's copy: Global Voices pings us anew
        session.delete(session.exec(select(Interaction).where(Interaction.kind == "pingback")).one())
    assert linkback_lines((await client.get(DEMO)).text) == []

    clock.advance((datetime.fromisoformat(seed["published"]) - clock.now()).total_seconds())
    global_voices = Website(fediverse, "globalvoices.org")
    path = seed["source_url"].removeprefix("https://globalvoices.org")
    global_voices.put(path, (
        f'<!doctype html><html><head><title>{seed["title"]} · Global Voices</title>'
        f'<meta property="og:site_name" content="{seed["site_name"]}"></head><body>'
        f'<article class="h-entry"><h1 class="p-name">{seed["title"]}</h1>'
        f'<div class="e-content"><p>Netizens reacted to the news, <a href="{DEMO}">writes Ask a Korean</a>.</p>'
        f'</div></article></body></html>'))

    assert "queued for verification" in await ping(client, seed["source_url"], DEMO)
    await work(services)

    lines = linkback_lines((await client.get(DEMO)).text)
    assert [text_of(li) for li in lines] == [expected_text]
    assert [t.get("datetime") for t in lines[0].iter(NS + "time")] == expected_time
    assert [a.get("href") for a in lines[0].iter(NS + "a")] == [seed["source_url"]]


async def test_a_page_without_microformats_is_named_by_its_title_as_imports_are(
        services: Services, client: httpx.AsyncClient, post: str, site: Website, fediverse: FakeFediverse) -> None:
    site.put("/plain", f"<html><head><title>Links of the week | Weekly Links</title></head><body><ul>"
                       f'<li><a href="{post}">Hello</a>, a post</li></ul></body></html>')
    bare = Website(fediverse, "www.bare.test")
    bare.put("/p", f'<p>See <a href="{post}">this</a>.</p>')
    for source in (site.url("/plain"), bare.url("/p")):
        await ping(client, source, post)
    await work(services)
    lines = linkback_lines((await client.get("/posts/hello")).text)
    assert sorted(text_of(li).rsplit(" · ", 1)[0] for li in lines) == [
        "Pingback: Links of the week · Weekly Links", "Pingback: https://www.bare.test/p · bare.test"]


async def test_a_source_that_does_not_link_is_refused_and_nothing_shows(
        services: Services, client: httpx.AsyncClient, post: str, site: Website) -> None:
    source = site.put("/unrelated", "<html><body><p>Nothing about <a href='https://blog.test/'>that blog</a>.</p>"
                      "<!-- https://blog.test/posts/hello --></body></html>")
    answer = await ping(client, source, post)
    await work(services)

    assert site.requests == ["/unrelated"]
    assert linkback_lines((await client.get("/posts/hello")).text) == []
    assert counts(services)[2] == 0
    status = (await client.get(answer.rsplit(" ", 1)[1], headers={"Accept": "application/json"})).json()
    assert status["status"] == "refused" and status["reason"] == "the source does not link to the target"
    page = await client.get(answer.rsplit(" ", 1)[1])
    assert page.status_code == 200 and "the source does not link to the target" in text_of(parse_html(page.text))

    gone = site.put("/gone", "", status=404)
    await ping(client, gone, post)
    await work(services)
    with Session(services.engine) as session:
        refused = session.exec(select(LinkbackRequest).where(LinkbackRequest.source == gone)).one()
    assert (refused.state, refused.last_error) == ("refused", "the source could not be fetched: HTTP 404")
    assert counts(services)[2] == 0


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<methodCall><methodName>pingback.ping</methodName><params>
<param><value><string>https://friend.test/&lol4;</string></value></param>
<param><value><string>https://blog.test/posts/hello</string></value></param></params></methodCall>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE call [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<methodCall><methodName>pingback.ping</methodName><params>
<param><value><string>https://friend.test/&xxe;</string></value></param>
<param><value><string>https://blog.test/posts/hello</string></value></param></params></methodCall>"""


async def raw_call(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await client.post("/xmlrpc", content=body, headers={"Content-Type": "text/xml"})


async def test_xml_attacks_other_methods_and_oversized_bodies_are_refused_and_store_nothing(
        services: Services, client: httpx.AsyncClient, post: str, site: Website) -> None:
    site.put("/linking", f'<a href="{post}">hello</a>')
    for body in (BILLION_LAUGHS, EXTERNAL_ENTITY):
        r = await raw_call(client, body)
        assert r.status_code == 200
        with pytest.raises(xmlrpc.client.Fault) as caught:
            xmlrpc.client.loads(r.content)
        assert caught.value.faultCode == -32700 and "DTDs, entities and external references are refused" in (
            caught.value.faultString)
    assert "root:" not in r.text

    # methods other than pingback.ping, through the real client: -32601, even the multicall
    for method in ("system.multicall", "system.listMethods", "pingback.extensions.getPingbacks", "wp.getUsersBlogs"):
        fault = await fault_of(client, site.url("/linking"), post, method=method)
        assert fault.faultCode == -32601, method
    multicall = xmlrpc.client.MultiCall(xmlrpc.client.ServerProxy(
        "https://blog.test/xmlrpc", transport=XmlRpcTransport(client)))
    for _ in range(50):
        multicall.pingback.ping(site.url("/linking"), post)
    with pytest.raises(xmlrpc.client.Fault) as caught:
        await anyio.to_thread.run_sync(lambda: list(multicall()))
    assert caught.value.faultCode == -32601

    # more than 64 KiB: refused on the declared Content-Length, and while streaming when none is declared
    big = xmlrpc.client.dumps((site.url("/linking?" + "x" * 70_000), post), methodname="pingback.ping").encode()
    with pytest.raises(xmlrpc.client.ProtocolError) as too_big:
        await ping(client, site.url("/linking?" + "x" * 70_000), post)
    assert too_big.value.errcode == 413

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start:start + 8192]

    r = await client.post("/xmlrpc", content=chunks(), headers={"Content-Type": "text/xml"})
    assert r.status_code == 413 and "content-length" not in {k.lower() for k in r.request.headers}

    # a gzip-compressed call (xmlrpc.client compresses past its encode_threshold): refused
    gzipping = XmlRpcTransport(client)
    gzipping.encode_threshold = 0
    with pytest.raises(xmlrpc.client.ProtocolError) as compressed:
        await ping(client, site.url("/linking"), post, transport=gzipping)
    assert compressed.value.errcode == 415
    assert ("Content-Encoding", "gzip") in gzipping.connections[0].sent[0][0]

    # targets that are not ours, not a post, or no post; a source that is not http(s)
    for source, target, code in (
        (site.url("/linking"), "https://elsewhere.test/posts/hello", 0x21),
        (site.url("/linking"), "https://blog.test/about", 0x21),
        (site.url("/linking"), "https://blog.test/posts/no-such-post", 0x20),
        ("file:///etc/passwd", post, 0x10),
        (post, post, 0),
    ):
        assert (await fault_of(client, source, target)).faultCode == code, (source, target)
    assert (await client.get("/xmlrpc")).status_code == 405

    await work(services)
    assert counts(services) == (0, 0, 0) and site.requests == []


async def test_pings_are_limited_per_address_and_per_source_host(
        settings: Settings, clock: FrozenClock, fediverse: FakeFediverse, services: Services, post: str,
        site: Website) -> None:
    limited = build_services(settings.replace(linkback_rate_limit=4, linkback_rate_limit_host=2), clock=clock,
                             transport=fediverse.transport())
    fediverse.add("blog.test", create_app(limited))
    try:
        async with fediverse.client("https://blog.test") as client:
            for n in (1, 2):
                assert "queued" in await ping(client, site.url(f"/post-{n}"), post)
            third = await fault_of(client, site.url("/post-3"), post)  # the source host's budget is spent
            assert third.faultCode == 0x31 and "Too many pingbacks from friend.test" in third.faultString
            other = Website(fediverse, "other.test")
            assert "queued" in await ping(client, other.url("/p"), post)
            with pytest.raises(xmlrpc.client.ProtocolError) as caught:  # the address's budget is spent
                await ping(client, other.url("/q"), post)
            assert caught.value.errcode == 429 and int(caught.value.headers["retry-after"]) >= 1
            assert counts(services)[0] == 3
            clock.advance(2 * settings.rate_window)
            assert "queued" in await ping(client, site.url("/post-3"), post)
    finally:
        await limited.aclose()
    with Session(services.engine) as session:
        first = session.exec(select(LinkbackRequest)).first()
    assert first is not None and utc(first.created_at) < clock.now()

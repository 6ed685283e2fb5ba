"""Split domain: the handle is @blog@example.test while the blog runs at https://blog.test.

The handle domain only redirects /.well-known/webfinger and /.well-known/host-meta to the blog
(as docs/handle-and-profile.md shows for Caddy and nginx). A resolver that follows Mastodon's steps
(app/services/resolve_account_service.rb ``process_webfinger!`` for a typed handle;
app/services/activitypub/fetch_remote_actor_service.rb ``check_webfinger!`` for an actor fetched by
id) must find the actor from either name, and the actor must loop back to the handle domain.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from fedblog.app import create_app
from fedblog.clock import FrozenClock
from fedblog.services import build_services
from fedblog.settings import Settings
from tests.fediverse.network import FakeFediverse

pytestmark = pytest.mark.anyio
ACTOR = "https://blog.test/users/blog"
AP_TYPES = ("application/activity+json", 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"')


class ResolveError(Exception):
    pass


def handle_domain_app() -> Starlette:
    """What the handle domain's web server does: send WebFinger and host-meta to the blog."""

    async def to_blog(request: Request) -> Response:
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"https://blog.test{request.url.path}{query}", status_code=301)

    return Starlette(routes=[Route("/.well-known/webfinger", to_blog), Route("/.well-known/host-meta", to_blog)])


async def _webfinger(http: httpx.AsyncClient, acct: str) -> dict[str, Any]:
    """One WebFinger query as Mastodon's app/lib/webfinger.rb makes it (redirects followed)."""
    domain = acct.split("@")[1]
    r = await http.get(f"https://{domain}/.well-known/webfinger", params={"resource": f"acct:{acct}"},
                       headers={"Accept": "application/jrd+json, application/json"})
    if r.status_code != 200:
        raise ResolveError(f"WebFinger {acct}: HTTP {r.status_code}")
    doc: dict[str, Any] = r.json()
    if not doc.get("subject"):
        raise ResolveError(f"WebFinger {acct}: no subject")
    return doc


def _split(subject: str) -> tuple[str, str]:
    user, _, domain = subject.removeprefix("acct:").partition("@")
    return user, domain


async def _confirmed(http: httpx.AsyncClient, username: str, domain: str) -> tuple[str, dict[str, Any]]:
    """Ask for username@domain; if the subject names another account, ask that one once, and it must
    name itself (Mastodon allows one WebFinger redirect and raises "Too many webfinger redirects")."""
    doc = await _webfinger(http, f"{username}@{domain}")
    confirmed = _split(doc["subject"])
    if (confirmed[0].lower(), confirmed[1].lower()) != (username.lower(), domain.lower()):
        doc = await _webfinger(http, "@".join(confirmed))
        again = _split(doc["subject"])
        if (again[0].lower(), again[1].lower()) != (confirmed[0].lower(), confirmed[1].lower()):
            raise ResolveError("too many WebFinger redirects")
    return "@".join(confirmed), doc


def _self_href(doc: dict[str, Any]) -> str:
    link = next((link for link in doc.get("links", []) if link.get("rel") == "self"), {})
    if link.get("type") not in AP_TYPES:
        raise ResolveError("no ActivityPub self link")
    return str(link["href"])


async def resolve_handle(http: httpx.AsyncClient, handle: str) -> tuple[str, str]:
    """ResolveAccountService#process_webfinger!: the canonical acct and the actor id."""
    username, domain = handle.lstrip("@").split("@")
    acct, doc = await _confirmed(http, username, domain)
    return acct, _self_href(doc)


async def fetch_actor_and_loop_back(http: httpx.AsyncClient, actor_id: str, *, fep_2c59: bool = False) -> str:
    """FetchRemoteActorService: fetch by id, then check_webfinger! from preferredUsername@host of the id
    (Mastodon 4.5), or from the actor's FEP-2c59 ``webfinger`` property when it has one (4.6)."""
    actor = (await http.get(actor_id, headers={"Accept": "application/activity+json"})).json()
    if actor.get("id") != actor_id:
        raise ResolveError("actor id mismatch")
    username, domain = actor["preferredUsername"], httpx.URL(actor["id"]).host
    if fep_2c59 and isinstance(actor.get("webfinger"), str):
        username, domain = actor["webfinger"].removeprefix("acct:").split("@")
    acct, doc = await _confirmed(http, username, domain)
    if _self_href(doc) != actor_id:
        raise ResolveError(f"WebFinger for {acct} does not loop back to {actor_id}")
    return acct


@pytest.fixture
async def split_blog(settings: Settings, clock: FrozenClock, fediverse: FakeFediverse) -> AsyncIterator[FakeFediverse]:
    svc = build_services(settings.replace(domain="example.test"), clock=clock, transport=fediverse.transport())
    fediverse.add("blog.test", create_app(svc))
    fediverse.add("example.test", handle_domain_app())
    yield fediverse
    await svc.aclose()


@pytest.fixture
async def http(split_blog: FakeFediverse) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=split_blog.transport(), follow_redirects=True, max_redirects=3) as c:
        yield c


async def test_both_names_answer_with_the_handle_domain_as_subject(http: httpx.AsyncClient) -> None:
    for resource in ("acct:blog@example.test", "acct:blog@blog.test", "acct:BLOG@Blog.Test", ACTOR):
        r = await http.get("https://blog.test/.well-known/webfinger", params={"resource": resource})
        assert r.status_code == 200, resource
        doc = r.json()
        assert doc["subject"] == "acct:blog@example.test", resource
        assert {"rel": "self", "type": "application/activity+json", "href": ACTOR} in doc["links"]
    r = await http.get("https://blog.test/.well-known/webfinger", params={"resource": "acct:blog@elsewhere.test"})
    assert r.status_code == 404


async def test_mastodon_resolution_round_trips_on_a_split_domain(http: httpx.AsyncClient) -> None:
    # someone types the handle; or the blog's own host (Mastodon tries the actor's host first)
    assert await resolve_handle(http, "@blog@example.test") == ("blog@example.test", ACTOR)
    assert await resolve_handle(http, "@blog@blog.test") == ("blog@example.test", ACTOR)
    # the actor, fetched by id, loops back through WebFinger to itself under the handle domain
    assert await fetch_actor_and_loop_back(http, ACTOR) == "blog@example.test"
    assert await fetch_actor_and_loop_back(http, ACTOR, fep_2c59=True) == "blog@example.test"
    actor = (await http.get(ACTOR, headers={"Accept": "application/activity+json"})).json()
    assert actor["webfinger"] == "blog@example.test"
    assert actor["attributionDomains"] == ["example.test", "blog.test"]  # fediverse:creator on the blog's pages
    # the pages show the handle domain
    home = await http.get("https://blog.test/")
    assert "@blog@example.test" in home.text


async def test_without_the_handle_domain_redirect_resolution_fails(
    http: httpx.AsyncClient, split_blog: FakeFediverse
) -> None:
    split_blog.add("example.test", Starlette())  # the handle domain serves nothing at /.well-known
    with pytest.raises(ResolveError):
        await fetch_actor_and_loop_back(http, ACTOR)


async def test_any_spelling_of_the_handle_domain_answers(
    settings: Settings, clock: FrozenClock, fediverse: FakeFediverse
) -> None:
    """A handle domain is a DNS name: case, a trailing dot and the Unicode or IDNA ("xn--") form of an
    internationalised name all name it (RFC 4343; RFC 5891)."""
    svc = build_services(settings.replace(domain="xn--bcher-kva.example"), clock=clock, transport=fediverse.transport())
    fediverse.add("blog.test", create_app(svc))
    try:
        async with httpx.AsyncClient(transport=fediverse.transport()) as http:
            for resource in ("acct:blog@xn--bcher-kva.example", "acct:blog@bücher.example", "acct:Blog@BÜCHER.example.",
                             "acct:blog@XN--BCHER-KVA.EXAMPLE", "blog@xn--bcher-kva.example.", "acct:blog@BLOG.TEST.",
                             "https://blog.test:443/users/blog", "HTTPS://BLOG.TEST/users/blog"):
                r = await http.get("https://blog.test/.well-known/webfinger", params={"resource": resource})
                assert r.status_code == 200, resource
                assert r.json()["subject"] == "acct:blog@xn--bcher-kva.example", resource
            for resource in ("acct:blog@xn--bcher-kvb.example", "acct:blog@bucher.example",
                             "acct:other@bücher.example", "acct:blog@bücher.example.evil.test",
                             "https://blog.test/users/Blog", "acct:blog@blog.test:8443"):
                r = await http.get("https://blog.test/.well-known/webfinger", params={"resource": resource})
                assert r.status_code == 404, resource
    finally:
        await svc.aclose()

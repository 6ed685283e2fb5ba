"""Hardening of web comments and the actors they make, through HTTP and a real database:

* ids from URLs, forms and WebFinger are read in one canonical form (``fedblog.urls.parse_id``):
  "²" (a digit to ``str.isdigit``, not to ``int``) and numbers too big for the database are a 4xx,
  never a 500;
* a guest is trusted from the admin's approval only when identified by an email (never shown):
  a name and a website are public, so anyone may type them;
* a guest actor is served (document, page, outbox, WebFinger) only once it has a public comment;
* a linkback's public status page gives no operator hints.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from fedblog.admin import queue
from fedblog.clock import FrozenClock
from fedblog.services import Services
from fedblog.settings import Settings
from fedblog.store.tables import Actor, Interaction
from fedblog.urls import guest_ref
from tests.flows.test_comment_form import comment_id_of, filled, fresh_form, post_id, send, stored
from tests.flows.test_webmention import post as webmention_post
from tests.flows.test_webmention import status_of, work

pytestmark = pytest.mark.anyio
AP = "application/activity+json"
HUGE = "9" * 26
_ = (post_id, webmention_post)  # fixtures


@pytest.fixture
def moderation() -> str:
    return "approve-all"


@pytest.fixture
def settings(settings: Settings, moderation: str) -> Settings:
    return settings.replace(moderation=moderation, comment_rate_limit=50, db_write_timeout=1)


async def comment(client: httpx.AsyncClient, clock: FrozenClock, **values: Any) -> int:
    fields = await fresh_form(client)
    clock.advance(5)
    base = {"name": "Ada Reader", "email": "", "website": "", "text": "A comment."}
    return comment_id_of(await send(client, filled(fields, **{**base, **values})))


def actor_of(services: Services, comment_id: int) -> Actor:
    with Session(services.engine) as s:
        item = s.get(Interaction, comment_id)
        assert item is not None and item.actor_id is not None
        actor = s.get(Actor, item.actor_id)
        assert actor is not None
        s.expunge(actor)
        return actor


# -- 1. odd ids ------------------------------------------------------------------------------------
ODD_GETS = [
    "/comments/%C2%B2", "/comments/%C2%B2/reply", "/comments/%C2%B2/replies", "/comments/%C2%B2?key=abc",
    "/guests/%C2%B2", "/guests/%C2%B2/outbox", f"/guests/{HUGE}", f"/guests/{HUGE}/outbox",
    "/comments/9999999999999999999", "/comments/9999999999999999999/replies", f"/comments/{HUGE}/reply",
    f"/comments/{HUGE}?key=abc", "/comments/0", "/comments/007", "/guests/0",
    "/.well-known/webfinger?resource=acct:guest-%C2%B2@blog.test",
    f"/.well-known/webfinger?resource=acct:guest-{HUGE}@blog.test",
    f"/.well-known/webfinger?resource=acct:site-{HUGE}@blog.test",
    f"/.well-known/webfinger?resource=https://blog.test/guests/{HUGE}",
    "/.well-known/webfinger?resource=https://blog.test/guests/%C2%B2",
    f"/posts/hello/{HUGE}", f"/posts/hello/{HUGE}/replies", f"/posts/hello/{HUGE}/context",
    f"/posts/hello/{HUGE}/likes", "/?page=%C2%B2", f"/?page={HUGE}",
]


@pytest.mark.parametrize("accept", ["text/html", AP])
@pytest.mark.parametrize("path", ODD_GETS)
async def test_odd_ids_in_urls_are_a_clear_4xx(client: httpx.AsyncClient, post_id: int, path: str,
                                              accept: str) -> None:
    r = await client.get(path, headers={"Accept": accept})
    assert 400 <= r.status_code < 500, (path, accept, r.status_code, r.text[:300])
    assert r.text.strip(), "a 4xx says why"


@pytest.mark.parametrize("field", [{"post": "²"}, {"parent": "²"}, {"post": HUGE}, {"parent": HUGE},
                                   {"post": "-1"}, {"parent": "0x1"}])
async def test_odd_ids_in_the_comment_form_are_a_400_and_store_nothing(
        client: httpx.AsyncClient, clock: FrozenClock, services: Services, post_id: int,
        field: dict[str, str]) -> None:
    fields = await fresh_form(client)
    clock.advance(5)
    r = await send(client, filled(fields, name="Ada", text="Hello", **field))
    assert r.status_code == 400 and "which post" in r.text, (field, r.status_code, r.text[:200])
    with Session(services.engine) as s:
        assert s.exec(select(Interaction)).first() is None


# -- 2. who inherits an approval -----------------------------------------------------------------
@pytest.mark.parametrize("moderation", ["first-contact"])
async def test_only_an_email_carries_the_admins_approval(
        client: httpx.AsyncClient, clock: FrozenClock, services: Services, post_id: int) -> None:
    bob = await comment(client, clock, name="Bob", website="https://bob.example/")
    assert stored(services, bob).status == "pending"
    assert queue.act(services, "approve", [bob]) == 1
    again = await comment(client, clock, name="Bob", website="https://bob.example/", text="Not Bob, really.")
    assert stored(services, again).status == "pending"  # a public name + website: a first contact again
    assert actor_of(services, again).id == actor_of(services, bob).id  # ...though still the same guest

    ann = await comment(client, clock, name="Ann", email="ann@mail.example", website="https://ann.example/")
    assert queue.act(services, "approve", [ann]) == 1
    ann2 = await comment(client, clock, name="Ann", email="ann@mail.example", website="https://evil.example/")
    assert stored(services, ann2).status == "visible"  # the same (private) email: the approved author
    assert actor_of(services, ann2).id == actor_of(services, ann).id
    assert actor_of(services, ann2).url == "https://ann.example/"  # the actor keeps its first website
    assert stored(services, ann2).author_url == "https://evil.example/"  # the comment shows what was typed
    other = await comment(client, clock, name="Ann", email="someone@else.example", website="https://ann.example/")
    assert stored(services, other).status == "pending"

    zed1 = await comment(client, clock, name="Zed", text="one")
    zed2 = await comment(client, clock, name="Zed", text="two")
    assert actor_of(services, zed1).id != actor_of(services, zed2).id  # a bare name identifies nobody


# -- 3. guest actors exist publicly only with a public comment ----------------------------------
async def test_a_guest_without_a_public_comment_is_not_served(
        client: httpx.AsyncClient, clock: FrozenClock, services: Services, post_id: int) -> None:
    quiet = await comment(client, clock, name="Quiet", email="q@mail.example", website="https://quiet.example/")
    assert stored(services, quiet).status == "visible" and not stored(services, quiet).federated
    number = actor_of(services, quiet).id
    assert number is not None
    for path in (f"/guests/{number}", f"/guests/{number}/outbox"):
        for accept in ("text/html", AP):
            r = await client.get(path, headers={"Accept": accept})
            assert r.status_code == 404 and "quiet.example" not in r.text, (path, accept)
    wf = await client.get(f"/.well-known/webfinger?resource=acct:guest-{number}@blog.test")
    assert wf.status_code == 404
    assert services.keys.keys_for(guest_ref(number)).rsa is None  # no RSA key made for nobody

    shared = await comment(client, clock, name="Quiet", email="q@mail.example", text="For all.", federate="on")
    assert actor_of(services, shared).id == number and stored(services, shared).federated
    doc = await client.get(f"/guests/{number}", headers={"Accept": AP})
    assert doc.status_code == 200 and doc.json()["url"] == "https://quiet.example/"
    assert (await client.get(f"/guests/{number}/outbox", headers={"Accept": AP})).status_code == 200
    wf = await client.get(f"/.well-known/webfinger?resource=acct:guest-{number}@blog.test")
    assert wf.status_code == 200 and wf.json()["subject"] == f"acct:guest-{number}@blog.test"
    page = await client.get(f"/guests/{number}")
    assert page.status_code == 200
    assert f"#comment-{shared}" in page.text and "For all." in page.text
    assert f"#comment-{quiet}" not in page.text and "A comment." not in page.text  # not to the fediverse: not listed


# -- 4. the public status page of a linkback -----------------------------------------------------
async def test_a_refused_source_address_is_told_plainly(
        client: httpx.AsyncClient, services: Services, webmention_post: str) -> None:
    r = await client.post("/webmention", data={"source": "https://10.1.2.3/a-page", "target": webmention_post})
    assert r.status_code == 202, r.text
    await work(services)
    status = await status_of(client, r.headers["location"])
    assert status["status"] == "refused"
    assert status["reason"] == "the source could not be fetched: the source's address is not allowed"
    html = (await client.get(r.headers["location"])).text
    for hint in ("FEDBLOG_ALLOW_PRIVATE_HOSTS", "in tests", "refused to connect", "(private)"):
        assert hint not in html and hint not in str(status), hint

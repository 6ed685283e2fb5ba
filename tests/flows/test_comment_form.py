"""The web comment form, through HTTP and a real database: the form on the post page, its token,
the reply page, every refusal (each a clear 4xx, the form given back filled in, nothing stored),
moderation, and the author's view of a pending comment."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlmodel import Session, col, func, select

from fedblog.admin import queue
from fedblog.blog.posts import parse_post_source
from fedblog.clock import FrozenClock
from fedblog.federation.publishing import publish
from fedblog.services import Services
from fedblog.settings import Settings
from fedblog.store.db import session_scope
from fedblog.store.tables import Actor, Interaction, ModerationRule, Post
from fedblog.web import comment_form
from tests.helpers import NS, classes, parse_html, text_of

pytestmark = pytest.mark.anyio
PAGE = "/posts/hello"
SECRET = "test-secret"  # tests/conftest.py


@pytest.fixture
def moderation() -> str:
    return "approve-all"  # a test parametrizes "moderation" to run under another mode


@pytest.fixture
def settings(settings: Settings, moderation: str) -> Settings:
    return settings.replace(moderation=moderation, comment_rate_limit=5)


@pytest.fixture
def post_id(services: Services) -> int:
    with session_scope(services.engine) as session:
        publish(session, services, parse_post_source("---\ntitle: Hello\nslug: hello\n---\nA post to comment on.\n"))
    with Session(services.engine) as session:
        found = session.exec(select(Post.id).where(Post.slug == "hello")).one()
        assert found is not None
        return found


def form_of(html: str) -> dict[str, Any]:
    """The comment form's fields as the browser would send them (strict HTML5 parse), plus its alert
    and field errors."""
    root = parse_html(html)
    forms = [f for f in root.iter(NS + "form") if "comment-form" in classes(f)]
    assert len(forms) == 1, "one comment form per page"
    fields: dict[str, Any] = {}
    for el in forms[0].iter(NS + "input"):
        if el.get("type") == "checkbox":
            fields[el.get("name")] = "on" if el.get("checked") is not None else None
        else:
            fields[el.get("name")] = el.get("value", "")
    for el in forms[0].iter(NS + "textarea"):
        fields[el.get("name")] = el.text or ""
    alerts = [text_of(e) for e in root.iter() if "form-alert" in classes(e)]
    errors = {e.get("id", "").removesuffix("-error"): text_of(e) for e in root.iter() if "field-error" in classes(e)}
    return {"fields": fields, "alert": alerts[0] if alerts else None, "errors": errors}


def filled(fields: dict[str, Any], **values: Any) -> dict[str, str]:
    out = {k: v for k, v in {**fields, **values}.items() if v is not None}
    return out


def count(services: Services, **where: object) -> int:
    with Session(services.engine) as s:
        stmt = select(func.count()).select_from(Interaction)
        for k, v in where.items():
            stmt = stmt.where(getattr(Interaction, k) == v)
        return s.exec(stmt).one()


def stored(services: Services, comment_id: int) -> Interaction:
    with Session(services.engine) as s:
        item = s.get(Interaction, comment_id)
        assert item is not None
        s.expunge(item)
        return item


async def fresh_form(client: httpx.AsyncClient, path: str = PAGE) -> dict[str, Any]:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return form_of(page.text)["fields"]


async def send(client: httpx.AsyncClient, data: dict[str, str], **headers: str) -> httpx.Response:
    return await client.post("/comments", data=data, headers=headers)


def comment_id_of(response: httpx.Response) -> int:
    assert response.status_code == 303, response.text
    m = re.fullmatch(r"https://blog\.test/comments/(\d+)\?key=[\w-]+", response.headers["location"])
    assert m, response.headers["location"]
    return int(m.group(1))


COMMENT = {"name": "Ada Reader", "email": "ada@example.org", "website": "ada.example/me",
           "text": "First paragraph with a link: https://example.org/page.\n\nSecond <b>paragraph</b>\nsame one."}


async def test_the_post_page_carries_the_form_with_a_fresh_token(
        client: httpx.AsyncClient, services: Services, post_id: int) -> None:
    first, second = await client.get(PAGE), await client.get(PAGE)
    one, two = form_of(first.text)["fields"], form_of(second.text)["fields"]
    assert one["post"] == str(post_id) and one["parent"] == "0" and one["federate"] is None  # consent: off
    for f in (one, two):
        token = comment_form.read_token(SECRET, f["token"])
        assert token is not None and (token.post_id, token.parent_id) == (post_id, 0)
        assert token.issued == int(services.clock.now().timestamp())
    assert one["token"] != two["token"], "a token per response, not one in the cached page"
    assert first.headers["etag"] == second.headers["etag"] and first.headers["etag"].startswith('W/"')
    again = await client.get(PAGE, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.headers["etag"] == first.headers["etag"]
    assert b"fedblog:form-token" not in first.content
    assert "style=" not in first.text and "<script" not in first.text  # the CSP refuses both


@pytest.mark.parametrize("consent", [True, False])
async def test_an_accepted_comment_is_stored_and_shown_at_once_with_approve_all(
        client: httpx.AsyncClient, services: Services, clock: FrozenClock, post_id: int, consent: bool) -> None:
    fields = await fresh_form(client)
    clock.advance(5)
    r = await send(client, filled(fields, **COMMENT, federate="on" if consent else None))
    cid = comment_id_of(r)
    item = stored(services, cid)
    assert (item.status, item.via, item.kind, item.post_id, item.parent_id) == ("visible", "form", "comment", post_id, None)
    assert item.author_email == "ada@example.org" and item.federated is consent
    assert item.author_url == "https://ada.example/me"  # a bare host name gets https://
    assert item.content_html.count("<p>") == 2 and "&lt;b&gt;paragraph&lt;/b&gt;<br>" in item.content_html
    assert '<a href="https://example.org/page" rel="nofollow noopener ugc">https://example.org/page</a>.' in item.content_html
    with Session(services.engine) as s:
        actor = s.get(Actor, item.actor_id)
        assert actor is not None and actor.is_local and actor.ap_id.startswith("https://blog.test/guests/")
    view = await client.get(r.headers["location"])
    assert view.status_code == 303 and view.headers["location"] == f"https://blog.test/posts/hello#comment-{cid}"
    page = await client.get(PAGE)
    shown = [e for e in parse_html(page.text).iter(NS + "article") if e.get("id") == f"comment-{cid}"]
    assert shown and "Second <b>paragraph</b> same one." in text_of(shown[0])
    assert "ada@example.org" not in page.text and "1 comment" in page.text


@pytest.mark.parametrize("moderation", ["first-contact"])
async def test_a_first_time_commenter_waits_and_sees_the_notice_then_is_trusted(
        client: httpx.AsyncClient, services: Services, clock: FrozenClock, post_id: int) -> None:
    fields = await fresh_form(client)
    clock.advance(4)
    r = await send(client, filled(fields, **COMMENT))
    cid = comment_id_of(r)
    assert stored(services, cid).status == "pending"
    mine = await client.get(r.headers["location"])
    assert mine.status_code == 200 and "awaiting moderation" in mine.text and "First paragraph" in mine.text
    assert mine.headers["cache-control"] == "no-store" and mine.headers["referrer-policy"] == "no-referrer"
    assert "First paragraph" not in (await client.get(PAGE)).text
    assert (await client.get(f"/comments/{cid}")).status_code == 404  # without its key: not shown to others
    assert (await client.get(f"/comments/{cid}?key=AAAA{r.headers['location'][-20:]}")).status_code == 404
    assert queue.act(services, "approve", [cid]) == 1  # the admin approves: the author is trusted now
    with Session(services.engine) as s:
        assert s.exec(select(ModerationRule).where(col(ModerationRule.target).like("%/guests/%"))).first()
    fields = await fresh_form(client)
    clock.advance(4)
    second = comment_id_of(await send(client, filled(fields, **{**COMMENT, "text": "Me again."})))
    assert stored(services, second).status == "visible"  # same name + email: same guest actor
    fields = await fresh_form(client)
    clock.advance(4)
    other = comment_id_of(await send(client, filled(fields, **{**COMMENT, "email": "", "text": "Someone else"})))
    assert stored(services, other).status == "pending"  # same name, no email: another guest

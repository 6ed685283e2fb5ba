"""The web comment form, through HTTP and a real database: the form on the post page, its token,
the reply page, every refusal (each a clear 4xx, the form given back filled in, nothing stored),
moderation, and the author's view of a pending comment."""

from __future__ import annotations

import contextlib
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
from tests.flows.test_db_locked import locked
from tests.helpers import NS, classes, parse_html, text_of

pytestmark = pytest.mark.anyio
PAGE = "/posts/hello"
SECRET = "test-secret"  # tests/conftest.py


@pytest.fixture
def moderation() -> str:
    return "approve-all"  # a test parametrizes "moderation" to run under another mode


@pytest.fixture
def consent() -> bool:
    return False  # FEDBLOG_COMMENT_CONSENT_DEFAULT; a test parametrizes "consent" to change it


@pytest.fixture
def settings(settings: Settings, moderation: str, consent: bool) -> Settings:
    return settings.replace(moderation=moderation, comment_consent_default=consent, comment_rate_limit=5,
                            db_write_timeout=1)


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
    assert (item.status, item.via, item.kind) == ("visible", "form", "comment")
    assert (item.post_id, item.parent_id) == (post_id, None)
    assert item.author_email == "ada@example.org" and item.federated is consent
    assert item.author_url == "https://ada.example/me"  # a bare host name gets https://
    assert item.content_html.count("<p>") == 2 and "&lt;b&gt;paragraph&lt;/b&gt;<br>" in item.content_html
    link = '<a href="https://example.org/page" rel="nofollow noopener ugc">https://example.org/page</a>.'
    assert link in item.content_html
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


async def test_a_reply_threads_under_the_comment_it_answers(
        client: httpx.AsyncClient, services: Services, clock: FrozenClock, post_id: int) -> None:
    fields = await fresh_form(client)
    clock.advance(5)
    parent = comment_id_of(await send(client, filled(fields, **COMMENT)))
    page = await client.get(PAGE)
    links = [a.get("href") for a in parse_html(page.text).iter(NS + "a") if "reply-link" in classes(a)]
    assert links == [f"https://blog.test/comments/{parent}/reply#respond"]
    reply_page = await client.get(f"/comments/{parent}/reply")
    assert reply_page.status_code == 200 and "Reply to Ada Reader" in reply_page.text
    assert "First paragraph" in reply_page.text  # the comment answered is shown above the form
    fields = form_of(reply_page.text)["fields"]
    assert fields["parent"] == str(parent)
    token = comment_form.read_token(SECRET, fields["token"])
    assert token is not None and token.parent_id == parent
    clock.advance(5)
    reply = comment_id_of(await send(client, filled(fields, name="Grace", text="A reply to Ada.")))
    assert stored(services, reply).parent_id == parent
    root = parse_html((await client.get(PAGE)).text)
    outer = next(li for li in root.iter(NS + "li") if li.find(f"{NS}article[@id='comment-{parent}']") is not None)
    nested = outer.find(f"{NS}ol/{NS}li/{NS}article")
    assert nested is not None and nested.get("id") == f"comment-{reply}" and "A reply to Ada." in text_of(nested)
    # a token for the post itself cannot answer the comment (and the other way round)
    clock.advance(5)
    top = await fresh_form(client)
    r = await send(client, filled(top, parent=str(parent), name="Eve", text="Swapped parent"))
    assert r.status_code == 403 and "not valid" in (form_of(r.text)["alert"] or "")
    assert (await client.get("/comments/999999/reply")).status_code == 404


REFUSED = [
    # (what, change to the form, clock advance, status, words in the answer)
    ("no token", {"token": ""}, 5, 403, "security token is missing"),
    ("bad token", {"token": "1.0.1.abc.forged"}, 5, 403, "not valid for this post"),
    ("too fast", {}, 1, 403, "too fast for a person"),
    ("expired", {}, 25 * 3600, 403, "had expired"),
    ("honeypot", {"homepage": "http://spam.example"}, 5, 400, "meant to stay empty"),
    ("javascript website", {"website": "javascript:alert(1)"}, 5, 400, "http:// or https://"),
    ("no name", {"name": "  "}, 5, 400, "Please give a name"),
    ("long name", {"name": "N" * 101}, 5, 400, "at most 100"),
    ("bad email", {"email": "not an email"}, 5, 400, "not an email address"),
    ("long text", {"text": "x" * 10_001}, 5, 400, "at most 10,000"),
    ("empty text", {"text": " \n "}, 5, 400, "The comment is empty"),
]


@pytest.mark.parametrize(("what", "change", "wait", "status", "words"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_a_refused_form_comes_back_filled_in_and_nothing_is_stored(
        client: httpx.AsyncClient, services: Services, clock: FrozenClock, post_id: int,
        what: str, change: dict[str, str], wait: int, status: int, words: str) -> None:
    fields = await fresh_form(client)
    clock.advance(wait)
    data = filled(fields, **{**COMMENT, "federate": "on", **change})
    r = await send(client, data)
    assert r.status_code == status, r.text
    assert count(services) == 0 and count(services, via="form") == 0
    answer = form_of(r.text)
    assert words in r.text
    for name in ("name", "email", "website", "text"):  # every field kept as typed
        assert answer["fields"][name] == data[name].replace("\r\n", "\n"), name
    assert answer["fields"]["federate"] == "on" and answer["fields"]["homepage"] == ""
    if status == 400 and what != "honeypot":
        assert answer["errors"], "the problem is named next to its field"
    else:
        assert words in (answer["alert"] or "")
    fresh = comment_form.read_token(SECRET, answer["fields"]["token"])  # a new token: send it again
    assert fresh is not None and fresh.issued == int(clock.now().timestamp())
    if status == 403 or what == "honeypot":  # nothing wrong with the fields: the refilled form goes through
        clock.advance(5)
        ok = await send(client, filled(answer["fields"]))
        assert stored(services, comment_id_of(ok)).author_name == "Ada Reader"


async def test_an_old_cached_page_token_gets_the_form_back_with_a_fresh_one(
        client: httpx.AsyncClient, services: Services, clock: FrozenClock, post_id: int) -> None:
    first = await client.get(PAGE)
    old = form_of(first.text)["fields"]
    clock.advance(2 * 24 * 3600)  # the reader's tab stays open; the browser revalidates: 304, the old token
    assert (await client.get(PAGE, headers={"If-None-Match": first.headers["etag"]})).status_code == 304
    r = await send(client, filled(old, **COMMENT))
    assert r.status_code == 403 and "expired" in (form_of(r.text)["alert"] or "")
    again = form_of(r.text)["fields"]
    assert again["text"] == COMMENT["text"] and again["token"] != old["token"]
    clock.advance(3)
    assert stored(services, comment_id_of(await send(client, filled(again)))).status == "visible"


async def test_oversized_and_unreadable_bodies_are_refused_before_parsing(
        client: httpx.AsyncClient, services: Services, clock: FrozenClock, post_id: int) -> None:
    fields = await fresh_form(client)
    clock.advance(5)
    big = await send(client, filled(fields, **{**COMMENT, "text": "é" * 100_000}))
    assert big.status_code == 413 and "larger than 256 KiB" in big.text
    typed = await client.post("/comments", content=b'{"text": "hi"}', headers={"Content-Type": "application/json"})
    assert typed.status_code == 415
    bad = await client.post("/comments", content=b"text=%ff%fe",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert bad.status_code == 400 and "UTF-8" in bad.text
    nopost = await send(client, {"text": "hello", "name": "A"})
    assert nopost.status_code == 400 and "which post" in nopost.text
    ghost = await send(client, filled(fields, post="424242", **COMMENT))
    assert ghost.status_code == 404
    assert count(services) == 0


async def test_a_flood_from_one_address_gets_429_with_retry_after(
        client: httpx.AsyncClient, services: Services, clock: FrozenClock, post_id: int) -> None:
    fields = await fresh_form(client)
    clock.advance(5)
    proxy = {"X-Forwarded-For": "203.0.113.7"}  # from our trusted proxy (127.0.0.1): the client is .7
    for i in range(5):  # the limit is 5 per window in this module's settings
        r = await send(client, filled(fields, **{**COMMENT, "text": f"comment {i}"}), **proxy)
        assert r.status_code == 303
    r = await send(client, filled(fields, **{**COMMENT, "text": "one too many"}), **proxy)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert "wait" in (form_of(r.text)["alert"] or "") and form_of(r.text)["fields"]["text"] == "one too many"
    assert count(services, via="form") == 5
    other = await send(client, filled(fields, **{**COMMENT, "text": "another reader"}),
                       **{"X-Forwarded-For": "198.51.100.2"})
    assert other.status_code == 303  # counted per address
    clock.advance(services.settings.comment_rate_window * 2)
    later = await fresh_form(client)
    clock.advance(5)
    assert (await send(client, filled(later, **{**COMMENT, "text": "later"}), **proxy)).status_code == 303


async def test_too_many_links_wait_for_the_admin_even_when_all_are_approved(
        client: httpx.AsyncClient, services: Services, clock: FrozenClock, post_id: int) -> None:
    fields = await fresh_form(client)
    clock.advance(5)
    text = "Deals: https://a.example/1 https://b.example/2 https://c.example/3"
    cid = comment_id_of(await send(client, filled(fields, **{**COMMENT, "text": text})))
    assert stored(services, cid).status == "pending"
    two = "Sources: https://a.example/1 and https://b.example/2"
    assert stored(services, comment_id_of(await send(client, filled(fields, **{**COMMENT, "text": two})))).status \
        == "visible"


async def test_sending_the_same_form_twice_stores_one_comment(
        client: httpx.AsyncClient, services: Services, clock: FrozenClock, post_id: int) -> None:
    fields = await fresh_form(client)
    clock.advance(5)
    data = filled(fields, **COMMENT)
    first, second = await send(client, data), await send(client, data)
    assert comment_id_of(first) == comment_id_of(second) and count(services, via="form") == 1
    other = await send(client, {**data, "text": "A second thought, from the same page."})
    assert comment_id_of(other) != comment_id_of(first) and count(services, via="form") == 2


async def test_a_reply_to_a_comment_that_was_removed_meanwhile_is_offered_to_the_post(
        client: httpx.AsyncClient, services: Services, clock: FrozenClock, post_id: int) -> None:
    fields = await fresh_form(client)
    clock.advance(5)
    parent = comment_id_of(await send(client, filled(fields, **COMMENT)))
    reply_form = form_of((await client.get(f"/comments/{parent}/reply")).text)["fields"]
    assert queue.act(services, "delete", [parent]) == 1
    clock.advance(5)
    r = await send(client, filled(reply_form, name="Grace", text="Too late?"))
    assert r.status_code == 409 and "no longer shown" in (form_of(r.text)["alert"] or "")
    again = form_of(r.text)["fields"]
    assert again["parent"] == "0" and again["text"] == "Too late?"
    clock.advance(5)
    assert stored(services, comment_id_of(await send(client, filled(again)))).parent_id is None
    assert (await client.get(f"/comments/{parent}/reply")).status_code == 404


async def test_a_blocked_website_is_stored_hidden(
        client: httpx.AsyncClient, services: Services, clock: FrozenClock, post_id: int) -> None:
    from fedblog.blog.rules import add_rule
    with session_scope(services.engine) as s:
        add_rule(s, "block", "spam.example", clock.now())
    fields = await fresh_form(client)
    clock.advance(5)
    r = await send(client, filled(fields, **{**COMMENT, "website": "https://www.spam.example/"}))
    cid = comment_id_of(r)
    assert stored(services, cid).status == "hidden"
    assert "not published" in (await client.get(r.headers["location"])).text
    assert "First paragraph" not in (await client.get(PAGE)).text


async def test_spam_in_the_queue_blocks_the_guest_and_their_next_comment_is_hidden(
        client: httpx.AsyncClient, services: Services, clock: FrozenClock, post_id: int) -> None:
    fields = await fresh_form(client)
    clock.advance(5)
    first = comment_id_of(await send(client, filled(fields, **{**COMMENT, "website": ""})))
    assert queue.act(services, "spam", [first]) == 1
    assert stored(services, first).status == "spam"
    clock.advance(5)
    again = comment_id_of(await send(client, filled(fields, **{**COMMENT, "website": "", "text": "Still me."})))
    assert stored(services, again).status == "hidden"  # same name + email: the blocked guest actor
    clock.advance(5)
    other = comment_id_of(await send(client, filled(fields, **{**COMMENT, "email": "x@example.net", "text": "Hi"})))
    assert stored(services, other).status == "visible"


@pytest.mark.parametrize("consent", [True, False])
async def test_the_consent_box_starts_as_the_blog_says(
        client: httpx.AsyncClient, services: Services, clock: FrozenClock, post_id: int, consent: bool) -> None:
    fields = await fresh_form(client)
    assert (fields["federate"] == "on") is consent
    clock.advance(5)
    cid = comment_id_of(await send(client, filled(fields, **COMMENT)))
    reply = form_of((await client.get(f"/comments/{cid}/reply")).text)["fields"]
    assert (reply["federate"] == "on") is consent
    assert stored(services, cid).federated is consent  # sent as shown: the box decides


def write_locked(services: Services) -> contextlib.AbstractContextManager[None]:
    """Another process holds the write lock (SQLite: the file; PostgreSQL: the interaction table,
    readers still served)."""
    return locked(services, table="interaction", mode="EXCLUSIVE")


async def test_a_locked_database_answers_503_with_the_form_and_stores_nothing(
        client: httpx.AsyncClient, services: Services, clock: FrozenClock, post_id: int) -> None:
    fields = await fresh_form(client)
    clock.advance(5)
    with write_locked(services):
        r = await send(client, filled(fields, **COMMENT))
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    answer = form_of(r.text)
    assert "could not save comments just now" in (answer["alert"] or "")
    assert answer["fields"]["text"] == COMMENT["text"] and count(services, via="form") == 0
    clock.advance(5)
    assert stored(services, comment_id_of(await send(client, filled(answer["fields"])))).status == "visible"

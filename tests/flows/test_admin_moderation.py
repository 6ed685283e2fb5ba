"""The moderation queue at /admin/moderation, over HTTP with a real database.

Replies come from fake fediverse servers through the real inbox (held: FEDBLOG_MODERATION is
first-contact by default); the owner acts through the admin pages, with the session's CSRF token.
"""

from __future__ import annotations

import re

import httpx
import pytest
from sqlmodel import Session, select

from fedblog.blog.posts import parse_post_source
from fedblog.federation.publishing import publish
from fedblog.services import Services
from fedblog.store.db import session_scope
from fedblog.store.tables import Interaction, ModerationRule
from tests.admin_http import csrf_of, login
from tests.fediverse import builders
from tests.fediverse.instance import FakeActor, FakeInstance
from tests.fediverse.network import FakeFediverse
from tests.flows.test_admin import PASSWORD, owner  # noqa: F401  (the fixture)

pytestmark = pytest.mark.anyio
INBOX = "https://blog.test/inbox"
POST = "https://blog.test/posts/hello"


def _publish(services: Services) -> None:
    with session_scope(services.engine) as session:
        publish(session, services, parse_post_source("---\ntitle: Hello moderation\nslug: hello\n---\nA post.\n"))


async def _reply(inst: FakeInstance, who: FakeActor, services: Services, text: str) -> str:
    create, note = builders.reply(who, POST, f"<p>{text}</p>", services.clock.now())
    assert (await inst.post(who, INBOX, create)).status_code == 202
    return str(note["id"])


def _id_of(services: Services, note_id: str) -> int:
    with Session(services.engine) as s:
        item = s.exec(select(Interaction).where(Interaction.ap_id == note_id)).one()
        assert item.id is not None
        return item.id


def _status(services: Services, note_id: str) -> str:
    with Session(services.engine) as s:
        return s.exec(select(Interaction.status).where(Interaction.ap_id == note_id)).one()


async def _queue_csrf(client: httpx.AsyncClient) -> tuple[str, str]:
    r = await client.get("/admin/moderation")
    assert r.status_code == 200, r.text
    return r.text, csrf_of(r.text)


@pytest.fixture
async def world(services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, owner: str  # noqa: F811
                ) -> tuple[FakeInstance, FakeInstance]:
    _publish(services)
    assert (await login(client, PASSWORD)).status_code == 303
    return FakeInstance("mastodon.test", fediverse), FakeInstance("spam.test", fediverse)


async def test_queue_lists_pending_replies_and_approve_shows_one(
    services: Services, client: httpx.AsyncClient, world: tuple[FakeInstance, FakeInstance]
) -> None:
    masto, spam = world
    alice, bob = masto.actor("alice", "Alice A."), spam.actor("bob", "Bob Spammer")
    a = await _reply(masto, alice, services, "A kind word from Alice")
    b = await _reply(spam, bob, services, "Buy cheap things")
    page = await client.get(POST)
    assert "A kind word from Alice" not in page.text  # held
    html, csrf = await _queue_csrf(client)
    assert "Waiting for you (2)" in html
    for text in ("Alice A.", "Bob Spammer", "A kind word from Alice", "Buy cheap things", "Hello moderation",
                 "mastodon.test", "spam.test"):
        assert text in html, text
    r = await client.post("/admin/moderation", data={"csrf": csrf, "id": str(_id_of(services, a)), "action": "approve"})
    assert r.status_code == 303 and "done=approve" in r.headers["location"]
    assert "1 item(s) approved" in (await client.get(r.headers["location"])).text
    assert "A kind word from Alice" in (await client.get(POST)).text
    assert _status(services, b) == "pending"


async def test_bulk_spam_blocks_their_authors_and_csrf_is_required(
    services: Services, client: httpx.AsyncClient, world: tuple[FakeInstance, FakeInstance]
) -> None:
    masto, spam = world
    bots = [spam.actor(f"bot{i}", f"Bot {i}") for i in range(3)]
    ids = [await _reply(spam, bot, services, f"spam number {i}") for i, bot in enumerate(bots)]
    keep = await _reply(masto, masto.actor("alice"), services, "not spam")
    _html, csrf = await _queue_csrf(client)
    form = [("csrf", csrf), ("action", "spam")] + [("id", str(_id_of(services, n))) for n in ids]
    # without the token: 403, nothing changes
    r = await client.post("/admin/moderation", content=httpx.QueryParams(form[1:]).__str__(),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 403 and "security token" in r.text
    assert {_status(services, n) for n in ids} == {"pending"}
    r = await client.post("/admin/moderation", content=str(httpx.QueryParams(form)),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 303, r.text
    assert {_status(services, n) for n in ids} == {"spam"} and _status(services, keep) == "pending"
    with Session(services.engine) as s:
        blocked = set(s.exec(select(ModerationRule.target).where(ModerationRule.action == "block")).all())
    assert blocked == {b.id for b in bots}
    # a spammer's next reply is refused at the door
    create, _ = builders.reply(bots[0], POST, "<p>again</p>", services.clock.now())
    assert (await spam.post(bots[0], INBOX, create)).status_code == 403
    html, _ = await _queue_csrf(client)
    assert "spam number" not in html and "Waiting for you (1)" in html


async def test_always_approve_then_the_next_reply_shows_at_once(
    services: Services, client: httpx.AsyncClient, world: tuple[FakeInstance, FakeInstance]
) -> None:
    masto, _spam = world
    carol = masto.actor("carol", "Carol C.")
    first = await _reply(masto, carol, services, "first from carol")
    second = await _reply(masto, carol, services, "second from carol")
    _html, csrf = await _queue_csrf(client)
    r = await client.post("/admin/moderation/author",
                          data={"csrf": csrf, "id": str(_id_of(services, first)), "what": "approve"})
    assert r.status_code == 303
    assert "is always approved now; 2 of their" in (await client.get(r.headers["location"])).text
    assert _status(services, first) == _status(services, second) == "visible"
    await _reply(masto, carol, services, "third from carol, no wait")
    assert "third from carol, no wait" in (await client.get(POST)).text


async def test_block_domain_hides_its_items_and_rules_can_be_removed(
    services: Services, client: httpx.AsyncClient, world: tuple[FakeInstance, FakeInstance]
) -> None:
    masto, spam = world
    one = await _reply(spam, spam.actor("x"), services, "from spam x")
    two = await _reply(spam, spam.actor("y"), services, "from spam y")
    _html, csrf = await _queue_csrf(client)
    r = await client.post("/admin/moderation/author",
                          data={"csrf": csrf, "id": str(_id_of(services, one)), "what": "block-domain"})
    assert r.status_code == 303
    html = (await client.get(r.headers["location"])).text
    assert "spam.test is blocked; 2 of their item(s) hidden" in html
    assert _status(services, one) == _status(services, two) == "hidden" and "from spam" not in html
    create, _ = builders.reply(spam.actor("z"), POST, "<p>z</p>", services.clock.now())
    assert (await spam.post(spam.actor("z"), INBOX, create)).status_code == 403
    with Session(services.engine) as s:
        rule = s.exec(select(ModerationRule).where(ModerationRule.target == "spam.test")).one()
    r = await client.post("/admin/moderation/rules/remove", data={"csrf": csrf, "rule": str(rule.id)})
    assert r.status_code == 303
    with Session(services.engine) as s:
        assert s.exec(select(ModerationRule).where(ModerationRule.target == "spam.test")).first() is None
    r = await client.post("/admin/moderation/rules/remove", data={"rule": str(rule.id)})
    assert r.status_code == 403
    for bad in ("#nope", "not a domain", "https://", ""):
        r = await client.post("/admin/moderation/rules/block", data={"csrf": csrf, "target": bad})
        assert r.status_code == 400, bad
    r = await client.post("/admin/moderation/rules/block", data={"csrf": csrf, "target": "Other.TEST"})
    assert r.status_code == 303 and "target=other.test" in r.headers["location"]


def _multipart(csrf: str | None, body: bytes, name: str = "blocks.csv") -> dict[str, object]:
    data = {"csrf": csrf} if csrf is not None else {}
    return {"data": data, "files": {"file": (name, body, "text/csv")}}


async def test_mastodon_domain_block_csv_import_both_formats(
    services: Services, client: httpx.AsyncClient, fediverse: FakeFediverse,
    world: tuple[FakeInstance, FakeInstance],
) -> None:
    _html, csrf = await _queue_csrf(client)
    modern = (b"#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n"
              b"evil.test,suspend,false,false,Spam,false\n"
              b"quiet.test,silence,true,false,,false\n"
              b"not a domain!,suspend,false,false,,false\n"
              b"EVIL.test,suspend,false,false,dup,false\n")
    r = await client.post("/admin/moderation/import", **_multipart(None, modern))  # type: ignore[arg-type]
    assert r.status_code == 403
    r = await client.post("/admin/moderation/import", **_multipart(csrf, modern))  # type: ignore[arg-type]
    assert r.status_code == 303, r.text
    html = (await client.get(r.headers["location"])).text
    assert "2 added, 1 skipped (already blocked), 1 invalid" in html and "not a domain!" in html
    plain = b"quiet.test\nold.test\n\nhttps://x/y\n"
    r = await client.post("/admin/moderation/import", **_multipart(csrf, plain, "list.txt"))  # type: ignore[arg-type]
    html = (await client.get(r.headers["location"])).text
    assert "1 added, 1 skipped (already blocked), 1 invalid" in html
    with Session(services.engine) as s:
        targets = set(s.exec(select(ModerationRule.target).where(ModerationRule.action == "block")).all())
    assert targets == {"evil.test", "quiet.test", "old.test"}
    evil = FakeInstance("evil.test", fediverse)
    mallory = evil.actor("mallory")
    create, _ = builders.reply(mallory, POST, "<p>hi</p>", services.clock.now())
    assert (await evil.post(mallory, INBOX, create)).status_code == 403
    r = await client.post("/admin/moderation/import", **_multipart(csrf, b"#severity\nsuspend\n"))  # type: ignore[arg-type]
    assert r.status_code == 400 and "#domain" in r.text
    assert re.search(r"Rules \(3\)", (await client.get("/admin/moderation")).text)


AP = "application/activity+json"


async def test_owner_reply_goes_to_the_thread_participants_only(
    services: Services, client: httpx.AsyncClient, fediverse: FakeFediverse,
    world: tuple[FakeInstance, FakeInstance],
) -> None:
    from fedblog.store.tables import Delivery
    from tests.fediverse.instance import follow
    from tests.flows.test_admin import deliver

    masto, _spam = world
    gts = FakeInstance("gts.test", fediverse, "gotosocial")
    lurker_home = FakeInstance("lurker.test", fediverse)
    alice, dave, lurker = masto.actor("alice", "Alice A."), gts.actor("dave", "Dave D."), lurker_home.actor("lee")
    assert (await lurker_home.post(lurker, INBOX, follow(lurker, "https://blog.test/users/blog"))).status_code == 202
    await deliver(services)
    lurker_home.received.clear()
    a = await _reply(masto, alice, services, "Question from Alice")
    d = await _reply(gts, dave, services, "Dave was here")
    _html, csrf = await _queue_csrf(client)
    for note in (a, d):
        await client.post("/admin/moderation",
                          data={"csrf": csrf, "id": str(_id_of(services, note)), "action": "approve"})
    alice_comment = _id_of(services, a)
    # the dashboard's recent list and the post page link to the reply form
    assert f'href="/admin/reply?to={alice_comment}"' in (await client.get("/admin")).text
    assert f'href="/admin/reply?to={alice_comment}"' in (await client.get(POST)).text
    form = await client.get(f"/admin/reply?to={alice_comment}")
    assert form.status_code == 200 and "Question from Alice" in form.text
    r = await client.post("/admin/reply", data={"to": str(alice_comment), "content": "no token"})
    assert r.status_code == 403
    r = await client.post("/admin/reply", data={"csrf": csrf, "to": str(alice_comment), "content": "Thanks, Alice!"})
    assert r.status_code == 303, r.text
    note_url = r.headers["location"]
    assert re.fullmatch(r"https://blog\.test/comments/\d+", note_url)
    await deliver(services)
    creates = [x for x in masto.activities("Create") if x["object"].get("id") == note_url]
    assert len(creates) == 1, [x.received for x in [masto]]
    note = creates[0]["object"]
    assert creates[0]["actor"] == "https://blog.test/users/blog" and note["inReplyTo"] == a
    assert note["attributedTo"] == "https://blog.test/users/blog"
    assert note["to"] == ["https://www.w3.org/ns/activitystreams#Public"]
    assert set(note["cc"]) == {alice.id, dave.id} and "followers" not in " ".join(note["cc"])
    assert note["tag"][0]["href"] == alice.id and "Thanks, Alice!" in note["content"]
    assert any(x["object"].get("id") == note_url for x in gts.activities("Create"))  # a participant
    assert not any(x.get("type") == "Create" for x in lurker_home.activities())  # a follower, not in the thread
    with Session(services.engine) as s:  # one delivery per server
        inboxes = sorted(s.exec(select(Delivery.inbox).where(Delivery.state == "sent")).all())
    assert inboxes.count("https://mastodon.test/inbox") == 1
    # in the thread, marked as the author's, and in the replies and context collections
    page = (await client.get(POST)).text
    assert "Thanks, Alice!" in page and "owner-badge" in page
    replies = (await client.get("/posts/hello/replies?page=1", headers={"Accept": AP})).json()["orderedItems"]
    assert note_url in replies
    context = (await client.get("/posts/hello/context?page=1", headers={"Accept": AP})).json()["orderedItems"]
    assert note_url in context
    # its id is dereferenceable: the Note for fediverse servers, the anchor for browsers
    got = await client.get(note_url, headers={"Accept": AP})
    assert got.status_code == 200 and got.json()["id"] == note_url and got.json()["inReplyTo"] == a
    html = await client.get(note_url)
    assert html.status_code == 302 and "#comment-" in html.headers["location"]
    # a reply to the reply comes back into the thread
    create, answer = builders.reply(alice, note_url, "<p>You're welcome</p>", services.clock.now())
    assert (await masto.post(alice, INBOX, create)).status_code == 202
    with Session(services.engine) as s:
        item = s.exec(select(Interaction).where(Interaction.ap_id == answer["id"])).one()
        assert item.parent_id == int(note_url.rsplit("/", 1)[1])


async def test_the_queue_costs_the_same_queries_with_more_items(
    services: Services, client: httpx.AsyncClient, world: tuple[FakeInstance, FakeInstance]
) -> None:
    from sqlalchemy import event

    masto, spam = world
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    await _reply(masto, masto.actor("one"), services, "just one")
    event.listen(services.engine, "before_cursor_execute", count)
    try:
        assert (await client.get("/admin/moderation")).status_code == 200
        before = len(statements)
        event.remove(services.engine, "before_cursor_execute", count)
        for i in range(6):
            await _reply(spam if i % 2 else masto, (spam if i % 2 else masto).actor(f"u{i}"), services, f"n{i}")
        event.listen(services.engine, "before_cursor_execute", count)
        statements.clear()
        r = await client.get("/admin/moderation")
        assert r.status_code == 200 and "Waiting for you (7)" in r.text
        assert len(statements) == before <= 6, statements
    finally:
        event.remove(services.engine, "before_cursor_execute", count)


async def test_block_list_upload_limits(
    services: Services, client: httpx.AsyncClient, world: tuple[FakeInstance, FakeInstance]
) -> None:
    _html, csrf = await _queue_csrf(client)
    big = b"x.test\n" * (5 * 2**20 // 7)  # over the 4 MB cap
    r = await client.post("/admin/moderation/import", **_multipart(csrf, big))  # type: ignore[arg-type]
    assert r.status_code == 413 and "too large" in r.text
    r = await client.post("/admin/moderation/import", **_multipart(csrf, b"\xff\xfe bad\n"))  # type: ignore[arg-type]
    assert r.status_code == 400 and "UTF-8" in r.text
    r = await client.post("/admin/moderation/import", **_multipart(csrf, b"\n\n"))  # type: ignore[arg-type]
    assert r.status_code == 400 and "empty" in r.text
    async with httpx.AsyncClient(transport=client._transport, base_url="https://blog.test") as stranger:
        r = await stranger.post("/admin/moderation/import", **_multipart(csrf, b"a.test\n"))  # type: ignore[arg-type]
        assert r.status_code == 403
    assert not any((services.settings.data_dir / "uploads-tmp").glob("*"))  # nothing left behind
    with Session(services.engine) as s:
        assert s.exec(select(ModerationRule)).all() == []


async def test_bulk_delete_drops_the_text_and_takes_replies_off_the_page(
    services: Services, client: httpx.AsyncClient, world: tuple[FakeInstance, FakeInstance]
) -> None:
    masto, _spam = world
    shown = await _reply(masto, masto.actor("alice", "Alice A."), services, "shown then deleted")
    held = await _reply(masto, masto.actor("bob", "Bob B."), services, "held then deleted")
    keep = await _reply(masto, masto.actor("carol", "Carol C."), services, "still waiting")
    _html, csrf = await _queue_csrf(client)
    r = await client.post("/admin/moderation", data={"csrf": csrf, "id": str(_id_of(services, shown)),
                                                     "action": "approve"})
    assert r.status_code == 303
    assert "shown then deleted" in (await client.get(POST)).text
    form = [("csrf", csrf), ("action", "delete"), ("id", str(_id_of(services, shown))),
            ("id", str(_id_of(services, held)))]
    r = await client.post("/admin/moderation", content=str(httpx.QueryParams(form)),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 303 and "done=delete" in r.headers["location"], r.text
    assert _status(services, shown) == _status(services, held) == "deleted"
    assert _status(services, keep) == "pending"
    with Session(services.engine) as s:
        texts = s.exec(select(Interaction.content_html).where(Interaction.status == "deleted")).all()
    assert list(texts) == ["", ""]
    page = (await client.get(POST)).text
    assert "shown then deleted" not in page and "held then deleted" not in page and "Alice A." not in page
    html, _ = await _queue_csrf(client)
    assert "Waiting for you (1)" in html and "still waiting" in html and "then deleted" not in html


async def test_blocking_one_actor_url_refuses_that_actor_only(
    services: Services, client: httpx.AsyncClient, world: tuple[FakeInstance, FakeInstance]
) -> None:
    _masto, spam = world
    x, y = spam.actor("x"), spam.actor("y")
    _html, csrf = await _queue_csrf(client)
    r = await client.post("/admin/moderation/rules/block", data={"csrf": csrf, "target": "https://spam.test/users/x"})
    assert r.status_code == 303, r.text
    with Session(services.engine) as s:
        targets = set(s.exec(select(ModerationRule.target).where(ModerationRule.action == "block")).all())
    assert targets == {"https://spam.test/users/x"}
    create, note = builders.reply(x, POST, "<p>from x</p>", services.clock.now())
    r = await spam.post(x, INBOX, create)
    assert r.status_code == 403, r.text
    with Session(services.engine) as s:
        assert s.exec(select(Interaction).where(Interaction.ap_id == note["id"])).first() is None
    from_y = await _reply(spam, y, services, "from y, same host")  # accepted: 202
    assert _status(services, from_y) == "pending"
    with Session(services.engine) as s:
        assert list(s.exec(select(Interaction.ap_id).where(Interaction.kind == "reply")).all()) == [from_y]
